"""Health events and the append-only audit log."""

from __future__ import annotations

import json

from portal.storage.records import HEALTHS, AuditEvent, Connection, HealthEvent, User
from portal.storage.sql import _execute, _one, _rows, utcnow


def add_health_event(
    connection_id: str,
    outcome: str,
    health: str,
    summary: dict | None = None,
    at: str | None = None,
) -> HealthEvent:
    if health not in HEALTHS:
        raise ValueError(f"health must be one of {HEALTHS}")
    cursor = _execute(
        "INSERT INTO health_events (connection_id, at, outcome, health, summary) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            str(connection_id),
            at or utcnow(),
            outcome,
            health,
            json.dumps(summary or {}, sort_keys=True),
        ],
    )
    return _health_event(_one("SELECT * FROM health_events WHERE id = ?", [cursor.lastrowid]))


def _health_event(row: dict) -> HealthEvent:
    row = dict(row)
    row["summary"] = json.loads(row["summary"] or "{}")
    return HealthEvent(**row)


def list_health_events(connection_id: str, limit: int = 20) -> list[HealthEvent]:
    """Newest first."""
    return [
        _health_event(r)
        for r in _rows(
            "SELECT * FROM health_events WHERE connection_id = ? ORDER BY at DESC, id DESC LIMIT ?",
            [str(connection_id), int(limit)],
        )
    ]


def record_audit(
    action: str,
    actor: User | int | None = None,
    org_id: int | None = None,
    connection_id: str | None = None,
    detail: dict | None = None,
) -> AuditEvent:
    """Append an audit event (append-only: triggers refuse UPDATE and DELETE). No secrets."""
    actor_id = actor.id if isinstance(actor, User) else actor
    cursor = _execute(
        "INSERT INTO audit_events (at, actor_user_id, org_id, connection_id, action, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            utcnow(),
            actor_id,
            org_id,
            connection_id,
            action,
            json.dumps(detail or {}, sort_keys=True),
        ],
    )
    return _audit(_one("SELECT * FROM audit_events WHERE id = ?", [cursor.lastrowid]))


def audit_connection(
    action: str,
    connection: Connection,
    *,
    actor: User | int | None,
    detail: dict | None = None,
) -> AuditEvent:
    """An audit event about ``connection``, filed under its organization."""
    return record_audit(
        action, actor=actor, org_id=connection.org_id, connection_id=connection.id, detail=detail
    )


def _audit(row: dict) -> AuditEvent:
    row = dict(row)
    row["detail"] = json.loads(row["detail"] or "{}")
    return AuditEvent(**row)


def list_audit_events(
    *,
    org_id: int | None = None,
    connection_id: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Newest first, optionally filtered."""
    clauses, params = [], []
    for column, value in (("org_id", org_id), ("connection_id", connection_id), ("action", action)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return [
        _audit(r)
        for r in _rows(
            f"SELECT * FROM audit_events {where} ORDER BY id DESC LIMIT ?", [*params, int(limit)]
        )
    ]
