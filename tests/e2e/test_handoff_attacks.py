"""The popup handoff cannot be used to link someone else's tenant, in Chromium.

An admin of organization B (Fabrikam) mints a handoff for B's new service-provider connection
and tries to make an admin of another tenant (Contoso's Ada, signed in at Microsoft: simulator
mode ``sso``) run it: by opening the link in a fresh browser, through a sign-in lure
(``/login?next=``), or from a page on another site that navigates to it. Each is refused with a
page that says why, before anything reaches Microsoft, and nothing is stored.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from portal import storage
from portal.storage import db
from tests.e2e.test_embedded_link import (
    ADMIN_UPN,
    PASSWORD,
    HostPage,
    framed_portal,
    hosts,
    sp_cert,
)

pytestmark = pytest.mark.e2e

__all__ = ["framed_portal", "hosts", "sp_cert"]  # fixtures shared with the legitimate flow


def lure_page(target: str) -> HostPage:
    """Another site's page that sends its visitor to a URL (a link, script, or a popup)."""
    return HostPage(
        "<!doctype html><html><head><meta charset='utf-8'><title>Free gift</title>"
        "<link rel='icon' href='data:,'></head><body>"
        f"<a id='lure' href='{target}'>Claim your gift</a>"
        f"<button id='go' onclick=\"location.href='{target}'\">Go</button>"
        f"<button id='pop' onclick=\"window.open('{target}', 'x', 'popup')\">Pop</button>"
        "</body></html>"
    )


@pytest.fixture
def minted(framed_portal, make_connection, org_b, admin_b, sim):
    """Fabrikam's admin mints a handoff for a new connection of Fabrikam (through the real
    route, in its own session); Ada is signed in at Microsoft with consent given."""
    portal, _connection, _customer = framed_portal
    attacker_connection = make_connection(
        org_b, "service_provider", "Fabrikam's new link", cloud="sim-global"
    )
    attacker = portal.app.test_client()
    page = attacker.get("/login").get_data(as_text=True)
    token = page.split('"X-CSRFToken": "', 1)[1].split('"', 1)[0]
    assert (
        attacker.post(
            "/login", data={"email": admin_b.email, "password": PASSWORD, "csrf_token": token}
        ).status_code
        == 302
    )
    home = attacker.get("/").get_data(as_text=True)
    token = home.split('"X-CSRFToken": "', 1)[1].split('"', 1)[0]
    made = attacker.post(
        f"/connections/{attacker_connection.id}/link/handoff",
        headers={"X-CSRFToken": token, "Accept": "application/json"},
    )
    assert made.status_code == 200, made.get_data(as_text=True)[:300]
    sim.set_interaction("sso", user=ADMIN_UPN)
    url = portal.url(made.get_json()["handoff_url"], host="localhost")
    return portal, attacker_connection, url


def nothing_happened(portal, sim, connection) -> None:
    """No flow started, nothing at Microsoft, no token stored, the handoff still unopened."""
    assert sim.requests(endpoint="authorize") == []
    assert sim.requests(endpoint="token") == []
    with portal.app.app_context():
        assert storage.table_counts(["auth_flows"])["auth_flows"] == 0
        assert storage.get_secret("connections", connection.id, "token_cache") is None
        assert storage.get_connection(connection.id).tenant_id is None
        [row] = db.get_db().query("SELECT opened_at, consumed_at FROM handoffs")
        assert row["opened_at"] is None and row["consumed_at"] is None


def expect_refused(tab) -> None:
    expect(tab.get_by_role("heading", name="This sign-in can't be completed")).to_be_visible()
    expect(tab.get_by_text("only works when the portal opens it")).to_be_visible()
    expect(tab.get_by_role("button", name="Continue to Microsoft")).to_have_count(0)


def test_a_fresh_browser_opening_a_minted_handoff_is_refused(browser, minted, sim, tmp_path):
    portal, connection, url = minted
    victim = browser.new_context(ignore_https_errors=True)
    tab = victim.new_page()
    tab.goto(url)  # pasted from a mail or a chat: Sec-Fetch-Site none
    expect_refused(tab)
    tab.screenshot(path=str(tmp_path / "refused.png"))
    victim.close()
    nothing_happened(portal, sim, connection)


@pytest.mark.parametrize("disguise", ["{path}", "/static/..{path}", "/static/%2e%2e{path}"])
def test_a_sign_in_lure_does_not_reach_the_handoff(browser, minted, sim, admin_a, disguise):
    """Also disguised with dot segments, which Chromium removes when it follows the redirect
    after sign-in (the redirect itself would be a same-origin navigation)."""
    portal, connection, url = minted
    victim = browser.new_context(ignore_https_errors=True)
    tab = victim.new_page()
    path = url.split(portal.url("", host="localhost").rstrip("/"), 1)[1]
    target = quote(disguise.format(path=path), safe="/")
    tab.goto(portal.url("/login?next=" + target, host="localhost"))
    tab.get_by_label("Email").fill(admin_a.email)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("button", name="Sign out")).to_be_visible()
    assert "/oauth/" not in tab.url
    victim.close()
    nothing_happened(portal, sim, connection)


@pytest.mark.parametrize("how", ["link", "script", "popup"])
def test_another_site_navigating_to_the_handoff_is_refused(browser, minted, sim, how):
    portal, connection, url = minted
    lure = lure_page(url)
    try:
        victim = browser.new_context(ignore_https_errors=True)
        tab = victim.new_page()
        tab.goto(lure.origin + "/")
        if how == "popup":
            with tab.expect_popup() as opened:
                tab.click("#pop")
            landed = opened.value
        else:
            tab.click("#lure" if how == "link" else "#go")
            landed = tab
        expect_refused(landed)
        victim.close()
    finally:
        lure.close()
    nothing_happened(portal, sim, connection)
