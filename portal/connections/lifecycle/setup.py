"""Setup steps: a certificate issued, a link started, the identity (cloud, tenant, client id)
changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal import storage
from portal.connections.lifecycle.common import (
    current,
    record_change,
    with_states,
)
from portal.connections.transitions import (
    DRAFT,
    IDENTITY_FIELDS,
    NEEDS_RECONNECT,
    PROVEN,
    WAITING,
)
from portal.storage import Connection

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
        before = current(connection_id, transition)
        state = WAITING if before.state in waits_from else before.state
        after = storage.write_lifecycle(connection_id, state=state, health=before.health)
        storage.audit_connection(
            action,
            after,
            actor=actor,
            detail=with_states(detail, before, after),
        )
        return after


def identity_changed(
    connection_id: str, changes: Mapping[str, Any], *, actor: int | None = None
) -> Connection:
    """The customer changed what the connection points at (the wizard's fields). Columns that
    did not change are not written; a proven connection whose cloud, tenant or client changed
    waits to be proven again."""
    with storage.write_transaction():
        before = current(connection_id, "identity_changed")
        changed = {k: v for k, v in changes.items() if getattr(before, k) != v}
        if not changed:
            return before
        state = before.state
        if state in PROVEN and set(changed) & IDENTITY_FIELDS:
            state = WAITING
        after = storage.write_lifecycle(connection_id, state=state, health=before.health, **changed)
        record_change(
            before, after, "identity_changed", actor=actor, detail={"changed": sorted(changed)}
        )
        return after
