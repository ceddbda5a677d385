"""What every transition shares: the stored connection as it is now (refused from a state the
transition does not start from) and the audit row of a step that moved the state."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from portal import storage
from portal.connections.transitions import DRAFT, TRANSITIONS, WAITING, TransitionRefused
from portal.storage import Connection

log = logging.getLogger("portal.lifecycle")

#: States of a connection that has not been proven yet: a check that finds something missing is
#: the setup going on, not a failure, so the connection stays there with health ``unknown``.
SETTING_UP = (DRAFT, WAITING)

BY_NAME = {t.name: t for t in TRANSITIONS}


def current(connection_id: str, transition: str) -> Connection:
    """The connection as stored now, inside the caller's transaction; refused unless the
    transition starts from its state."""
    found = storage.get_connection(connection_id)
    if found is None:
        raise KeyError(connection_id)
    if found.deleted:
        raise storage.ConnectionDeleted(connection_id)
    if found.state not in BY_NAME[transition].sources:
        raise TransitionRefused(transition, found.state)
    return found


def state_moved(before: Connection, after: Connection) -> bool:
    return (before.state, before.health) != (after.state, after.health)


def with_states(detail: Mapping[str, Any], before: Connection, after: Connection) -> dict[str, Any]:
    """An audit detail that says which state the step moved the connection from and to."""
    if not state_moved(before, after):
        return dict(detail)
    return {**detail, "from": before.state, "to": after.state}


def record_change(
    before: Connection,
    after: Connection,
    transition: str,
    *,
    actor: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """The audit row of a setup step that changed the state (setup steps check nothing and
    leave health alone, so they add nothing to the health record)."""
    if not state_moved(before, after):
        return
    storage.audit_connection(
        f"connection.{transition}",
        after,
        actor=actor,
        detail={"from": before.state, "to": after.state, **(detail or {})},
    )
