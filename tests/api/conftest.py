"""Fixtures of the host API tests: the portal served over real HTTP on loopback, keys made
through the same code as ``flask api-key create``, and connections seeded with secrets."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from portal import storage
from portal.api import keys
from portal.storage import db
from tests.seeding import set_columns

#: What a seeded connection holds in the vault: none of it may ever appear in an answer.
TOKEN_CACHE = b'{"RefreshToken": {"x": {"secret": "rt-never-shown-0123456789"}}}'
PRIVATE_KEY = b"-----BEGIN PRIVATE KEY-----\nnever-shown\n-----END PRIVATE KEY-----\n"
MSAL_FLOW = {"code_verifier": "cv-never-shown", "state": "s"}

ALL_SCOPES = ["connections:read", "connections:write", "sessions:write", "setup_links:write"]


class Api:
    """A requests session against the live portal, with an optional key."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False

    def request(self, method: str, path: str, key: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", {}) or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.session.request(
            method, self.base + path, headers=headers, timeout=10, allow_redirects=False, **kwargs
        )


@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """Serve ``app`` over HTTP on loopback in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def live(app):
    """The ``app`` fixture served over HTTP (the test shares its database)."""
    with serve(app) as base:
        yield base


@pytest.fixture
def api(live) -> Api:
    return Api(live)


@pytest.fixture
def make_key(app):
    """``make_key(*scopes, name="test") -> key``; all scopes when none are given."""

    def make(*scopes: str, name: str = "test") -> str:
        with app.app_context():
            return keys.issue(name, list(scopes) or ALL_SCOPES).key

    return make


@pytest.fixture
def host_org(app):
    """An organization the host named (external id ``acme-1``)."""
    with app.app_context():
        org, _ = storage.put_organization_by_external_id("acme-1", "Acme")
    return org


@pytest.fixture
def seed_connection(app):
    """``seed_connection(org, **columns)``: a linked customer-owned connection with a token
    cache, an active certificate (private key in the vault), a pending sign-in's MSAL flow and
    a finished check with one item missing."""

    def seed(org, **columns) -> storage.Connection:
        with app.app_context():
            connection = storage.create_connection(org.id, "customer_owned", "HR sync")
            storage.put_secret("connections", connection.id, "token_cache", TOKEN_CACHE)
            storage.add_certificate(
                connection.id,
                cert_pem="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                thumbprint_sha1="ab" * 20,
                thumbprint_sha256="cd" * 32,
                subject="CN=portal",
                not_before="2026-01-01T00:00:00+00:00",
                not_after="2027-01-01T00:00:00+00:00",
                private_key_pem=PRIVATE_KEY,
            )
            storage.create_auth_flow(
                state=f"state-{connection.id}",
                kind="admin_consent",
                connection_id=connection.id,
                user_id=None,
                browser_cookie="cookie",
                flow=MSAL_FLOW,
            )
            fields = {
                "state": "connected",
                "health": "degraded",
                "cloud": "global",
                "tenant_id": "11111111-2222-3333-4444-555555555555",
                "client_id": "99999999-2222-3333-4444-555555555555",
                "tenant_name": "Acme Ltd",
                "tenant_domain": "acme.onmicrosoft.com",
                "last_checked_at": "2026-11-30T10:00:00+00:00",
                "last_check": {
                    "ok": False,
                    "checklist": [
                        {"key": "User.ReadWrite.All", "status": "ok"},
                        {"key": "Group.Read.All", "status": "missing"},
                        {"key": "role.user_admin", "status": "unknown"},
                    ],
                },
                "last_attempt_at": "2026-11-30T10:00:00+00:00",
                "last_success_at": "2026-11-29T10:00:00+00:00",
                "last_failure_at": "2026-11-30T10:00:00+00:00",
                "failing_since": "2026-11-30T10:00:00+00:00",
                "error_class": "needs_customer",
                "last_changes": [
                    {"key": "Group.Read.All", "to": "missing", "text": "Groups removed"}
                ],
                **columns,
            }
            return set_columns(connection.id, **fields)

    return seed


def vault_rows(app, connection_id: str) -> list[tuple[str, str]]:
    """(owner_table, purpose) of every vault blob of the connection, its certificates, flows."""
    with app.app_context():
        return [
            (r["owner_table"], r["purpose"])
            for r in db.get_db().query(
                "SELECT owner_table, purpose FROM vault_blobs WHERE "
                "(owner_table = 'connections' AND owner_id = :id) OR "
                "(owner_table = 'certificates' AND owner_id IN "
                " (SELECT id FROM certificates WHERE connection_id = :id)) OR "
                "(owner_table = 'auth_flows' AND owner_id IN "
                " (SELECT state FROM auth_flows WHERE connection_id = :id)) ORDER BY 1, 2",
                {"id": connection_id},
            )
        ]
