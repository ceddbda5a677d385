"""The credential over time: the keep-alive's refreshes, a credential lost for the customer or
unusable on our side, the deletion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal import storage
from portal.connections import health as health_record
from portal.connections.lifecycle.common import (
    current,
    log,
)
from portal.connections.transitions import (
    CONNECTED,
    NEEDS_RECONNECT,
    PROVEN,
)
from portal.storage import Connection

# --- Keep-alive of delegated connections ----------------------------------------------------


def refresh_succeeded(
    connection_id: str,
    *,
    token_cache: bytes,
    fields: Mapping[str, Any],
    summary: Mapping[str, Any],
    at: str,
) -> Connection:
    """The stored refresh token was redeemed: the rotated cache and the success together."""
    with storage.write_transaction():
        before = current(connection_id, "refresh_succeeded")
        health = before.health
        # Recovered: the degradation came from failed refreshes or from our side, not from
        # something the customer has to fix (that stays until a check finds it fixed).
        recovered = before.refresh_failure_days or before.error_class in ("transient", "our_config")
        if before.state == CONNECTED and health == "degraded" and recovered:
            health = "healthy"
        record = (
            health_record.succeeded(at)
            if before.state == CONNECTED and before.error_class != "needs_customer"
            else {"last_attempt_at": at, "last_attempt_unfinished": False}
        )
        storage.put_secret("connections", connection_id, "token_cache", token_cache)
        after = storage.write_lifecycle(
            connection_id, state=before.state, health=health, **fields, **record
        )
        storage.add_health_event(connection_id, "refresh_ok", health, dict(summary), at=at)
        return after


def refresh_failed(
    connection_id: str,
    *,
    fields: Mapping[str, Any],
    summary: Mapping[str, Any],
    at: str,
    error_class: health_record.ErrorClass = "transient",
) -> Connection:
    """A refresh failed for a reason that may pass (network, throttling, Microsoft's 5xx:
    ``transient``; our keyring: ``our_config``)."""
    with storage.write_transaction():
        before = current(connection_id, "refresh_failed")
        health = "degraded" if before.health in ("unknown", "healthy") else before.health
        record = health_record.failed(before, error_class, at, finished=False)
        after = storage.write_lifecycle(
            connection_id, state=before.state, health=health, **fields, **record
        )
        storage.add_health_event(
            connection_id, "refresh_transient", "degraded", dict(summary), at=at
        )
        return after


# --- Losing the credential, deletion --------------------------------------------------------


def needs_reconnect(
    connection_id: str,
    reason: str,
    *,
    cause: tuple[str, Mapping[str, Any]] | None = None,
    at: str | None = None,
) -> Connection | None:
    """The connection has no usable credential (secret unreadable, refresh token revoked or
    expired): the customer has to link again. ``cause`` (outcome, summary) is recorded first as
    its own health event. None for an unknown connection; a deleted one is returned as is."""
    with storage.write_transaction():
        before = storage.get_connection(connection_id)
        if before is None or before.deleted:
            return before
        if cause is not None:
            outcome, summary = cause
            storage.add_health_event(connection_id, outcome, "failing", dict(summary), at=at)
        if before.state == NEEDS_RECONNECT:
            return before
        after = storage.write_lifecycle(
            connection_id,
            state=NEEDS_RECONNECT,
            health="failing",
            **health_record.failed(before, "needs_customer", at or storage.utcnow(), finished=True),
        )
        storage.add_health_event(connection_id, "needs_reconnect", "failing", {"reason": reason})
        storage.audit_connection(
            "connection.needs_reconnect",
            after,
            actor=None,
            detail={"reason": reason},
        )
        log.warning("connection %s needs a reconnect: %s", connection_id, reason)
        return after


def our_problem(
    connection_id: str, reason: str, *, summary: Mapping[str, Any], at: str | None = None
) -> Connection | None:
    """Something on our side (our keyring, our app's credential) keeps us from using the
    connection: the customer has nothing to do, so the state stays; a proven connection shows
    degraded and the health record says ``our_config`` until an attempt succeeds again. The
    caller raises the operator's alarm. None for an unknown connection; a deleted one as is."""
    with storage.write_transaction():
        before = storage.get_connection(connection_id)
        if before is None or before.deleted:
            return before
        health = "degraded" if before.state in PROVEN and before.health != "failing" else None
        now = at or storage.utcnow()
        after = storage.write_lifecycle(
            connection_id,
            state=before.state,
            health=health or before.health,
            **health_record.failed(before, "our_config", now, finished=False),
        )
        storage.add_health_event(
            connection_id, "our_config", after.health, {"reason": reason, **summary}, at=at
        )
        return after


def deleted(connection_id: str, *, actor: int | None) -> storage.DeletionReceipt:
    """Delete the connection: every secret destroyed, the row kept (``storage.deletion``)."""
    with storage.write_transaction():
        current(connection_id, "deleted")
        return storage.delete_connection_and_secrets(connection_id, actor)
