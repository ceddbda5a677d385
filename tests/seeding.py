"""Putting a connection in a given state for a test: the product moves state and health only
through ``portal.connections.lifecycle``; a test that needs a connection in some state writes the
columns directly, as a fixture, instead of replaying the steps that lead there."""

from __future__ import annotations

from portal import storage


def set_columns(connection_id: str, **fields) -> storage.Connection:
    """Write connection columns, ``state`` and ``health`` included (app context required)."""
    if "state" not in fields and "health" not in fields:
        return storage.update_connection(connection_id, **fields)
    current = storage.get_connection(connection_id)
    if current is None:
        raise KeyError(connection_id)
    state = fields.pop("state", current.state)
    health = fields.pop("health", current.health)
    return storage.write_lifecycle(connection_id, state=state, health=health, **fields)
