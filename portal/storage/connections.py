"""Connection rows: create, read, list, update; state and health only through the lifecycle."""

from __future__ import annotations

import json
import secrets

from portal.storage.db import write_transaction
from portal.storage.records import (
    DELETED,
    HEALTHS,
    KINDS,
    LINKED_STATES,
    STATES,
    Connection,
    Organization,
    _connection,
)
from portal.storage.sql import _execute, _row, _rows, utcnow

#: Columns any caller may set. ``state`` and ``health`` are not among them: only the lifecycle
#: (``portal.connections.lifecycle``) writes those, through :func:`write_lifecycle`.
_CONNECTION_COLUMNS = (
    "display_name",
    "cloud",
    "tenant_input",
    "tenant_id",
    "client_id",
    "exchange_enabled",
    "wizard_step",
    "draft",
    "tenant_name",
    "tenant_domain",
    "last_check",
    "last_checked_at",
    "consented_by_oid",
    "consented_by_name",
    "granted_scopes",
    "consented_at",
    "refresh_last_ok_at",
    "refresh_failure_days",
    "refresh_last_failure_day",
)


UPDATABLE_CONNECTION_FIELDS = frozenset(_CONNECTION_COLUMNS)
LIFECYCLE_FIELDS = frozenset({"state", "health"})
#: The health record: written with the state by the lifecycle, by nothing else.
HEALTH_RECORD_FIELDS = frozenset(
    {
        "last_attempt_at",
        "last_success_at",
        "last_failure_at",
        "failing_since",
        "error_class",
        "last_changes",
        "last_attempt_unfinished",
    }
)


def _connection_value(name: str, value):
    if name == "state" and value not in STATES:
        raise ValueError(f"state must be one of {STATES}")
    if name == "state" and value == DELETED:
        raise ValueError("only the deletion deletes a connection")
    if name == "health" and value not in HEALTHS:
        raise ValueError(f"health must be one of {HEALTHS}")
    if name == "draft":
        return json.dumps(value or {}, sort_keys=True)
    if name in ("last_check", "last_changes"):
        return None if value is None else json.dumps(value, sort_keys=True)
    if name in ("exchange_enabled", "last_attempt_unfinished"):
        return int(bool(value))
    if name == "granted_scopes":
        if value is None:
            return None
        return value if isinstance(value, str) else " ".join(value)
    return value


def create_connection(org_id: int, kind: str, display_name: str | None = None) -> Connection:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    connection_id = secrets.token_hex(16)
    now = utcnow()
    _execute(
        "INSERT INTO connections (id, org_id, kind, display_name, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [connection_id, org_id, kind, display_name, now, now],
    )
    return get_connection_or_raise(connection_id)


def get_connection(connection_id: str) -> Connection | None:
    """Unscoped lookup: views go through ``portal.access.load_connection_or_404`` instead."""
    return _connection(_row("SELECT * FROM connections WHERE id = ?", [str(connection_id)]))


def get_connection_or_raise(connection_id: str) -> Connection:
    """A connection the caller knows exists; KeyError otherwise."""
    connection = get_connection(connection_id)
    if connection is None:
        raise KeyError(connection_id)
    return connection


def list_connections(org_id: int) -> list[Connection]:
    """The organization's connections (a deleted one is no longer the customer's to see)."""
    return [
        _connection(r)
        for r in _rows(
            "SELECT * FROM connections WHERE org_id = ? AND state != 'deleted' "
            "ORDER BY created_at, id",
            [org_id],
        )
    ]


def list_all_connections(include_deleted: bool = False) -> list[Connection]:
    """Every organization's connections; deleted ones only when asked (support's history):
    the jobs that act on connections (keep-alive, health sweep) never see them."""
    where = "" if include_deleted else "WHERE state != 'deleted' "
    return [
        _connection(r)
        for r in _rows(f"SELECT * FROM connections {where}ORDER BY org_id, created_at, id")
    ]


class ConnectionDeleted(LookupError):
    """A write to a deleted connection (one that started before the deletion finished)."""


def update_connection(connection_id: str, **fields) -> Connection:
    """Set whitelisted columns (``updated_at`` follows); raises KeyError for unknown rows/fields
    and :class:`ConnectionDeleted` for a deleted connection (nothing may change it again)."""
    unknown = set(fields) - UPDATABLE_CONNECTION_FIELDS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return _update(connection_id, fields)


