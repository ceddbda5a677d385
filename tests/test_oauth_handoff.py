"""Link Account from inside the host's iframe: one-time handoff, popup, polled link-status.

The iframe's browser session (``client_a``) creates the handoff; the popup is another cookie
jar (it is its own top-level site and does not see the iframe's partitioned cookies). The popup
opens the handoff only when the portal's page navigates it (``Sec-Fetch-Site: same-origin``),
shows who started it, and continues after a confirmation; the redeemed result then waits until
the iframe's session confirms it (docs/decisions/0004-handoff-bound-to-its-session.md).
"""

from __future__ import annotations

import re

import pytest

from entrasim.testing import follow_authorize
from portal import storage
from portal.storage import db
from tests import test_oauth as base
from tests.test_oauth import ADMIN_UPN, REDIRECT_URI, csrf, reload, run_flow, token_calls

# The simulator set-up of test_oauth (our app with a certificate, a customer tenant, the config).
sp_cert, provider, app_config = base.sp_cert, base.provider, base.app_config
sp_connection = base.sp_connection


def create_handoff(client, connection):
    token = csrf(client)
    response = client.post(
        f"/connections/{connection.id}/link/handoff",
        headers={"X-CSRFToken": token, "Accept": "application/json"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()


#: What Chromium sends when the portal's own script navigates the popup (or a link in the frame).
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
_TOKEN_RE = re.compile(r'name="token" value="([^"]+)"')
_HANDOFF_FIELD_RE = re.compile(r'name="handoff" value="([^"]+)"')


def popup_continues(popup, handoff_url, headers=SAME_ORIGIN):
    """The popup opens the handoff (a confirmation page) and continues to Microsoft."""
    page = popup.get(handoff_url, headers=headers)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    token = _TOKEN_RE.search(page.get_data(as_text=True)).group(1)
    return popup.post(handoff_url, data={"token": token}, headers=headers)


def confirm_in_frame(client, connection_id, decision="confirm"):
    """The iframe's session answers the confirmation its panel shows."""
    body = client.get(
        f"/connections/{connection_id}/link-status", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    found = _HANDOFF_FIELD_RE.search(body)
    assert found, body[:800]
    return client.post(
        f"/connections/{connection_id}/link/confirm",
        data={"csrf_token": csrf(client), "handoff": found.group(1), "decision": decision},
        headers={"HX-Request": "true"},
    )


def popup_completes(app, sim, sim_session, handoff_url):
    """The popup: its own cookie jar, top-level redirect to Microsoft, callback."""
    popup = app.test_client()
    start = popup_continues(popup, handoff_url)
    assert start.status_code == 303, start.get_data(as_text=True)[:300]
    assert start.headers["Referrer-Policy"] == "no-referrer"
    assert start.headers["Cache-Control"] == "no-store"
    sim.set_interaction("consent", user=ADMIN_UPN)
    target, fields = follow_authorize(sim_session, start.headers["Location"])
    assert target == REDIRECT_URI
    return popup, popup.post("/oauth/callback", data=fields)


def test_popup_flow_and_polling(app, client_a, sim, sim_session, sp_connection):
    data = create_handoff(client_a, sp_connection)
    assert data["handoff_url"].startswith("/oauth/handoff/")
    status_url = data["status_url"]
    assert status_url == f"/connections/{sp_connection.id}/link-status"

    pending = client_a.get(status_url, headers={"HX-Request": "true"})
    body = pending.get_data(as_text=True)
    assert 'data-link-state="pending"' in body
    assert 'hx-trigger="load delay:2s"' in body and f'hx-get="{status_url}"' in body
    assert data["handoff_url"] in body  # fallback link while the popup has not used it
    assert pending.headers["Vary"] == "HX-Request" or "HX-Request" in pending.headers["Vary"]

    _popup, done = popup_completes(app, sim, sim_session, data["handoff_url"])
    page = done.get_data(as_text=True)
    assert done.status_code == 200 and "You can close this window" in page
    assert "confirm the organization and the account shown there" in page
    assert done.headers["Referrer-Policy"] == "no-referrer"
    assert done.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in done.headers["Content-Security-Policy"]
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from another origin

    # Nothing is linked until the iframe's session confirms what Microsoft answered.
    assert reload(app, sp_connection.id).state != "connected"
    waiting = client_a.get(status_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-link-state="confirm"' in waiting and ADMIN_UPN in waiting
    assert "hx-trigger" not in waiting  # a person answers now: no more polling
    final = confirm_in_frame(client_a, sp_connection.id).get_data(as_text=True)
    assert 'data-link-state="connected"' in final
    assert "hx-trigger" not in final  # polling stops
    assert "Connected." in final
    assert reload(app, sp_connection.id).state == "connected"


def test_handoff_is_single_use(app, client_a, sim, sim_session, sp_connection):
    data = create_handoff(client_a, sp_connection)
    popup = app.test_client()
    assert popup_continues(popup, data["handoff_url"]).status_code == 303
    again = app.test_client().get(data["handoff_url"], headers=SAME_ORIGIN)
    assert again.status_code == 400 and "can't be completed" in again.get_data(as_text=True)
    # Nor can the popup itself use it twice.
    assert popup.get(data["handoff_url"], headers=SAME_ORIGIN).status_code == 400
    # Once used, the pending panel no longer offers the (spent) fallback link.
    body = client_a.get(data["status_url"]).get_data(as_text=True)
    assert data["handoff_url"] not in body and 'data-link-state="pending"' in body


def test_expired_handoff_is_refused(app, client_a, sp_connection):
    data = create_handoff(client_a, sp_connection)
    with app.app_context():
        db.get_db().execute("UPDATE handoffs SET expires_at = created_at - 1")
    assert app.test_client().get(data["handoff_url"], headers=SAME_ORIGIN).status_code == 400
    body = client_a.get(data["status_url"]).get_data(as_text=True)
    assert "hx-trigger" not in body and "not completed in time" in body  # polling is bounded


@pytest.mark.parametrize("bad", ["x", "A" * 43, "%2e%2e"])
def test_unknown_handoff_is_refused(client, bad):
    assert client.get(f"/oauth/handoff/{bad}", headers=SAME_ORIGIN).status_code in (400, 404)


def test_result_is_visible_only_to_the_session_that_started_it(
    app, client_a, login, admin_a, sp_connection
):
    data = create_handoff(client_a, sp_connection)
    other_tab = login(admin_a)  # the same admin, another session (e.g. another browser)
    body = other_tab.get(data["status_url"]).get_data(as_text=True)
    assert 'data-link-state="pending"' not in body and data["handoff_url"] not in body


def test_failed_popup_sign_in_reaches_the_iframe(app, client_a, sim, sim_session, sp_connection):
    data = create_handoff(client_a, sp_connection)
    popup = app.test_client()
    start = popup_continues(popup, data["handoff_url"])
    sim.set_interaction("decline")
    _t, fields = follow_authorize(sim_session, start.headers["Location"])
    popup.post("/oauth/callback", data=fields)
    body = client_a.get(data["status_url"]).get_data(as_text=True)
    assert "Consent was declined" in body and "hx-trigger" not in body
    assert token_calls(sim) == 0


def test_handoff_needs_csrf_and_the_organization(client_a, client_b, sp_connection):
    assert client_a.post(f"/connections/{sp_connection.id}/link/handoff").status_code == 400
    token = csrf(client_b)
    assert (
        client_b.post(
            f"/connections/{sp_connection.id}/link/handoff", headers={"X-CSRFToken": token}
        ).status_code
        == 404
    )
    assert client_b.get(f"/connections/{sp_connection.id}/link-status").status_code == 404


def test_handoff_of_a_user_who_lost_access_is_refused(app, client_a, sp_connection, admin_a, org_b):
    data = create_handoff(client_a, sp_connection)
    with app.app_context():
        db.get_db().execute("UPDATE users SET org_id = ? WHERE id = ?", [org_b.id, admin_a.id])
    assert app.test_client().get(data["handoff_url"], headers=SAME_ORIGIN).status_code == 400


def test_framed_post_without_script_offers_a_new_tab(app, client_a, sp_connection):
    token = csrf(client_a)
    response = client_a.post(
        f"/connections/{sp_connection.id}/link",
        data={"csrf_token": token},
        headers={"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "same-origin"},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r'href="/oauth/handoff/[^"]+" target="_blank" rel="noopener"', body)


def test_link_status_and_panel_without_a_pending_attempt(client_a, sp_connection):
    body = client_a.get(f"/connections/{sp_connection.id}/link-status").get_data(as_text=True)
    assert "Link Account" in body and "hx-trigger" not in body
    assert 'data-link-popup="/connections/' in body
    page = client_a.get(f"/connections/{sp_connection.id}/link").get_data(as_text=True)
    assert '<script src="/static/link.js" defer></script>' in page


def test_store_records_the_outcome_in_one_transaction(
    app, client_a, sim, sim_session, sp_connection
):
    data = create_handoff(client_a, sp_connection)
    popup_completes(app, sim, sim_session, data["handoff_url"])
    confirm_in_frame(client_a, sp_connection.id)
    handoff_id = data["handoff_url"].rsplit("/", 1)[1]
    with app.app_context():
        row = (
            db.get_db()
            .execute("SELECT outcome FROM link_outcomes WHERE handoff_id = ?", [handoff_id])
            .fetchone()
        )
        assert storage.get_secret("connections", sp_connection.id, "token_cache")
    assert row[0] == "connected"


def test_connection_page_shows_the_panel(client_a, support_client, sp_connection):
    page = client_a.get(f"/connections/{sp_connection.id}").get_data(as_text=True)
    assert 'id="sp-panel"' in page and "Link Account" in page
    assert '<script src="/static/link.js" defer></script>' in page
    readonly = support_client.get(f"/connections/{sp_connection.id}").get_data(as_text=True)
    assert 'id="sp-panel"' in readonly and "data-link-popup" not in readonly


def test_connection_without_a_cloud_uses_the_first_sp_cloud(
    app, client_a, sim, sim_session, make_connection, org_a
):
    connection = make_connection(org_a, "service_provider", "New from the wizard")
    assert connection.cloud is None
    assert run_flow(client_a, sim, sim_session, connection).status_code == 200
    assert reload(app, connection.id).cloud == "sim-global"
