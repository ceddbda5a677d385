"""portal.store: typed records, whitelisted updates, single-use flows, append-only audit."""

import sqlite3

import pytest

from portal import storage
from portal.connections import credentials
from portal.storage import db, vault


@pytest.fixture
def org(app_ctx):
    return storage.create_organization("Contoso")


def test_organizations_and_users(org):
    assert storage.get_organization_by_name(" Contoso ") == org
    assert storage.list_organizations() == [org]
    user = storage.create_user(" Ada@Contoso.Example ", "admin", "hash", org.id)
    assert user.email == "ada@contoso.example"
    assert storage.get_user_by_email("ADA@contoso.example") == user
    assert user.is_admin and not user.is_support
    assert user.get_id() == f"{user.id}:0"
    assert "hash" not in repr(user)
    support = storage.create_user("help@portal.example", "support", "hash", org.id)
    assert support.org_id is None  # support belongs to no organization
    with pytest.raises(sqlite3.IntegrityError):
        storage.create_user("ada@contoso.example", "admin", "hash", org.id)
    with pytest.raises(ValueError):
        storage.create_user("x@example.com", "admin", "hash")
    with pytest.raises(ValueError):
        storage.create_user("x@example.com", "owner", "hash", org.id)


def test_end_sessions_bumps_the_epoch(org):
    user = storage.create_user("a@example.com", "admin", "hash", org.id)
    storage.end_sessions(user.id)
    assert storage.get_user(user.id).get_id() == f"{user.id}:1"


def test_connection_defaults_and_random_id(org):
    connection = storage.create_connection(org.id, "customer_owned", "Main")
    assert len(connection.id) == 32 and int(connection.id, 16) >= 0
    assert (connection.state, connection.health, connection.wizard_step) == ("draft", "unknown", 1)
    assert connection.draft == {} and connection.last_check is None
    assert connection.granted_scopes == () and connection.exchange_enabled is False
    assert storage.list_connections(org.id) == [connection]
    assert storage.list_all_connections() == [connection]
    with pytest.raises(ValueError):
        storage.create_connection(org.id, "something_else")


def test_update_connection_converts_and_whitelists(org):
    connection = storage.create_connection(org.id, "service_provider")
    updated = storage.write_lifecycle(
        connection.id,
        state="connected",
        health="healthy",
        exchange_enabled=True,
        granted_scopes=["User.ReadWrite.All", "offline_access"],
        last_check={"items": [{"key": "x", "ok": True}]},
        tenant_id="t",
    )
    assert updated.state == "connected" and updated.exchange_enabled is True
    assert updated.granted_scopes == ("User.ReadWrite.All", "offline_access")
    assert updated.last_check == {"items": [{"key": "x", "ok": True}]}
    for bad in (
        {"org_id": 99},
        {"id": "x"},
        {"created_at": "x"},
        {"nonsense": 1},
        {"state": "connected"},
        {"health": "healthy"},
    ):
        with pytest.raises(ValueError):
            storage.update_connection(connection.id, **bad)
    for state, health in (("exploded", "healthy"), ("connected", "great"), ("deleted", "unknown")):
        with pytest.raises(ValueError):
            storage.write_lifecycle(connection.id, state=state, health=health)
    with pytest.raises(KeyError):
        storage.update_connection("0" * 32, display_name="x")


def test_save_draft_merges(org):
    connection = storage.create_connection(org.id, "customer_owned")
    storage.save_draft(connection.id, {"tenant": "contoso.onmicrosoft.com"}, wizard_step=2)
    after = storage.save_draft(connection.id, {"client_id": "abc"})
    assert after.draft == {"tenant": "contoso.onmicrosoft.com", "client_id": "abc"}
    assert after.wizard_step == 2


def test_certificates_keep_the_private_key_in_the_vault(org):
    connection = storage.create_connection(org.id, "customer_owned")
    cert = storage.add_certificate(
        connection.id,
        cert_pem="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        thumbprint_sha1="AB",
        thumbprint_sha256="CD",
        subject="CN=x",
        not_before="2026-01-01T00:00:00+00:00",
        not_after="2027-01-01T00:00:00+00:00",
        private_key_pem=b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n",
    )
    assert storage.list_certificates(connection.id) == [cert]
    assert storage.active_certificate(connection.id) == cert
    assert credentials.private_key(cert).startswith(b"-----BEGIN PRIVATE KEY")
    assert not hasattr(cert, "private_key_pem")
    storage.set_certificate_status(cert.id, "retired")
    assert storage.active_certificate(connection.id) is None


def test_unreadable_certificate_key_marks_the_connection(org):
    connection = storage.create_connection(org.id, "customer_owned")
    cert = storage.add_certificate(
        connection.id,
        cert_pem="c",
        thumbprint_sha1="a",
        thumbprint_sha256="b",
        subject="s",
        not_before="n",
        not_after="n",
        private_key_pem=b"key",
    )
    # A key id our keyring lacks is our configuration: an operator alarm, the state stays.
    db.get_db().execute("UPDATE vault_blobs SET key_id = 'gone'")
    with pytest.raises(credentials.KeyringAlarm):
        credentials.private_key(cert)
    assert storage.get_connection(connection.id).state == "draft"
    # A row no keyring can open (malformed nonce) is gone for the customer.
    db.get_db().execute(
        "UPDATE vault_blobs SET key_id = ?, nonce = zeroblob(4)",
        [vault.current_keyring().primary_kid],
    )
    with pytest.raises(vault.SecretUnreadable):
        credentials.private_key(cert)
    assert storage.get_connection(connection.id).state == "needs_reconnect"