def write_lifecycle(connection_id: str, *, state: str, health: str, **fields) -> Connection:
    """The lifecycle's write: state, health and the columns of the transition, in the caller's
    transaction. Called by ``portal.connections.lifecycle`` only (a test holds that)."""
    unknown = set(fields) - UPDATABLE_CONNECTION_FIELDS - HEALTH_RECORD_FIELDS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return _update(connection_id, {**fields, "state": state, "health": health})


def _update(connection_id: str, fields: dict) -> Connection:
    values = {name: _connection_value(name, value) for name, value in fields.items()}
    values["updated_at"] = utcnow()
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    values["_id"] = str(connection_id)
    with write_transaction():
        cursor = _execute(
            f"UPDATE connections SET {assignments} WHERE id = :_id AND state != 'deleted'", values
        )
        if cursor.rowcount != 1:
            if get_connection(connection_id) is not None:
                raise ConnectionDeleted(connection_id)
            raise KeyError(connection_id)
        connection = get_connection(connection_id)
        assert connection is not None  # updated just now, in this transaction
        return connection


def save_draft(connection_id: str, changes: dict, wizard_step: int | None = None) -> Connection:
    """Merge ``changes`` into the connection's JSON draft atomically (nothing typed is lost)."""
    with write_transaction():
        row = _row("SELECT draft FROM connections WHERE id = ?", [str(connection_id)])
        if row is None:
            raise KeyError(connection_id)
        draft = json.loads(row["draft"] or "{}")
        draft.update(changes)
        fields = {"draft": draft}
        if wizard_step is not None:
            fields["wizard_step"] = wizard_step
        return update_connection(connection_id, **fields)


def delete_connection(connection_id: str) -> None:
    """Delete a connection with its certificates, flows, events and every secret it owns."""
    connection_id = str(connection_id)
    with write_transaction():
        cert_ids = [
            r["id"]
            for r in _rows("SELECT id FROM certificates WHERE connection_id = ?", [connection_id])
        ]
        flow_ids = [
            r["state"]
            for r in _rows("SELECT state FROM auth_flows WHERE connection_id = ?", [connection_id])
        ]
        for table, ids in (
            ("connections", [connection_id]),
            ("certificates", cert_ids),
            ("auth_flows", flow_ids),
        ):
            for owner_id in ids:
                _execute(
                    "DELETE FROM vault_blobs WHERE owner_table = ? AND owner_id = ?",
                    [table, owner_id],
                )
        _execute("DELETE FROM connections WHERE id = ?", [connection_id])


def organizations_linking_tenant(tenant_id: str, except_org_id: int) -> list[Organization]:
    """Other organizations with a connection proven against ``tenant_id`` (linked at least
    once: a typed-in tenant of a draft proves nothing)."""
    placeholders = ", ".join("?" for _ in LINKED_STATES)
    rows = _rows(
        "SELECT DISTINCT o.* FROM organizations o JOIN connections c ON c.org_id = o.id "
        f"WHERE lower(c.tenant_id) = lower(?) AND c.org_id != ? AND c.state IN ({placeholders})"
        " ORDER BY o.id",
        [str(tenant_id), int(except_org_id), *LINKED_STATES],
    )
    return [Organization(**r) for r in rows]


def connection_counts() -> list[tuple[str, str, str, int]]:
    """(state, health, kind, count) of the connections that are not deleted, one GROUP BY (the
    metrics read it at every scrape)."""
    rows = _rows(
        "SELECT state, health, kind, COUNT(*) AS n FROM connections "
        "WHERE state != 'deleted' GROUP BY state, health, kind"
    )
    return [(r["state"], r["health"], r["kind"], r["n"]) for r in rows]


def failing_counts() -> list[tuple[str, int]]:
    """(error class, count) of the connections that are not deleted and are failing now (the
    health record's ``failing_since`` is set), one GROUP BY."""
    rows = _rows(
        "SELECT error_class, COUNT(*) AS n FROM connections "
        "WHERE state != 'deleted' AND failing_since IS NOT NULL GROUP BY error_class"
    )
    return [(r["error_class"] or "unknown", r["n"]) for r in rows]
