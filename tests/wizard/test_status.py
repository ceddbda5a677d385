"""Link Account / Check again against the simulator, admin consent, polling, the connection page."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from portal import create_app, storage
from portal.blueprints.connection import MAX_POLLS
from portal.storage import vault
from tests.wizard.helpers import (
    ALL_GRAPH,
    EXCHANGE_ADMIN,
    HX,
    check_again,
    connection,
    follow_job,
    link,
    ready,
    text,
    wait_for_jobs,
)


def marks(body: str) -> tuple[int, int]:
    return body.count("✓</span>"), body.count("✗</span>")


def test_link_all_items_ok(app, wizard, sim, tenant, admin_a):
    ready(app, wizard, sim, tenant)
    response = link(wizard)
    body = text(response)
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="checklist"')
    assert "Linked." in body and marks(body) == (5, 0)
    assert "hx-trigger" not in body.split("<form", 1)[0]  # no polling once ok
    item = connection(app, wizard.id)
    assert item.state == "connected" and item.health == "healthy"
    assert item.tenant_id == tenant["id"] and item.tenant_name == "Contoso Ltd"
    assert item.tenant_domain == "contoso.onmicrosoft.com"
    assert item.last_check["ok"] is True and item.last_checked_at
    assert "PRIVATE KEY" not in str(item.last_check) and "eyJ" not in str(item.last_check)
    with app.app_context():
        events = storage.list_health_events(wizard.id)
        audit = storage.list_audit_events(connection_id=wizard.id, action="connection.check")
    assert events[0].outcome == "ok" and events[0].health == "healthy"
    assert audit[0].actor_user_id == admin_a.id and audit[0].detail["ok"] is True


def test_one_permission_missing_is_exactly_that_item(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant, grants=ALL_GRAPH[:3])
    body = text(link(wizard))
    assert marks(body) == (4, 1)
    missing = body.split('class="check missing"', 1)[1].split("</li>", 1)[0]
    assert "User.EnableDisableAccount.All" in missing
    assert "Application permissions → User.EnableDisableAccount.All" in missing  # the fix
    assert f"/appId/{tenant['client_id']}" in missing  # deep link to API permissions
    item = connection(app, wizard.id)
    # Never proven: the setup goes on (not red); the health record says whose move it is.
    assert (item.state, item.health) == ("waiting", "unknown")
    assert item.error_class == "needs_customer" and item.failing_since == item.last_attempt_at
    assert item.last_success_at is None
    with app.app_context():
        assert storage.list_health_events(wizard.id)[0].summary["missing"] == [
            "app:User.EnableDisableAccount.All"
        ]


def test_role_missing(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant, roles=())
    body = text(link(wizard))
    assert marks(body) == (4, 1)
    missing = body.split('class="check missing"', 1)[1].split("</li>", 1)[0]
    assert "Role: User Administrator" in missing and "Add assignments" in missing
    assert "RolesManagementMenuBlade" in missing


def test_exchange_on(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    wizard.post(f"{wizard.url}/exchange", {"exchange": "1"})
    body = text(link(wizard))
    assert marks(body) == (5, 2)
    assert "Exchange.ManageAsApp" in body and "Role: Exchange Administrator" in body
    sim.grant_app_role(
        tenant["id"], tenant["client_id"], "Exchange.ManageAsApp", resource="exchange"
    )
    sim.assign_directory_role(tenant["id"], tenant["client_id"], EXCHANGE_ADMIN)
    body = text(link(wizard))
    assert marks(body) == (7, 0) and "Linked." in body
    assert connection(app, wizard.id).state == "connected"


def test_certificate_not_uploaded_blocks_with_the_reason(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant, upload=False)
    body = text(link(wizard))
    assert "Linked." not in body and 'class="alert alert-warning"' in body
    assert connection(app, wizard.id).state == "waiting"


def test_link_before_the_setup_is_a_message(app, wizard):
    body = text(link(wizard))
    assert "Enter the cloud, the tenant and the client ID first" in body
    assert connection(app, wizard.id).state == "draft"


def test_link_without_javascript_redirects_to_the_checklist(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    response = link(wizard, htmx=False)
    assert response.status_code == 302 and response.headers["Location"].endswith("#step-link")
    wait_for_jobs(app, wizard.id)
    body = wizard.page()
    assert "Linked." in body and marks(body)[1] == 0


def test_revoking_a_permission_shows_on_check_again_from_the_connection_page(
    app, wizard, sim, tenant
):
    ready(app, wizard, sim, tenant)
    link(wizard)
    sim.revoke_app_role(tenant["id"], tenant["client_id"], "Group.ReadWrite.All")
    response = check_again(wizard)
    body = text(response)
    assert body.lstrip().startswith('<div id="connection-status"')
    assert marks(body) == (4, 1) and "Group.ReadWrite.All" in body.split("check missing")[1]
    assert "Needs attention" in body


def test_unreadable_private_key_needs_reconnect_not_500(app_config, app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    # A worker whose keyring lacks the key: our configuration, not the customer's to fix.
    other = create_app({**app_config, "VAULT_KEYS": vault.Keyring.generate()})
    client = other.test_client()
    client.set_cookie("session", wizard.client.get_cookie("session").value)
    response = client.post(
        f"/connections/{wizard.id}/check",
        data={"where": "wizard", "csrf_token": wizard.token},
        headers=HX,
    )
    response = follow_job(client, response)
    assert "problem on our side" in text(response) and "reconnect" not in text(response)
    item = connection(app, wizard.id)
    assert (item.state, item.error_class) == ("waiting", "our_config")
    # A row no keyring can open is gone for the customer: reconnect.
    with app.app_context():
        storage.get_db().execute("UPDATE vault_blobs SET nonce = zeroblob(4)")
    response = link(wizard)
    assert response.status_code == 200
    assert "Create a new certificate (step 4)" in text(response)
    assert connection(app, wizard.id).state == "needs_reconnect"
    # A new certificate starts over: waiting for the customer's upload.
    wizard.post(f"{wizard.url}/certificate", {"replace": "1"})
    assert connection(app, wizard.id).state == "waiting"


# --- Polling after consent (replication) -----------------------------------------------------


def test_checklist_polls_after_consent_for_a_bounded_number_of_attempts(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant, grants=ALL_GRAPH[:3])
    with app.app_context():
        storage.update_connection(wizard.id, consented_at=storage.utcnow())
    body = text(link(wizard))
    assert 'hx-trigger="load delay:3s"' in body and '"attempt": "1"' in body
    assert "attempt 1 of 10" in body
    body = text(link(wizard, attempt="4"))
    assert '"attempt": "5"' in body
    body = text(link(wizard, attempt=str(MAX_POLLS)))
    assert 'hx-trigger="load' not in body
    assert "Microsoft still doesn't show the change" in body and "Check again" in body
    # The customer grants the last one: the next poll is all ✓ and stops.
    sim.grant_app_role(tenant["id"], tenant["client_id"], "User.EnableDisableAccount.All")
    body = text(link(wizard, attempt="2"))
    assert "Linked." in body and 'hx-trigger="load' not in body


def test_no_polling_without_a_recent_consent(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant, grants=ALL_GRAPH[:3])
    body = text(link(wizard))
    assert 'hx-trigger="load' not in body and "Check again" in body


def test_polls_are_posts_and_a_get_never_checks(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    assert wizard.client.get(f"/connections/{wizard.id}/check").status_code == 405
    assert connection(app, wizard.id).last_check is None


# --- Admin consent ---------------------------------------------------------------------------


def start_consent(wizard):
    response = wizard.post(f"/connections/{wizard.id}/admin-consent", htmx=False)
    assert response.status_code == 302
    location = response.headers["Location"]
    return location, parse_qs(urlsplit(location).query)


def test_admin_consent_link_is_prefilled(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    location, query = start_consent(wizard)
    assert urlsplit(location).path == f"/{tenant['id']}/v2.0/adminconsent"
    assert query["client_id"] == [tenant["client_id"]]
    assert query["scope"] == ["https://graph.microsoft.com/.default"]
    assert query["redirect_uri"] == ["https://portal.example/connections/admin-consent/return"]
    state = query["state"][0]
    assert len(state) >= 43
    cookie = wizard.client.get_cookie("portal_consent", path="/connections/admin-consent/return")
    assert cookie is not None and cookie.http_only
    with app.app_context():
        row = storage.consume_auth_flow(state, cookie.value, "admin_consent")
    assert row is not None and row.kind == "admin_consent" and row.connection_id == wizard.id


def test_consent_cookie_is_secure_when_the_public_url_is_https(app, wizard, sim, tenant):
    """Behind a TLS-terminating proxy the request arrives over http: the cookie must still be
    Secure, since the browser talks to https://portal.example."""
    ready(app, wizard, sim, tenant)
    response = wizard.post(f"/connections/{wizard.id}/admin-consent", htmx=False)
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if "portal_consent=" in c]
    assert "; Secure" in cookie and "HttpOnly" in cookie
    app.config["PUBLIC_URL"] = "http://127.0.0.1:5000"  # development over plain http
    response = wizard.post(f"/connections/{wizard.id}/admin-consent", htmx=False)
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if "portal_consent=" in c]
    assert "Secure" not in cookie


