"""Link Account inside the host product's iframe, in Chromium (security.md item 36).

A host page on ``http://127.0.0.1:A`` frames the portal on ``http://localhost:B`` (cross-site:
the portal only gets ``SameSite=None; Secure; Partitioned`` cookies there). The user signs in
inside the iframe, clicks Link Account; the popup names who started it and continues to
Microsoft (the simulator's) sign-in top-level after a click, where ``prompt=select_account`` shows
the account picker even though the browser is signed in at Microsoft (simulator mode ``sso``);
it then says to confirm in the portal, and the iframe, polling, asks its user to confirm the
tenant and the account before anything is linked (docs/decisions/0004).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from portal.entra.certificates import issue_certificate

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
ADMIN_UPN = "ada@contoso.onmicrosoft.com"


class HostPage:
    """The host product: a static page with one iframe (or the ``html`` given), served on its
    own loopback port."""

    def __init__(self, html: str | None = None) -> None:
        self.frame_src = "about:blank"
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = (
                    html
                    or (
                        "<!doctype html><html><head><meta charset='utf-8'>"
                        "<title>Host product</title>"
                        "<link rel='icon' href='data:,'></head><body><h1>Host product</h1>"
                        f"<iframe id='portal' src='{page.frame_src}' width='900' height='700'>"
                        "</iframe></body></html>"
                    )
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hosts():
    made = [HostPage(), HostPage()]
    yield made
    for host in made:
        host.close()


@pytest.fixture(scope="module")
def sp_cert():
    return issue_certificate("HR automation", "sp-e2e", key_size=2048)


@pytest.fixture
def framed_portal(live_portal, sim, sp_cert, tmp_path, hosts, make_connection, org_a):
    """The portal on localhost:B, framable by the first host page only; our app registered in
    the simulator with the portal's exact callback URL (known once the port is)."""
    allowed, _other = hosts
    pem = tmp_path / "sp.pem"
    pem.write_bytes(sp_cert.private_key_pem + sp_cert.cert_pem)
    portal = live_portal(
        host="127.0.0.1",
        FRAME_ANCESTORS=[allowed.origin],
        SP_CERT_FILE=str(pem),
        SP_CLOUDS=["sim-global"],
    )
    public = portal.url("", host="localhost").rstrip("/")
    home = sim.create_tenant(cloud="global", domains=["provider.onmicrosoft.com"])
    app = sim.create_app(
        home["id"],
        display_name="HR automation",
        multi_tenant=True,
        redirect_uris=[public + "/oauth/callback"],
    )
    sim.upload_certificate(home["id"], app["app_id"], sp_cert.cert_pem)
    portal.app.config.update(PUBLIC_URL=public, SP_CLIENT_ID=app["app_id"])
    customer = sim.create_tenant(
        cloud="global", domains=["contoso.onmicrosoft.com"], display_name="Contoso Ltd"
    )
    sim.create_user(customer["id"], ADMIN_UPN, display_name="Ada Admin")
    connection = make_connection(
        org_a, "service_provider", "Contoso via HR automation", cloud="sim-global"
    )
    return portal, connection, customer


def sign_in_in_popup(popup, started_by: str, shots=None):
    """The popup: the portal's confirmation, then Microsoft's account picker."""
    expect(popup.get_by_role("heading", name="Continue to Microsoft sign-in?")).to_be_visible(
        timeout=20000
    )
    expect(popup.get_by_text(started_by)).to_be_visible()
    expect(popup.get_by_text("Contoso", exact=True)).to_be_visible()
    if shots:
        popup.screenshot(path=str(shots / "popup-confirmation.png"))
    popup.get_by_role("button", name="Continue to Microsoft").click()
    # Signed in at Microsoft already, but prompt=select_account shows the picker.
    expect(popup.get_by_label("Account")).to_be_visible(timeout=20000)
    popup.get_by_label("Account").select_option(ADMIN_UPN)
    popup.get_by_role("button", name="Accept").click()
    expect(popup.get_by_text("You can close this window")).to_be_visible(timeout=20000)
    expect(popup.get_by_text("confirm the organization and the account")).to_be_visible()


def confirm_in_panel(panel, shots=None):
    """The iframe asks its own user to confirm what Microsoft answered."""
    expect(panel).to_have_attribute("data-link-state", "confirm", timeout=20000)
    expect(panel.get_by_text(ADMIN_UPN)).to_be_visible()
    expect(panel.get_by_text("contoso.onmicrosoft.com —")).to_be_visible()  # the tenant
    if shots:
        panel.screenshot(path=str(shots / "frame-confirmation.png"))
    panel.get_by_role("button", name="Confirm and link").click()


