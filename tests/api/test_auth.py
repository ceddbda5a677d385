"""Every API route: 401 without a valid key, 403 without its scope; no cookie session; the
request id; last-used kept without a write per request; a rate limit per key."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import request

from portal import create_app, storage
from portal.api import keys
from portal.api.openapi import document
from portal.api.scopes import SCOPES
from tests.api.conftest import Api, serve
from tests.api.test_problems import assert_problem
from tests.conftest import TEST_PASSWORD


def operations(app, connection_id: str):
    """(method, path, scope) of every operation in the document, path parameters filled."""
    with app.test_request_context():
        doc = document(app)
    found = []
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            (requirement,) = operation["security"]
            (scope,) = requirement["apiKey"]
            filled = (
                path.replace("{external_id}", "acme-1")
                .replace("{connection_id}", connection_id)
                .replace("{link_id}", "sl_" + "0" * 24)
            )
            found.append((method.upper(), filled, scope))
    return found


@pytest.fixture
def every_operation(app, host_org, seed_connection):
    connection = seed_connection(host_org)
    found = operations(app, connection.id)
    assert len(found) == 9
    return found


def send(api, method, path, key=None, **kwargs):
    body = {"json": {"name": "Acme"}} if method == "PUT" else {}
    return api.request(method, path, key, **body, **kwargs)


def test_every_route_refuses_a_request_without_a_valid_key(api, make_key, every_operation):
    real = make_key("connections:read", "connections:write")
    wrong = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")  # mistyped secret
    for method, path, _scope in every_operation:
        for headers, invalid_token in (
            ({}, False),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, False),
            ({"Authorization": "Bearer not-a-key"}, True),
            ({"Authorization": f"Bearer {wrong}"}, True),
            ({"Authorization": "Bearer cl\u00e9"}, True),  # not ASCII: still just a wrong key
        ):
            answer = send(api, method, path, headers=headers)
            assert_problem(answer, 401, "unauthorized")
            challenge = answer.headers["WWW-Authenticate"]
            assert challenge.startswith("Bearer realm=")
            assert ('error="invalid_token"' in challenge) is invalid_token


def test_a_revoked_key_is_refused(app, api, make_key, host_org):
    key = make_key("connections:read")
    assert api.request("GET", "/api/v1/organizations/acme-1", key).status_code == 200
    with app.app_context():
        storage.revoke_api_key(key.split("_")[2])
    assert_problem(api.request("GET", "/api/v1/organizations/acme-1", key), 401, "unauthorized")


def test_every_route_needs_its_scope(api, make_key, every_operation):
    keys = {scope: make_key(*(other for other in SCOPES if other != scope)) for scope in SCOPES}
    for method, path, scope in every_operation:
        answer = send(api, method, path, keys[scope])
        assert_problem(answer, 403, "forbidden_scope")
        assert f'error="insufficient_scope", scope="{scope}"' in answer.headers["WWW-Authenticate"]
        assert scope in answer.json()["detail"]


def test_the_portal_session_cookie_is_neither_read_nor_set(app, api, admin_a, make_key):
    """A signed-in browser's cookie grants nothing under /api (only the key does), and the API
    never answers with a cookie, even to a key that comes with one."""
    signed_in = api.session
    page = signed_in.get(api.base + "/login", timeout=10)
    assert page.status_code == 200
    assert login_as_requests(signed_in, api.base, admin_a.email).status_code == 302
    assert "session" in signed_in.cookies
    answer = signed_in.get(api.base + "/api/v1/organizations/acme-1", timeout=10)
    assert_problem(answer, 401, "unauthorized")
    assert "sign-in cookie" in answer.json()["detail"]
    assert "Set-Cookie" not in answer.headers
    key = make_key("connections:read")
    keyed = api.request("GET", "/api/v1/organizations/nobody", key)
    assert keyed.status_code == 404 and "Set-Cookie" not in keyed.headers
    assert "Set-Cookie" not in api.request("GET", "/api/v1/openapi.json").headers


def test_api_requests_get_a_null_session_and_pages_the_portals(app):
    interface = app.session_interface
    with app.test_request_context("/api/v1/organizations/a"):
        assert interface.open_session(app, request) is None
        # The portal's own cookie policy (plain http on loopback in development: not Secure),
        # not Flask's default answer (SESSION_COOKIE_SECURE, True).
        assert interface.get_cookie_secure(app) is False
    with app.test_request_context("/login"):
        assert interface.open_session(app, request) is not None


def login_as_requests(session, base: str, email: str):
    page = session.get(base + "/login", timeout=10)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    return session.post(
        base + "/login",
        data={"email": email, "password": TEST_PASSWORD, "csrf_token": token},
        headers={"Origin": base},
        allow_redirects=False,
        timeout=10,
    )


@pytest.mark.parametrize(
    ("incoming", "echoed"),
    [
        ("3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f", True),
        ("req_42.a", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("bad id", False),
        ("x\u00e9", False),
        ("", False),
    ],
)
def test_a_safe_request_id_is_echoed_and_anything_else_replaced(api, make_key, incoming, echoed):
    key = make_key("connections:read")
    answer = api.request(
        "GET", "/api/v1/organizations/nobody", key, headers={"X-Request-Id": incoming}
    )
    assert answer.status_code == 404
    request_id = answer.headers["X-Request-ID"]
    assert (request_id == incoming) is echoed
    assert answer.json()["request_id"] == request_id
    if not echoed:
        assert len(request_id) == 16 and int(request_id, 16) >= 0


def test_last_used_is_written_at_most_once_a_minute(app, api, make_key, host_org):
    key = make_key("connections:read")
    key_id = key.split("_")[2]

    def last_used():
        with app.app_context():
            return storage.get_api_key(key_id).last_used_at

    assert last_used() is None
    assert api.request("GET", "/api/v1/organizations/acme-1", key).status_code == 200
    first = last_used()
    assert first is not None
    recent = (datetime.now(UTC) - timedelta(seconds=30)).isoformat(timespec="seconds")
    old = (datetime.now(UTC) - timedelta(seconds=90)).isoformat(timespec="seconds")
    with app.app_context():
        storage.get_db().execute(
            "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", [recent, key_id]
        )
    for _ in range(3):
        assert api.request("GET", "/api/v1/organizations/acme-1", key).status_code == 200
    assert last_used() == recent  # within the minute: no write
    with app.app_context():
        storage.get_db().execute(
            "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", [old, key_id]
        )
    assert api.request("GET", "/api/v1/organizations/acme-1", key).status_code == 200
    assert last_used() > recent


def test_each_key_has_its_own_rate_limit(app_config):
    app = create_app({**app_config, "API_RATE_LIMIT": "3 per minute"})
    with app.app_context():
        first, second = (keys.issue(n, ["connections:read"]).key for n in ("one", "two"))
    with serve(app) as base:
        api = Api(base)
        for _ in range(3):
            assert api.request("GET", "/api/v1/organizations/x", first).status_code == 404
        answer = api.request("GET", "/api/v1/organizations/x", first)
        assert_problem(answer, 429, "rate_limited")
        assert 1 <= int(answer.headers["Retry-After"]) <= 61
        assert api.request("GET", "/api/v1/organizations/x", second).status_code == 404
