"""portal.connections.lifecycle: the only writer of state and health, transitions that refuse
the states they do not start from, and the table the architecture document shows."""

from __future__ import annotations

import ast
import pathlib

import pytest

from portal import storage
from portal.connections import lifecycle
from tests.seeding import set_columns

ROOT = pathlib.Path(__file__).resolve().parents[1]
PORTAL = ROOT / "portal"
#: The storage functions that write state or health; the lifecycle alone may call them.
LIFECYCLE_WRITES = {"write_lifecycle", "delete_connection_and_secrets"}


def _calls(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_only_the_lifecycle_writes_state_and_health():
    writers = sorted(
        str(path.relative_to(ROOT))
        for path in PORTAL.rglob("*.py")
        if _calls(path) & LIFECYCLE_WRITES and path.parent.name != "storage"
    )
    assert writers and all(w.startswith("portal/connections/lifecycle/") for w in writers)


def test_no_sql_writes_state_outside_storage():
    for path in PORTAL.rglob("*.py"):
        if path.parent.name == "storage":
            continue
        text = path.read_text()
        assert "UPDATE connections" not in text, path


def test_update_connection_refuses_the_lifecycle_columns(app, org_a):
    with app.app_context():
        connection = storage.create_connection(org_a.id, "customer_owned")
        for column in ("state", "health"):
            with pytest.raises(ValueError, match="not updatable"):
                storage.update_connection(connection.id, **{column: "connected"})


def test_every_transition_of_the_table_is_an_operation_and_documented():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for transition in lifecycle.TRANSITIONS:
        assert callable(getattr(lifecycle, transition.name)), transition.name
        assert f"`{transition.name}`" in doc, transition.name
        assert set(transition.sources) <= set(storage.STATES) - {lifecycle.DELETED}


@pytest.mark.parametrize("state", ["draft", "waiting", "needs_reconnect"])
def test_a_refresh_is_refused_unless_the_connection_is_proven(app, org_a, state):
    with app.app_context():
        connection = storage.create_connection(org_a.id, "service_provider")
        set_columns(connection.id, state=state)
        with pytest.raises(lifecycle.TransitionRefused):
            lifecycle.refresh_succeeded(
                connection.id, token_cache=b"{}", fields={}, summary={}, at=storage.utcnow()
            )
        with pytest.raises(lifecycle.TransitionRefused):
            lifecycle.refresh_failed(connection.id, fields={}, summary={}, at=storage.utcnow())
        # Refused means nothing written: no token cache, no health event, same state.
        assert storage.get_secret("connections", connection.id, "token_cache") is None
        assert storage.list_health_events(connection.id) == []
        assert storage.get_connection(connection.id).state == state


def test_identity_change_sends_a_proven_connection_back_to_waiting(app, org_a):
    with app.app_context():
        connection = storage.create_connection(org_a.id, "customer_owned")
        set_columns(connection.id, state="connected", health="healthy", client_id="a" * 8)
        same = lifecycle.identity_changed(connection.id, {"client_id": "a" * 8})
        assert same.state == "connected"
        assert storage.list_audit_events(connection_id=connection.id) == []
        moved = lifecycle.identity_changed(connection.id, {"client_id": "b" * 8}, actor=None)
        assert (moved.state, moved.client_id, moved.health) == ("waiting", "b" * 8, "healthy")
        (audit,) = storage.list_audit_events(connection_id=connection.id)
        assert audit.action == "connection.identity_changed"
        assert audit.detail == {"from": "connected", "to": "waiting", "changed": ["client_id"]}


def test_needs_reconnect_is_recorded_once(app, org_a):
    with app.app_context():
        connection = storage.create_connection(org_a.id, "service_provider")
        set_columns(connection.id, state="connected", health="healthy")
        lifecycle.needs_reconnect(connection.id, "revoked")
        lifecycle.needs_reconnect(connection.id, "revoked again")
        after = storage.get_connection(connection.id)
        assert (after.state, after.health) == ("needs_reconnect", "failing")
        assert [e.outcome for e in storage.list_health_events(connection.id)] == ["needs_reconnect"]
        actions = [a.action for a in storage.list_audit_events(connection_id=connection.id)]
        assert actions == ["connection.needs_reconnect"]


def test_a_deleted_connection_takes_no_transition(app, org_a, admin_a):
    with app.app_context():
        connection = storage.create_connection(org_a.id, "customer_owned")
        lifecycle.deleted(connection.id, actor=admin_a.id)
        with pytest.raises(storage.ConnectionDeleted):
            lifecycle.certificate_issued(connection.id, actor=admin_a.id, detail={})
        with pytest.raises(storage.ConnectionDeleted):
            lifecycle.deleted(connection.id, actor=admin_a.id)
        assert lifecycle.needs_reconnect(connection.id, "late").state == "deleted"
