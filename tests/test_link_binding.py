"""A delegated link belongs to the browser and the user who started it (RFC 9700 §4.7).

The attack these tests close: an admin of organization B mints a popup handoff for B's new
connection and lures an admin of another tenant into opening it; with single sign-on at
Microsoft the victim's tenant would end up linked to B. Now the handoff only opens when the
portal's own page navigates to it, names who started it, continues after a confirmation with a
one-time token, the result waits for the starting session, and a tenant that another
organization already linked is held for the operator.
(docs/decisions/0004-handoff-bound-to-its-session.md)
"""

from __future__ import annotations

import re

import pytest

from entrasim.testing import follow_authorize
from portal import storage
from portal.storage import db
from tests import test_oauth as base
from tests.conftest import login_as
from tests.test_oauth import (
    ADMIN_UPN,
    FLOW_COOKIE,
    csrf,
    reload,
    run_flow,
    stored_cache,
    token_calls,
)
from tests.test_oauth_handoff import (
    SAME_ORIGIN,
    confirm_in_frame,
    create_handoff,
    popup_completes,
)

sp_cert, provider, app_config = base.sp_cert, base.provider, base.app_config
sp_connection = base.sp_connection


def handoff_rows(app):
    with app.app_context():
        return [dict(r) for r in db.get_db().query("SELECT * FROM handoffs")]


def pending_secret(app, handoff_url):
    with app.app_context():
        return storage.get_secret(
            "handoffs", handoff_url.rsplit("/", 1)[1], storage.PENDING_TOKEN_PURPOSE
        )


# --- the popup's entry ------------------------------------------------------------------------


@pytest.mark.parametrize("site", [None, "none", "cross-site", "same-site"])
def test_handoff_opens_only_from_the_portals_own_page(app, client_a, sp_connection, site):
    """A link in a mail (``none``), another site (``cross-site``/``same-site``) or a browser
    without Fetch Metadata: refused with a page that says why; the handoff stays unopened."""
    data = create_handoff(client_a, sp_connection)
    victim = app.test_client()
    headers = {"Sec-Fetch-Site": site} if site else {}
    refused = victim.get(data["handoff_url"], headers=headers)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 403
    assert "only works when the portal opens it" in body
    assert "Continue to Microsoft" not in body
    assert handoff_rows(app)[0]["opened_at"] is None
    # The POST that would continue to Microsoft is refused the same way.
    # (the cross-site request check may answer first: 400)
    assert victim.post(data["handoff_url"], data={"token": "x"}, headers=headers).status_code in (
        400,
        403,
    )
    assert token_calls_none(app)


def token_calls_none(app) -> bool:
    with app.app_context():
        return storage.table_counts(["auth_flows"])["auth_flows"] == 0


def test_handoff_confirmation_names_organization_connection_and_user(
    app, client_a, admin_a, sp_connection
):
    data = create_handoff(client_a, sp_connection)
    page = app.test_client().get(data["handoff_url"], headers=SAME_ORIGIN)
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Contoso" in body and sp_connection.label in body and admin_a.email in body
    assert "Continue to Microsoft" in body
    # Nothing has started at Microsoft yet: no flow until the confirmation is posted.
    assert token_calls_none(app)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert not any(c.startswith("session=") for c in page.headers.getlist("Set-Cookie"))


def test_confirmation_needs_the_browser_and_token_it_was_shown(app, client_a, sp_connection):
    data = create_handoff(client_a, sp_connection)
    popup = app.test_client()
    page = popup.get(data["handoff_url"], headers=SAME_ORIGIN).get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    # Another browser cannot open it again, nor post the token without the popup's cookie.
    other = app.test_client()
    assert other.get(data["handoff_url"], headers=SAME_ORIGIN).status_code == 400
    assert (
        other.post(data["handoff_url"], data={"token": token}, headers=SAME_ORIGIN).status_code
        == 400
    )
    # The popup itself with a wrong token: refused, and the right one still works after.
    assert (
        popup.post(data["handoff_url"], data={"token": "wrong"}, headers=SAME_ORIGIN).status_code
        == 400
    )
    done = popup.post(data["handoff_url"], data={"token": token}, headers=SAME_ORIGIN)
    assert done.status_code == 303
    assert "prompt=select_account" in done.headers["Location"]
    # One use: the same token again is refused.
    assert (
        popup.post(data["handoff_url"], data={"token": token}, headers=SAME_ORIGIN).status_code
        == 400
    )


