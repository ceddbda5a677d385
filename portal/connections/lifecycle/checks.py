"""Checks and links: a finished check, one Microsoft interrupted, a delegated sign-in recorded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal import storage
from portal.connections import health as health_record
from portal.connections.lifecycle.common import (
    SETTING_UP,
    current,
)
from portal.connections.transitions import (
    CONNECTED,
    NEEDS_ATTENTION,
    PROVEN,
    WAITING,
)
from portal.storage import Connection

# --- Checks and links -----------------------------------------------------------------------


def check_recorded(
    connection_id: str,
    *,
    ok: bool,
    health: str,
    fields: Mapping[str, Any],
    summary: Mapping[str, Any],
    actor: int | None,
    detail: Mapping[str, Any],
    error_class: health_record.ErrorClass = "needs_customer",
    changes: list[dict[str, str]] | None = None,
) -> Connection:
    """A finished verification of a connection (``fields``: its columns; the report holds no
    secret). One not proven yet stays in its setup when something is missing; ``error_class``
    says whose the failure is, ``changes`` which items changed since the last check."""
    with storage.write_transaction():
        before = current(connection_id, "check_recorded")
        now = storage.utcnow()
        if ok:
            state, record = CONNECTED, health_record.succeeded(now)
        else:
            state = WAITING if before.state in SETTING_UP else NEEDS_ATTENTION
            health = "unknown" if state == WAITING else health
            record = health_record.failed(before, error_class, now, finished=True)
        after = storage.write_lifecycle(
            connection_id,
            state=state,
            health=health,
            **fields,
            **record,
            last_changes=list(changes or ()),
        )
        storage.add_health_event(
            connection_id, "ok" if ok else "needs_attention", health, dict(summary)
        )
        storage.audit_connection(
            "connection.check",
            after,
            actor=actor,
            detail=dict(detail),
        )
        return after


def check_interrupted(
    connection_id: str,
    *,
    summary: Mapping[str, Any],
    actor: int | None,
    detail: Mapping[str, Any],
) -> Connection:
    """A check that Microsoft did not let finish (throttling, 5xx, timeout, reset): a failed
    attempt, not a finding. The state and the last report stand; a proven connection shows
    degraded until a check finishes again, one still being set up keeps its health."""
    with storage.write_transaction():
        before = current(connection_id, "check_interrupted")
        health = before.health
        if before.state in PROVEN and health in ("unknown", "healthy"):
            health = "degraded"
        record = health_record.failed(before, "transient", storage.utcnow(), finished=False)
        after = storage.write_lifecycle(connection_id, state=before.state, health=health, **record)
        storage.add_health_event(connection_id, "check_transient", health, dict(summary))
        storage.audit_connection(
            "connection.check",
            after,
            actor=actor,
            detail=dict(detail),
        )
        return after


def link_recorded(
    connection_id: str,
    *,
    token_cache: bytes,
    fields: Mapping[str, Any],
    missing: list[str],
    actor: int | None,
    audit_detail: Mapping[str, Any],
    health_summary: Mapping[str, Any],
    handoff_id: str | None = None,
) -> Connection:
    """A delegated sign-in became the connection's: the token cache into the vault, the consent
    columns, the health event, the audit row and (started in a popup) the outcome it polls."""
    with storage.write_transaction():
        before = current(connection_id, "link_recorded")
        storage.put_secret("connections", connection_id, "token_cache", token_cache)
        now = storage.utcnow()
        after = storage.write_lifecycle(
            connection_id,
            state=NEEDS_ATTENTION if missing else CONNECTED,
            health="degraded" if missing else "healthy",
            **fields,
            **(
                health_record.failed(before, "needs_customer", now, finished=True)
                if missing
                else health_record.succeeded(now)
            ),
        )
        storage.add_health_event(connection_id, "linked", after.health, dict(health_summary))
        storage.audit_connection(
            "connection.linked",
            after,
            actor=actor,
            detail=dict(audit_detail),
        )
        if handoff_id is not None:
            storage.record_link_outcome(
                handoff_id, connection_id, after.state, {"missing_scopes": list(missing)}
            )
        return after