def test_delete_connection_removes_its_secrets(org):
    connection = storage.create_connection(org.id, "service_provider")
    storage.put_secret("connections", connection.id, "token_cache", b"x")
    storage.add_certificate(
        connection.id,
        cert_pem="c",
        thumbprint_sha1="a",
        thumbprint_sha256="b",
        subject="s",
        not_before="n",
        not_after="n",
        private_key_pem=b"key",
    )
    storage.create_auth_flow(
        state="s1",
        kind="delegated",
        connection_id=connection.id,
        user_id=None,
        browser_cookie="b",
        flow={"code_verifier": "v"},
    )
    storage.delete_connection(connection.id)
    assert storage.get_connection(connection.id) is None
    assert storage.table_counts(["vault_blobs", "certificates", "auth_flows"]) == {
        "vault_blobs": 0,
        "certificates": 0,
        "auth_flows": 0,
    }


def test_auth_flow_is_single_use_and_bound(org):
    connection = storage.create_connection(org.id, "service_provider")
    flow = {"state": "st", "code_verifier": "verifier", "nonce": "n"}
    storage.create_auth_flow(
        state="st",
        kind="delegated",
        connection_id=connection.id,
        user_id=1,
        browser_cookie="bind",
        flow=flow,
        now=1000.0,
    )
    assert storage.consume_auth_flow("st", "other browser", "delegated", now=1001.0) is None
    assert storage.consume_auth_flow("unknown", "bind", "delegated", now=1001.0) is None
    # Another user's flow (the same browser cookie replayed in their session): not burnt.
    assert storage.consume_auth_flow("st", "bind", "delegated", now=1001.0, user_id=2) is None
    # A flow of the other kind is neither returned nor burnt.
    assert storage.consume_auth_flow("st", "bind", "admin_consent", now=1001.0) is None
    consumed = storage.consume_auth_flow("st", "bind", "delegated", now=1001.0)
    assert consumed.flow == flow and consumed.consumed_at == 1001.0
    assert consumed.connection_id == connection.id
    assert storage.consume_auth_flow("st", "bind", "delegated", now=1002.0) is None  # replay
    assert storage.get_secret("auth_flows", "st", "msal_flow") is None  # verifier gone
    assert "verifier" not in repr(consumed)


def test_auth_flow_expires(org):
    connection = storage.create_connection(org.id, "service_provider")
    storage.create_auth_flow(
        state="old",
        kind="admin_consent",
        connection_id=connection.id,
        user_id=None,
        browser_cookie="b",
        flow={},
        ttl=600,
        now=0.0,
    )
    assert storage.consume_auth_flow("old", "b", "admin_consent", now=600.0) is None
    assert storage.purge_auth_flows(now=601.0) == 1


def test_handoff_is_single_use(org):
    connection = storage.create_connection(org.id, "service_provider")
    handoff = storage.create_handoff(
        connection_id=connection.id, user_id=5, session_binding="sess", now=0.0
    )
    assert len(handoff.id) >= 43
    # Not confirmable before its page was shown to a browser.
    assert storage.consume_confirmed_handoff(handoff.id, "popup", "token", now=1.0) is None
    opened = storage.open_handoff(handoff.id, "popup", "token", now=1.0)
    assert opened.user_id == 5 and opened.opened_at == 1.0
    assert storage.open_handoff(handoff.id, "another browser", "t2", now=1.0) is None
    assert (
        storage.consume_confirmed_handoff(handoff.id, "another browser", "token", now=2.0) is None
    )
    assert storage.consume_confirmed_handoff(handoff.id, "popup", "wrong", now=2.0) is None
    assert storage.consume_confirmed_handoff(handoff.id, "popup", "token", now=2.0).user_id == 5
    assert storage.consume_confirmed_handoff(handoff.id, "popup", "token", now=3.0) is None
    assert storage.open_handoff(handoff.id, "popup", "t3", now=3.0) is None
    late = storage.create_handoff(connection_id=connection.id, user_id=5, ttl=10, now=0.0)
    assert storage.open_handoff(late.id, "popup", "token", now=10.0) is None


def test_audit_is_append_only(org):
    event = storage.record_audit("x.happened", actor=None, org_id=org.id, detail={"a": 1})
    assert storage.list_audit_events(org_id=org.id) == [event]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.get_db().execute("UPDATE audit_events SET action = 'y'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.get_db().execute("DELETE FROM audit_events")


def test_health_events_newest_first(org):
    connection = storage.create_connection(org.id, "customer_owned")
    storage.add_health_event(connection.id, "ok", "healthy", {"n": 1}, at="2026-01-01T00:00:00")
    storage.add_health_event(connection.id, "failed", "failing", {"n": 2}, at="2026-01-02T00:00:00")
    events = storage.list_health_events(connection.id, limit=1)
    assert [e.summary for e in events] == [{"n": 2}]
    with pytest.raises(ValueError):
        storage.add_health_event(connection.id, "x", "splendid")


def test_foreign_keys_are_enforced(app_ctx):
    with pytest.raises(sqlite3.IntegrityError):
        storage.create_connection(12345, "customer_owned")
