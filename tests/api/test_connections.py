"""Connections through the API: the fields (never a secret), pages, and delete = the UI's."""

from __future__ import annotations

import json

from portal import storage
from tests.api.conftest import MSAL_FLOW, PRIVATE_KEY, TOKEN_CACHE, vault_rows
from tests.api.test_problems import assert_problem
from tests.conftest import csrf_token

SECRETS = (TOKEN_CACHE.decode(), PRIVATE_KEY.decode(), MSAL_FLOW["code_verifier"], "rt-never")


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "PRIVATE KEY" not in text and "CERTIFICATE" not in text


def test_a_connection_has_its_state_health_record_checklist_and_certificate(
    api, make_key, host_org, seed_connection
):
    connection = seed_connection(host_org)
    answer = api.request("GET", f"/api/v1/connections/{connection.id}", make_key())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "id": connection.id,
        "organization": "acme-1",
        "kind": "customer_owned",
        "display_name": "HR sync",
        "cloud": "global",
        "tenant": {
            "id": "11111111-2222-3333-4444-555555555555",
            "name": "Acme Ltd",
            "domain": "acme.onmicrosoft.com",
        },
        "state": "connected",
        "health": "degraded",
        "health_record": {
            "last_attempt_at": "2026-11-30T10:00:00+00:00",
            "last_success_at": "2026-11-29T10:00:00+00:00",
            "last_failure_at": "2026-11-30T10:00:00+00:00",
            "failing_since": "2026-11-30T10:00:00+00:00",
            "error_class": "needs_customer",
            "last_changes": [{"key": "Group.Read.All", "to": "missing", "text": "Groups removed"}],
        },
        "last_checked_at": "2026-11-30T10:00:00+00:00",
        "checklist": {
            "total": 3,
            "ok": 1,
            "missing": 1,
            "unknown": 1,
            "missing_items": ["Group.Read.All"],
        },
        "certificate_expires_at": "2027-01-01T00:00:00+00:00",
        "created_at": connection.created_at,
        "updated_at": body["updated_at"],
    }
    assert_no_secret(answer.text)


def test_a_new_connection_has_no_checklist_and_no_certificate(
    app, api, make_key, host_org, make_connection
):
    connection = make_connection(host_org, "service_provider")
    body = api.request("GET", f"/api/v1/connections/{connection.id}", make_key()).json()
    assert body["state"] == "draft" and body["health"] == "unknown"
    assert body["checklist"] is None and body["certificate_expires_at"] is None
    assert body["tenant"] == {"id": None, "name": None, "domain": None}


def test_the_list_comes_in_pages_with_a_cursor(api, make_key, host_org, seed_connection):
    key = make_key("connections:read")
    seeded = [seed_connection(host_org) for _ in range(5)]
    made = [c.id for c in sorted(seeded, key=lambda c: (c.created_at, c.id))]  # oldest first
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.request("GET", "/api/v1/organizations/acme-1/connections", key, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [c["id"] for c in body["items"]]
        pages += 1
        assert_no_secret(page.text)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == made and pages == 3
    whole = api.request("GET", "/api/v1/organizations/acme-1/connections", key).json()
    assert [c["id"] for c in whole["items"]] == made and whole["next_cursor"] is None
    for bad in ("not-a-cursor", "AAAA", "x" * 201):
        answer = api.request(
            "GET", "/api/v1/organizations/acme-1/connections", key, params={"cursor": bad}
        )
        assert_problem(answer, 400, "invalid_request")
    ignored = api.request(
        "GET", "/api/v1/organizations/acme-1/connections", key, params={"_": "123"}
    )
    assert ignored.status_code == 200  # unknown query parameters are ignored
    for limit in (0, 101, "x"):
        answer = api.request(
            "GET", "/api/v1/organizations/acme-1/connections", key, params={"limit": limit}
        )
        assert_problem(answer, 400, "invalid_request")


def test_only_connections_of_organizations_the_host_named_are_found(
    api, make_key, host_org, org_a, make_connection, seed_connection
):
    """Keys are deployment-wide but act only on organizations known by an external id: a
    connection of an organization made in the portal alone is not found."""
    key = make_key()
    hidden = make_connection(org_a)
    assert_problem(api.request("GET", f"/api/v1/connections/{hidden.id}", key), 404, "not_found")
    assert_problem(api.request("DELETE", f"/api/v1/connections/{hidden.id}", key), 404, "not_found")
    assert_problem(api.request("GET", f"/api/v1/connections/{'0' * 32}", key), 404, "not_found")
    assert_problem(api.request("GET", "/api/v1/connections/ABC", key), 400, "invalid_request")
    mine = seed_connection(host_org)
    listed = api.request("GET", "/api/v1/organizations/acme-1/connections", key).json()
    assert [c["id"] for c in listed["items"]] == [mine.id]
    answer = api.request("GET", "/api/v1/organizations/nobody/connections", key)
    assert_problem(answer, 404, "not_found")


def test_delete_destroys_every_secret_like_the_portals_delete(
    app, api, make_key, host_org, seed_connection, login, make_user
):
    """The same connection deleted through the API and through the page ends the same: no
    vault row left, the same receipt, and the API's audit row names the key."""
    by_api, by_page = seed_connection(host_org), seed_connection(host_org)
    assert len(vault_rows(app, by_api.id)) == 3
    key = make_key("connections:write", name="Host prod")

    answer = api.request("DELETE", f"/api/v1/connections/{by_api.id}", key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert_no_secret(answer.text)
    assert vault_rows(app, by_api.id) == []
    assert body["destroyed"]["token_cache"] == 1 and body["destroyed"]["private_keys"] == 1
    assert body["destroyed"]["flow_secrets"] == 1
    assert body["certificate_thumbprints"] == ["ab" * 20]
    assert any("certificate" in step["title"].lower() for step in body["microsoft_cleanup"])

    admin = login(make_user(org=host_org))
    page = admin.post(
        f"/connections/{by_page.id}/delete", data={"csrf_token": csrf_token(admin, "/")}
    )
    assert page.status_code == 303
    assert vault_rows(app, by_page.id) == []
    with app.app_context():
        api_row = storage.deletion_audit(by_api.id)
        page_row = storage.deletion_audit(by_page.id)
        by_key = storage.list_audit_events(connection_id=by_api.id, action="api.connection.delete")
        gone = storage.get_connection(by_api.id)
    assert api_row.detail == page_row.detail and api_row.actor_user_id is None
    assert body["destroyed"] == api_row.detail["destroyed"]
    assert by_key[0].detail == {"api_key": {"key_id": key.split("_")[2], "name": "Host prod"}}
    assert gone.state == "deleted" and gone.deleted_at == body["deleted_at"]

    again = api.request("DELETE", f"/api/v1/connections/{by_api.id}", key)
    assert_problem(again, 404, "not_found")
    read = make_key("connections:read")
    assert_problem(api.request("GET", f"/api/v1/connections/{by_api.id}", read), 404, "not_found")
    listed = api.request("GET", "/api/v1/organizations/acme-1/connections", read).json()
    assert listed["items"] == []
    assert json.dumps(body).count(by_api.id) == 1
