"""Embedding through ``static/embed.js`` in Chromium: the host page on ``127.0.0.1`` (its own
site) opens the portal on ``localhost`` with a connect session its backend minted through the
API. The token travels by postMessage only; a replayed token and a token opened from a page
outside its ``allowed_origins`` are refused, and the host page hears why."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from playwright.sync_api import expect

from portal import storage
from portal.api import keys

pytestmark = pytest.mark.e2e


class Host:
    """The host product's page (``html`` may change between visits), on its own port."""

    def __init__(self) -> None:
        self.html = ""
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = host.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def embed(self, portal_origin: str, token: str) -> None:
        self.html = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Host product</title>"
            "<link rel='icon' href='data:,'></head><body><h1>Host product</h1>"
            "<div id='connect'></div>"
            f"<script src='{portal_origin}/static/embed.js'></script>"
            "<script>window.events = [];"
            f"window.portal = EntraPortal.open({{token: {json.dumps(token)},"
            " container: document.getElementById('connect'),"
            " onEvent: function (e) { window.events.push(e); }});</script></body></html>"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def setup(live_portal, make_connection):
    allowed, other = Host(), Host()
    portal = live_portal(host="127.0.0.1", FRAME_ANCESTORS=[allowed.origin, other.origin])
    origin = portal.url("", host="localhost").rstrip("/")
    with portal.app.app_context():
        org, _ = storage.put_organization_by_external_id("acme-1", "Acme")
        key = keys.issue("host", ["sessions:write"]).key
    connection = make_connection(org, "service_provider", "Contoso via HR automation")

    def mint() -> str:
        answer = requests.post(
            origin + "/api/v1/connect-sessions",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "organization": "acme-1",
                "end_user": {"id": "u-7", "display_name": "Grace Host"},
                "allowed_origins": [allowed.origin],
                "connection_id": connection.id,
            },
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["token"]

    yield portal, origin, allowed, other, connection, mint
    allowed.close()
    other.close()


def events(page, kind: str, count: int = 1) -> list[dict]:
    page.wait_for_function(
        f"window.events && window.events.filter(e => e.type === '{kind}').length >= {count}",
        timeout=20000,
    )
    return page.evaluate("window.events")


def test_the_host_page_opens_the_portal_with_a_connect_session(
    page, setup, console_errors, tmp_path
):
    _portal, origin, allowed, _other, connection, mint = setup
    token = mint()
    allowed.embed(origin, token)
    page.goto(allowed.origin + "/")
    frame = page.frame_locator("#connect iframe")
    expect(frame.get_by_role("heading", name="Contoso via HR automation")).to_be_visible(
        timeout=20000
    )
    expect(frame.get_by_text("Grace Host")).to_be_visible()
    expect(frame.locator("#sp-panel")).to_be_visible()
    assert [e["type"] for e in events(page, "ready")] == ["ready"]
    src = page.locator("#connect iframe").get_attribute("src")
    assert src == origin + "/embed"  # the token is never in a URL
    (child,) = [f for f in page.frames if f.url.startswith(origin)]
    assert child.url == f"{origin}/connections/{connection.id}" and token not in child.url
    page.screenshot(path=str(tmp_path / "embedded.png"))

    # The portal's Close reaches the host page, which removes the frame.
    frame.get_by_role("button", name="Close").click()
    assert events(page, "close")[-1]["type"] == "close"
    expect(page.locator("#connect iframe")).to_have_count(0)

    # The same token again (a replay) is refused, and the host page hears why.
    page.goto(allowed.origin + "/?again")
    refused = events(page, "error")
    assert refused[-1]["code"] == "token_used"
    expect(page.frame_locator("#connect iframe").get_by_text("used already")).to_be_visible()
    assert console_errors == [] or all("410" in m for m in console_errors), console_errors


def test_a_token_opened_from_a_page_it_does_not_allow_is_refused(page, setup):
    _portal, origin, _allowed, other, _connection, mint = setup
    other.embed(origin, mint())  # framable by the deployment, but not in the token's origins
    page.goto(other.origin + "/")
    assert events(page, "error")[-1]["code"] == "origin_not_allowed"
    frame = page.frame_locator("#connect iframe")
    expect(frame.get_by_text("cannot be opened from this page")).to_be_visible()
    expect(frame.locator("#sp-panel")).to_have_count(0)