@pytest.mark.parametrize(
    "disguise",
    [
        "/static/../oauth/handoff/{id}",
        "/static/%2e%2e/oauth/handoff/{id}",
        "/static/.%2e/oauth/handoff/{id}",
        "/static/x/../../oauth/handoff/{id}",
        "/static/%2E%2E/oauth/callback",
        "/connections/../oauth/handoff/{id}",
        "/./oauth/handoff/{id}",
        "/static/app.css",
    ],
)
def test_sign_in_never_continues_to_a_disguised_oauth_path(
    app, admin_a, client_a, sp_connection, disguise
):
    """A browser removes dot segments when it follows a redirect (RFC 3986 §5.2.4), so a
    target is judged as the browser will resolve it; static files are no sign-in target."""
    handoff_id = create_handoff(client_a, sp_connection)["handoff_url"].rsplit("/", 1)[1]
    target = disguise.format(id=handoff_id)
    response = login_as(app.test_client(), admin_a.email, next_path=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/", target


def test_a_malformed_page_address_is_no_error(app, client, client_a, sp_connection):
    """Headers naming the page an action came from are the browser's word, or anyone's: a
    malformed one is ignored, never a 500."""
    assert (
        client.get("/", headers={"HX-Request": "true", "HX-Current-URL": "http://[::1"}).status_code
        < 500
    )
    client_a.application.config["REAUTH_MINUTES"] = 0
    token = csrf(client_a)
    stale = client_a.post(
        f"/connections/{sp_connection.id}/link",
        data={"csrf_token": token},
        headers={"Referer": "http://[::1"},
    )
    assert stale.status_code == 303 and stale.headers["Location"].startswith("/reauth")


def test_the_handoff_answers_get_only(app, client_a, sp_connection):
    data = create_handoff(client_a, sp_connection)
    assert app.test_client().head(data["handoff_url"], headers=SAME_ORIGIN).status_code == 405
    assert handoff_rows(app)[0]["opened_at"] is None


def test_sign_in_never_continues_to_an_oauth_path(app, client, admin_a, client_a, sp_connection):
    """/login?next=/oauth/handoff/... would turn a lure into a same-origin navigation."""
    data = create_handoff(client_a, sp_connection)
    for target in (data["handoff_url"], "/oauth/callback", "/%6fauth/handoff/x"):
        response = login_as(app.test_client(), admin_a.email, next_path=target)
        assert response.status_code == 302
        assert "/oauth/" not in response.headers["Location"], target
    page = client.get("/login?next=" + data["handoff_url"]).get_data(as_text=True)
    assert data["handoff_url"] not in page
    assert handoff_rows(app)[0]["opened_at"] is None


# --- the result waits for the session that started it -----------------------------------------


def test_only_the_starting_session_can_confirm(
    app, client_a, login, admin_a, sim, sim_session, sp_connection
):
    data = create_handoff(client_a, sp_connection)
    popup_completes(app, sim, sim_session, data["handoff_url"])
    other_tab = login(admin_a)  # the same admin in another browser
    handoff_id = data["handoff_url"].rsplit("/", 1)[1]
    refused = other_tab.post(
        f"/connections/{sp_connection.id}/link/confirm",
        data={"csrf_token": csrf(other_tab), "handoff": handoff_id, "decision": "confirm"},
    )
    assert refused.status_code == 303
    assert reload(app, sp_connection.id).state != "connected"
    assert stored_cache(app, sp_connection.id) is None
    assert pending_secret(app, data["handoff_url"])  # still waiting for the right session
    confirm_in_frame(client_a, sp_connection.id)
    assert reload(app, sp_connection.id).state == "connected"
    assert pending_secret(app, data["handoff_url"]) is None
    with app.app_context():
        actions = [e.action for e in storage.list_audit_events(connection_id=sp_connection.id)]
    assert "connection.link_confirmed" in actions and "connection.link_redeemed" in actions


def test_not_this_one_destroys_the_tokens(app, client_a, sim, sim_session, sp_connection):
    data = create_handoff(client_a, sp_connection)
    popup_completes(app, sim, sim_session, data["handoff_url"])
    body = confirm_in_frame(client_a, sp_connection.id, decision="cancel").get_data(as_text=True)
    assert "Nothing was linked" in body
    assert pending_secret(app, data["handoff_url"]) is None
    assert stored_cache(app, sp_connection.id) is None
    assert reload(app, sp_connection.id).state != "connected"


def test_an_unconfirmed_result_expires_and_is_destroyed(
    app, client_a, runner, sim, sim_session, sp_connection
):
    data = create_handoff(client_a, sp_connection)
    popup_completes(app, sim, sim_session, data["handoff_url"])
    assert pending_secret(app, data["handoff_url"])
    with app.app_context():
        db.get_db().execute(
            "UPDATE link_outcomes SET finished_at = finished_at - ?",
            [storage.CONFIRM_TTL_SECONDS + 1],
        )
    body = client_a.get(f"/connections/{sp_connection.id}/link-status").get_data(as_text=True)
    assert "not confirmed in time" in body and "Confirm and link" not in body
    handoff_id = data["handoff_url"].rsplit("/", 1)[1]
    late = client_a.post(
        f"/connections/{sp_connection.id}/link/confirm",
        data={"csrf_token": csrf(client_a), "handoff": handoff_id, "decision": "confirm"},
        headers={"HX-Request": "true"},
    )
    assert "not confirmed in time" in late.get_data(as_text=True)
    assert reload(app, sp_connection.id).state != "connected"
    runner.invoke(args=["refresh-tokens"])  # the cron destroys what nobody confirmed
    assert pending_secret(app, data["handoff_url"]) is None


# --- a tenant linked by another organization --------------------------------------------------


@pytest.fixture
def tenant_of_b(app, make_connection, org_b, provider):
    """Organization B already has a proven connection to the customer's tenant."""
    return make_connection(
        org_b,
        "service_provider",
        "Fabrikam's link",
        cloud="sim-global",
        tenant_id=provider["customer"]["id"],
        state="connected",
        health="healthy",
    )


def test_a_tenant_linked_by_another_organization_is_held(
    app, client_a, support_client, runner, sim, sim_session, sp_connection, tenant_of_b, provider
):
    page = run_flow(client_a, sim, sim_session, sp_connection, follow=False)
    assert page.status_code == 303 and "linked=1" not in page.headers["Location"]
    shown = client_a.get(page.headers["Location"]).get_data(as_text=True)
    assert "Held for review" in shown and "Connected." not in shown
    # "You don't need to do anything now" is true: no Link Account to start another hold.
    assert "data-link-popup" not in shown
    held = reload(app, sp_connection.id)
    assert held.state != "connected" and held.tenant_id is None
    assert stored_cache(app, sp_connection.id) is None
    with app.app_context():
        [review] = storage.list_link_reviews("held")
        audit = storage.list_audit_events(action="connection.link_held")
    assert review.other_org_ids == (tenant_of_b.org_id,)
    # An operator types it on a command line: never a leading "-" (read as an option).
    assert re.fullmatch(r"[0-9a-f]{24}", review.id)
    assert audit[0].detail["organization"]["name"] == "Contoso"
    assert [o["name"] for o in audit[0].detail["other_organizations"]] == ["Fabrikam"]
    dashboard = support_client.get("/support/").get_data(as_text=True)
    assert "Links held for review (1)" in dashboard
    assert review.id in dashboard and "Fabrikam" in dashboard and "Contoso" in dashboard

    listed = runner.invoke(args=["link-review", "list"])
    assert review.id in listed.output and "'Fabrikam'" in listed.output
    approved = runner.invoke(args=["link-review", "approve", review.id, "--by", "ops@portal"])
    assert approved.exit_code == 0, approved.output
    linked = reload(app, sp_connection.id)
    assert linked.state == "connected" and linked.tenant_id == provider["customer"]["id"]
    assert stored_cache(app, sp_connection.id)
    again = runner.invoke(args=["link-review", "approve", review.id, "--by", "ops@portal"])
    assert again.exit_code != 0


def test_a_rejected_hold_destroys_the_tokens(
    app, client_a, runner, sim, sim_session, sp_connection, tenant_of_b
):
    run_flow(client_a, sim, sim_session, sp_connection, follow=False)
    with app.app_context():
        [review] = storage.list_link_reviews("held")
        assert storage.get_secret("link_reviews", review.id, "token_cache")
    rejected = runner.invoke(args=["link-review", "reject", review.id, "--by", "ops@portal"])
    assert rejected.exit_code == 0, rejected.output
    with app.app_context():
        assert storage.get_secret("link_reviews", review.id, "token_cache") is None
        assert storage.get_link_review(review.id).status == "rejected"
    assert reload(app, sp_connection.id).state != "connected"


def test_a_popup_link_to_a_shared_tenant_is_held_after_confirmation(
    app, client_a, sim, sim_session, sp_connection, tenant_of_b
):
    data = create_handoff(client_a, sp_connection)
    popup_completes(app, sim, sim_session, data["handoff_url"])
    body = confirm_in_frame(client_a, sp_connection.id).get_data(as_text=True)
    assert "Held for review" in body
    assert reload(app, sp_connection.id).state != "connected"
    with app.app_context():
        assert len(storage.list_link_reviews("held")) == 1


# --- the callback keeps the flow of the browser it is not for ---------------------------------


def test_a_forged_answer_does_not_end_the_browsers_flow(
    app, client_a, sim, sim_session, sp_connection
):
    start = client_a.post(
        f"/connections/{sp_connection.id}/link", data={"csrf_token": csrf(client_a)}
    )
    assert start.status_code == 303
    forged = client_a.post(
        "/oauth/callback",
        data={"state": "x" * 43, "code": "forged"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert forged.status_code == 400
    assert not any(c.startswith(FLOW_COOKIE) for c in forged.headers.getlist("Set-Cookie"))
    # The real answer still completes the flow the browser started.
    sim.set_interaction("consent", user=ADMIN_UPN)
    _target, fields = follow_authorize(sim_session, start.headers["Location"])
    done = client_a.post("/oauth/callback", data=fields, headers={"Sec-Fetch-Site": "cross-site"})
    assert done.status_code == 303
    assert reload(app, sp_connection.id).state == "connected"
    assert token_calls(sim) == 1


def test_an_admin_consent_state_is_not_a_delegated_flow(app, client_a, sp_connection):
    """A state of the other kind is refused at the callback and not burnt there."""
    with app.app_context():
        storage.create_auth_flow(
            state="s" * 43,
            kind="admin_consent",
            connection_id=sp_connection.id,
            user_id=None,
            browser_cookie="c" * 43,
            flow={"msal": {"state": "s" * 43}},
        )
    client_a.set_cookie(FLOW_COOKIE, "c" * 43)
    response = client_a.post(
        "/oauth/callback",
        data={"state": "s" * 43, "code": "x"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 400
    with app.app_context():
        row = db.get_db().execute("SELECT consumed_at FROM auth_flows").fetchone()
    assert row[0] is None


def test_deleting_the_connection_destroys_unlinked_results(
    app, client_a, sim, sim_session, sp_connection, tenant_of_b
):
    """A result waiting for confirmation and a held link are tokens too: deletion destroys
    them and closes the hold."""
    data = create_handoff(client_a, sp_connection)
    popup_completes(app, sim, sim_session, data["handoff_url"])
    run_flow(client_a, sim, sim_session, sp_connection, follow=False)  # held (shared tenant)
    assert pending_secret(app, data["handoff_url"])
    deleted = client_a.post(
        f"/connections/{sp_connection.id}/delete", data={"csrf_token": csrf(client_a)}
    )
    assert deleted.status_code == 303
    assert pending_secret(app, data["handoff_url"]) is None
    with app.app_context():
        [review] = storage.list_link_reviews(None, sp_connection.id)
        assert review.status == "rejected"
        assert storage.get_secret("link_reviews", review.id, "token_cache") is None


def test_the_popup_cookie_is_one_a_browser_accepts(app, client_a, sp_connection):
    """Under https the cookie is __Host-: browsers store it only with Secure, Path=/ and no
    Domain (RFC 6265bis, cookie name prefixes), else the confirmation could never be posted."""
    data = create_handoff(client_a, sp_connection)
    page = app.test_client().get(data["handoff_url"], headers=SAME_ORIGIN)
    [cookie] = [c for c in page.headers.getlist("Set-Cookie") if "portal_handoff=" in c]
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert cookie.startswith("__Host-portal_handoff=")
    assert "path=/" in attributes and "secure" in attributes and "httponly" in attributes
    assert "samesite=strict" in attributes
    assert not any(a.startswith("domain=") for a in attributes)
