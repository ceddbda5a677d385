"""Refresh leases: one keep-alive run at a time per connection, across processes."""

from __future__ import annotations

from portal.storage.db import write_transaction
from portal.storage.sql import _execute, _row


def claim_refresh_lease(connection_id: str, owner: str, *, now: float, ttl: float) -> bool:
    """Take the refresh lease of a connection for ``ttl`` seconds; False while another owner
    holds an unexpired one. Call it inside the caller's ``write_transaction`` together with the
    check that the connection still needs a refresh."""
    with write_transaction():
        row = _row(
            "SELECT owner, lease_until FROM refresh_leases WHERE connection_id = ?",
            [str(connection_id)],
        )
        if row is not None and row["owner"] != owner and row["lease_until"] > now:
            return False
        _execute(
            "INSERT INTO refresh_leases (connection_id, owner, lease_until) VALUES (?, ?, ?) "
            "ON CONFLICT (connection_id) DO UPDATE SET owner = excluded.owner, "
            "lease_until = excluded.lease_until",
            [str(connection_id), owner, now + ttl],
        )
        return True


def holds_refresh_lease(connection_id: str, owner: str) -> bool:
    """True when ``owner`` still holds the connection's refresh lease (expired or not: nobody
    else has taken it over)."""
    row = _row("SELECT owner FROM refresh_leases WHERE connection_id = ?", [str(connection_id)])
    return row is not None and row["owner"] == owner


def release_refresh_lease(connection_id: str, owner: str) -> None:
    """Give the lease back (only the owner's own lease is removed)."""
    _execute(
        "DELETE FROM refresh_leases WHERE connection_id = ? AND owner = ?",
        [str(connection_id), owner],
    )
