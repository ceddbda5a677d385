"""The lifecycle of a connection as named transitions: the only writer of state and health.

Each transition checks the state it starts from, then writes in ONE transaction the connection's
state and health with the columns that go with them, a health event (the health record: every
check, refresh and change of health) and an audit row (every change of state and every act of a
person).
``TRANSITIONS`` is the table docs/architecture.md shows; later features (events to the host,
health history) hang off these functions, so nothing else may write ``state`` or ``health``
(``storage.write_lifecycle`` is called from here only; a test holds that).

States: ``draft`` → ``waiting`` (setup in progress) → ``connected`` | ``needs_attention``
(something missing) | ``needs_reconnect`` (no usable credential: the customer links again);
any of them → ``deleted`` (terminal). Health: ``unknown`` | ``healthy`` | ``degraded`` |
``failing``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from portal import storage
from portal.connections import health as health_record
from portal.connections.transitions import (
    CONNECTED,
    DELETED,
    DRAFT,
    IDENTITY_FIELDS,
    LIVE,
    NEEDS_ATTENTION,
    NEEDS_RECONNECT,
    PROVEN,
    TRANSITIONS,
    WAITING,
    Transition,
    TransitionRefused,
)
from portal.storage import Connection

__all__ = [
    "CONNECTED",
    "DELETED",
    "DRAFT",
    "IDENTITY_FIELDS",
    "LIVE",
    "NEEDS_ATTENTION",
    "NEEDS_RECONNECT",
    "PROVEN",
    "SETTING_UP",
    "TRANSITIONS",
    "WAITING",
    "Transition",
    "TransitionRefused",
]

log = logging.getLogger("portal.lifecycle")

#: States of a connection that has not been proven yet: a check that finds something missing is
#: the setup going on, not a failure, so the connection stays there with health ``unknown``.
SETTING_UP = (DRAFT, WAITING)

_BY_NAME = {t.name: t for t in TRANSITIONS}


def _current(connection_id: str, transition: str) -> Connection:
    """The connection as stored now, inside the caller's transaction; refused unless the
    transition starts from its state."""
    current = storage.get_connection(connection_id)
    if current is None:
        raise KeyError(connection_id)
    if current.deleted:
        raise storage.ConnectionDeleted(connection_id)
    if current.state not in _BY_NAME[transition].sources:
        raise TransitionRefused(transition, current.state)
    return current


def _changed(before: Connection, after: Connection) -> bool:
    return (before.state, before.health) != (after.state, after.health)


def _with_states(
    detail: Mapping[str, Any], before: Connection, after: Connection
) -> dict[str, Any]:
    """An audit detail that says which state the step moved the connection from and to."""
    if not _changed(before, after):
        return dict(detail)
    return {**detail, "from": before.state, "to": after.state}


def _record_change(
    before: Connection,
    after: Connection,
    transition: str,
    *,
    actor: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """The audit row of a setup step that changed the state (setup steps check nothing and
    leave health alone, so they add nothing to the health record)."""
    if not _changed(before, after):
        return
    storage.audit_connection(
        f"connection.{transition}",
        after,
        actor=actor,
        detail={"from": before.state, "to": after.state, **(detail or {})},
    )


# --- Setup ----------------------------------------------------------------------------------


def certificate_issued(
    connection_id: str, *, actor: int | None, detail: Mapping[str, Any]
) -> Connection:
    """A certificate was created for the connection (its first, a replacement or a rotation)."""
    return _setup_step(
        connection_id,
        "certificate_issued",
        (DRAFT, NEEDS_RECONNECT),
        "certificate.issue",
        actor=actor,
        detail=detail,
    )


def link_started(connection_id: str, *, actor: int | None, detail: Mapping[str, Any]) -> Connection:
    """A delegated sign-in was sent to Microsoft."""
    return _setup_step(
        connection_id,
        "link_started",
        (DRAFT,),
        "connection.link_started",
        actor=actor,
        detail=detail,
    )


def _setup_step(
    connection_id: str,
    transition: str,
    waits_from: tuple[str, ...],
    action: str,
    *,
    actor: int | None,
    detail: Mapping[str, Any],
) -> Connection:
    """A setup step: from ``waits_from`` the connection now waits for the customer; other states
    stay (a rotation or a second sign-in does not undo a link). Audited with the state change."""
    with storage.write_transaction():
        before = _current(connection_id, transition)
        state = WAITING if before.state in waits_from else before.state
        after = storage.write_lifecycle(connection_id, state=state, health=before.health)
        storage.audit_connection(
            action,
            after,
            actor=actor,
            detail=_with_states(detail, before, after),
        )
        return after


def identity_changed(
    connection_id: str, changes: Mapping[str, Any], *, actor: int | None = None
) -> Connection:
    """The customer changed what the connection points at (the wizard's fields). Columns that
    did not change are not written; a proven connection whose cloud, tenant or client changed
    waits to be proven again."""
    with storage.write_transaction():
        before = _current(connection_id, "identity_changed")
        changed = {k: v for k, v in changes.items() if getattr(before, k) != v}
        if not changed:
            return before
        state = before.state
        if state in PROVEN and set(changed) & IDENTITY_FIELDS:
            state = WAITING
        after = storage.write_lifecycle(connection_id, state=state, health=before.health, **changed)
        _record_change(
            before, after, "identity_changed", actor=actor, detail={"changed": sorted(changed)}
        )
        return after


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
        before = _current(connection_id, "check_recorded")
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
        before = _current(connection_id, "check_interrupted")
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
        before = _current(connection_id, "link_recorded")
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
        before = _current(connection_id, "refresh_succeeded")
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
        before = _current(connection_id, "refresh_failed")
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
        _current(connection_id, "deleted")
        return storage.delete_connection_and_secrets(connection_id, actor)