@pytest.fixture
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screens")


def test_link_account_from_the_iframe(
    page, framed_portal, hosts, sim, admin_a, console_errors, shots
):
    portal, connection, customer = framed_portal
    allowed, _other = hosts
    allowed.frame_src = portal.url(
        f"/login?next=/connections/{connection.id}/link", host="localhost"
    )
    page.goto(allowed.origin + "/")
    frame = page.frame_locator("#portal")
    frame.get_by_label("Email").fill(admin_a.email)
    frame.get_by_label("Password").fill(PASSWORD)
    frame.get_by_role("button", name="Sign in").click()
    expect(frame.get_by_role("button", name="Link Account")).to_be_visible()
    session = next(c for c in page.context.cookies() if c["name"] == "session")
    assert session["sameSite"] == "None" and session["secure"] and session["httpOnly"]
    assert session.get("partitionKey")  # CHIPS: stored in the host site's partition

    sim.set_interaction("sso", user=ADMIN_UPN)
    with page.expect_popup() as popup_info:
        frame.get_by_role("button", name="Link Account").click()
    popup = popup_info.value
    popup_errors: list[str] = []
    popup.on("console", lambda m: popup_errors.append(m.text) if m.type == "error" else None)
    sign_in_in_popup(popup, admin_a.email, shots=shots)
    assert popup.url.startswith(portal.url("/oauth/callback", host="localhost"))

    panel = frame.locator("#sp-panel")
    confirm_in_panel(panel, shots=shots)
    expect(panel).to_have_attribute("data-link-state", "connected", timeout=20000)
    expect(panel.get_by_text("Connected.")).to_be_visible()
    expect(panel.get_by_text("Ada Admin")).to_be_visible()
    with portal.app.app_context():
        from portal import storage

        linked = storage.get_connection(connection.id)
    assert linked.state == "connected" and linked.tenant_id == customer["id"]
    # Nothing token-like in the iframe's storage (tokens never leave the server).
    # (Chromium may deny a third-party frame any storage at all: that is fine too.)
    storage = frame.locator("body").evaluate(
        "() => { try { return JSON.stringify([Object.entries(localStorage),"
        " Object.entries(sessionStorage)]); } catch (e) { return 'denied'; } }"
    )
    assert storage in ("[[],[]]", "denied")
    assert console_errors == []
    assert popup_errors == []


def sign_in_in_frame(page, host, portal, connection, admin):
    host.frame_src = portal.url(f"/login?next=/connections/{connection.id}/link", host="localhost")
    page.goto(host.origin + "/")
    frame = page.frame_locator("#portal")
    frame.get_by_label("Email").fill(admin.email)
    frame.get_by_label("Password").fill(PASSWORD)
    frame.get_by_role("button", name="Sign in").click()
    expect(frame.get_by_role("button", name="Link Account")).to_be_visible()
    return frame


def test_blocked_popup_falls_back_to_a_new_tab(
    page, framed_portal, hosts, sim, admin_a, console_errors
):
    portal, connection, _customer = framed_portal
    frame = sign_in_in_frame(page, hosts[0], portal, connection, admin_a)
    frame.locator("body").evaluate("() => { window.open = () => null; }")  # a popup blocker
    frame.get_by_role("button", name="Link Account").click()
    panel = frame.locator("#sp-panel")
    expect(panel.get_by_text("Your browser blocked the sign-in window")).to_be_visible()
    sim.set_interaction("sso", user=ADMIN_UPN)
    with page.context.expect_page() as tab_info:
        panel.get_by_role("link", name="Open the Microsoft sign-in in a new tab").click()
    tab = tab_info.value
    sign_in_in_popup(tab, admin_a.email)
    confirm_in_panel(panel)
    expect(panel).to_have_attribute("data-link-state", "connected", timeout=20000)
    assert console_errors == []


def test_not_framed_from_another_origin(page, framed_portal, hosts, console_errors):
    portal, connection, _customer = framed_portal
    _allowed, other = hosts
    other.frame_src = portal.url("/login", host="localhost")
    page.goto(other.origin + "/")
    page.wait_for_timeout(1000)
    frame = page.frame_locator("#portal")
    expect(frame.get_by_label("Email")).to_have_count(0)
    assert console_errors, "the blocked frame should be reported"
    assert all("frame-ancestors" in message for message in console_errors), console_errors