def test_admin_consent_inside_a_frame_offers_what_works_there(app, wizard, sim, tenant):
    """Microsoft's page can't be framed: a framed post gets a page with the two working routes
    (API permissions in a new tab; the setup in its own tab) and starts nothing."""
    ready(app, wizard, sim, tenant)
    response = wizard.client.post(
        f"/connections/{wizard.id}/admin-consent",
        data={"csrf_token": wizard.token},
        headers={"Sec-Fetch-Dest": "iframe"},
    )
    assert response.status_code == 200
    body = text(response)
    assert "consent page cannot be shown inside" in body
    assert "/_sim/admin" in body and tenant["client_id"] in body  # the cloud's API permissions
    assert 'target="_blank"' in body and f"/connections/{wizard.id}/setup#step-permissions" in body
    assert (
        wizard.client.get_cookie("portal_consent", path="/connections/admin-consent/return") is None
    )
    with app.app_context():
        assert storage.table_counts(["auth_flows"])["auth_flows"] == 0


def test_admin_consent_return_links_once(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    _, query = start_consent(wizard)
    url = "/connections/admin-consent/return"
    params = {"admin_consent": "True", "tenant": tenant["id"], "state": query["state"][0]}
    response = wizard.client.get(url, query_string=params)
    assert response.status_code == 302 and response.headers["Location"].endswith("#step-link")
    body = wizard.page()
    # The check is a job (no request waits on Microsoft): the page shows it running.
    assert "Admin consent recorded. We are checking every item with Microsoft now" in body
    job = wait_for_jobs(app, wizard.id)
    assert job is not None and job.kind == "check" and job.status == "done"
    assert "Linked." in wizard.page()
    item = connection(app, wizard.id)
    assert item.state == "connected" and item.consented_at
    with app.app_context():
        assert storage.list_health_events(wizard.id, limit=1)[0].summary["trigger"] == "consent"
    # The same state again is refused.
    again = wizard.client.get(url, query_string=params)
    assert again.headers["Location"] == "/"
    assert "expired, was already used" in text(wizard.client.get("/"))


def test_admin_consent_return_from_another_browser_is_refused(
    app, login, admin_a, wizard, sim, tenant
):
    ready(app, wizard, sim, tenant)
    _, query = start_consent(wizard)
    other = login(admin_a)  # same person, another browser: no binding cookie
    response = other.get(
        "/connections/admin-consent/return",
        query_string={"tenant": tenant["id"], "state": query["state"][0]},
    )
    assert response.headers["Location"] == "/"
    assert connection(app, wizard.id).consented_at is None


def test_admin_consent_expired_state_is_refused(app, wizard, sim, tenant, admin_a):
    ready(app, wizard, sim, tenant)
    with app.app_context():
        storage.create_auth_flow(
            state="s" * 43,
            kind="admin_consent",
            connection_id=wizard.id,
            user_id=admin_a.id,
            browser_cookie="browser",
            flow={},
            ttl=600,
            now=time.time() - 601,
        )
    wizard.client.set_cookie("portal_consent", "browser", path="/connections/admin-consent/return")
    response = wizard.client.get(
        "/connections/admin-consent/return",
        query_string={"tenant": tenant["id"], "state": "s" * 43},
    )
    assert response.headers["Location"] == "/"
    assert connection(app, wizard.id).consented_at is None


def test_admin_consent_forged_tenant_is_ignored_and_reported(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    _, query = start_consent(wizard)
    forged = "00000000-0000-0000-0000-000000000001"
    response = wizard.client.get(
        "/connections/admin-consent/return",
        query_string={"admin_consent": "True", "tenant": forged, "state": query["state"][0]},
    )
    assert response.status_code == 302
    body = wizard.page()
    assert f"Microsoft's answer named another tenant ({forged}). We ignored it" in body
    wait_for_jobs(app, wizard.id)
    item = connection(app, wizard.id)
    assert item.tenant_id == tenant["id"] and item.state == "connected"


def test_admin_consent_declined_in_plain_words(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    _, query = start_consent(wizard)
    response = wizard.client.get(
        "/connections/admin-consent/return",
        query_string={
            "error": "access_denied",
            "error_description": "AADSTS65004: <b>declined</b>",
            "state": query["state"][0],
        },
    )
    assert response.headers["Location"].endswith("#step-permissions")
    body = wizard.page()
    assert "Admin consent was declined, so nothing was granted." in body
    assert connection(app, wizard.id).consented_at is None


@pytest.mark.parametrize(
    ("error", "description", "words"),
    [
        (
            "invalid_request",
            "AADSTS50020: User account 65004@fabrikam.com is from another tenant.",
            "does not belong to the organization you are connecting",
        ),
        (
            "access_denied",
            "AADSTS53003: Access has been blocked by Conditional Access policies.",
            "A Conditional Access policy in your tenant blocked the sign-in.",
        ),
    ],
)
def test_admin_consent_refusal_that_is_not_a_decline(
    app, wizard, sim, tenant, error, description, words
):
    ready(app, wizard, sim, tenant)
    _, query = start_consent(wizard)
    wizard.client.get(
        "/connections/admin-consent/return",
        query_string={"error": error, "error_description": description, "state": query["state"][0]},
    )
    body = wizard.page()
    assert "Admin consent was declined" not in body
    assert "Microsoft did not grant consent." in body and words in body
    assert connection(app, wizard.id).consented_at is None


def test_admin_consent_other_error_is_escaped(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    _, query = start_consent(wizard)
    wizard.client.get(
        "/connections/admin-consent/return",
        query_string={
            "error": "server_error",
            "error_description": "<script>alert(1)</script>",
            "state": query["state"][0],
        },
    )
    raw = wizard.client.get(wizard.url).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw and "<script>alert" not in raw


def test_admin_consent_needs_the_tenant_and_client_first(wizard):
    response = wizard.post(f"/connections/{wizard.id}/admin-consent", htmx=False)
    assert response.headers["Location"].endswith("#step-permissions")
    assert "Enter the cloud, a tenant we found and the client ID first" in wizard.page()


# --- The connection page ---------------------------------------------------------------------


def test_connection_page_shows_lifecycle_checklist_and_history(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    body = text(wizard.client.get(f"/connections/{wizard.id}"))
    assert 'aria-current="step"><strong>Waiting for setup</strong>' in body
    assert "Continue setup" in body and "Not checked yet." in body and "Link Account" in body
    link(wizard)
    body = text(wizard.client.get(f"/connections/{wizard.id}"))
    assert 'aria-current="step"><strong>Connected</strong>' in body
    assert marks(body) == (5, 0) and "Check again" in body
    assert "Recent checks" in body and "Healthy" in body
    assert "Continue setup" not in body


def test_support_sees_the_checklist_without_buttons(app, wizard, sim, tenant, support_client):
    ready(app, wizard, sim, tenant, grants=ALL_GRAPH[:3])
    link(wizard)
    body = text(support_client.get(f"/connections/{wizard.id}"))
    assert marks(body) == (4, 1)
    main = body.split("<main", 1)[1]
    assert "<form" not in main and "Check again" not in main and "Continue setup" not in main
    assert "PRIVATE KEY" not in body


@pytest.mark.parametrize("where", ["wizard", "page"])
def test_other_organization_cannot_check(client_b, wizard, where):
    from tests.conftest import csrf_token

    token = csrf_token(client_b, "/")
    response = client_b.post(
        f"/connections/{wizard.id}/check", data={"csrf_token": token, "where": where}, headers=HX
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "endpoint, fault",
    [
        ("token", {"status": 503}),
        ("token", {"status": 429, "retry_after": 1}),
        ("openid-configuration", {"status": 503}),
    ],
    ids=["token-503", "token-429", "discovery-503"],
)
def test_a_check_microsoft_did_not_let_finish_changes_nothing(
    app, wizard, sim, tenant, endpoint, fault
):
    """Throttling or an outage at Microsoft is a failed attempt, not a finding: the connection
    stays connected with its last good report, and says it could not check."""
    ready(app, wizard, sim, tenant)
    link(wizard)
    before = connection(app, wizard.id)
    assert before.state == "connected" and before.health == "healthy"
    sim.set_fault(endpoint, "status", **fault)
    response = check_again(wizard)
    body = text(response)
    assert response.status_code == 200
    assert "did not let us finish this check" in body and "Linked." in body
    assert "Could not check: " in body  # the attempt, in the recent checks
    after = connection(app, wizard.id)
    assert after.state == "connected" and after.health == "degraded"
    assert after.last_check == before.last_check
    assert after.last_checked_at == before.last_checked_at
    with app.app_context():
        latest = storage.list_health_events(wizard.id)[0]
    assert latest.outcome == "check_transient" and latest.health == "degraded"
    sim.clear_faults()
    check_again(wizard)
    recovered = connection(app, wizard.id)
    assert (recovered.state, recovered.health) == ("connected", "healthy")


def test_an_interrupted_first_check_keeps_a_setup_in_progress_as_it_was(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    before = connection(app, wizard.id)
    sim.set_fault("token", "status", status=503)
    body = text(link(wizard))
    assert "did not let us finish this check" in body
    after = connection(app, wizard.id)
    assert (after.state, after.health) == (before.state, before.health)
    assert after.last_check is None


def test_admin_consent_return_during_an_outage_says_the_check_did_not_finish(
    app, wizard, sim, tenant
):
    ready(app, wizard, sim, tenant)
    _, query = start_consent(wizard)
    sim.set_fault("token", "status", status=503)
    params = {"admin_consent": "True", "tenant": tenant["id"], "state": query["state"][0]}
    wizard.client.get("/connections/admin-consent/return", query_string=params)
    assert wait_for_jobs(app, wizard.id).status == "failed"
    body = wizard.page()
    assert "Microsoft did not let us finish this check" in body
    item = connection(app, wizard.id)
    assert item.consented_at and (item.state, item.error_class) == ("waiting", "transient")
