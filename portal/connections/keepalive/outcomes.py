"""Recording the outcome of one refresh through ``portal.connections.lifecycle``: the rotated
sign-in with the success, a re-link needed, a transient failure counted once per UTC day (and
exhaustion), an operator problem logged. Each write is one ``BEGIN IMMEDIATE`` transaction that
first checks the connection still holds the sign-in the refresh started from."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from portal import storage
from portal.connections import lifecycle
from portal.connections.keepalive.rules import Category, parse_time
from portal.connections.keepalive.settings import Settings
from portal.entra.client import EntraClient, TokenResult
from portal.storage.db import write_transaction

log = logging.getLogger("portal.keepalive")

Outcome = Literal["refreshed", "relink", "transient", "exhausted", "operator", "skipped"]


@dataclass(frozen=True)
class ConnectionResult:
    """What happened to one connection in a run (no secrets: codes and ids only)."""

    connection_id: str
    label: str
    outcome: Outcome
    reason: str = ""
    failure_days: int = 0


class Failed(Exception):
    """A refresh that failed, with who has to act on it and what to record (no secrets)."""

    def __init__(self, category: Category, reason: str, detail: dict[str, Any] | None = None):
        super().__init__(reason)
        self.category = category
        self.reason = reason
        self.detail = detail or {}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _same_link(connection: storage.Connection) -> bool:
    """True while the connection still holds the sign-in this run started from: a Link Account
    that finished meanwhile (new consent) must not be overwritten by an older result, and a
    connection found unusable meanwhile (needs_reconnect) keeps waiting for the customer."""
    current = storage.get_connection(connection.id)
    return (
        current is not None
        and current.state in lifecycle.PROVEN
        and current.consented_at == connection.consented_at
        and current.tenant_id == connection.tenant_id
        and current.consented_by_oid == connection.consented_by_oid
    )


def record_success(
    connection: storage.Connection,
    owner: str,
    client: EntraClient,
    result: TokenResult,
    now: datetime,
) -> bool:
    """Store the rotated cache and the success in ONE transaction; False if the lease was lost."""
    at = _iso(now)
    with write_transaction():
        if not storage.holds_refresh_lease(connection.id, owner) or not _same_link(connection):
            return False
        lifecycle.refresh_succeeded(
            connection.id,
            token_cache=client.cache_text().encode(),
            fields={
                "refresh_last_ok_at": at,
                "refresh_failure_days": 0,
                "refresh_last_failure_day": None,
            },
            summary={
                "check": "keep-alive",
                "scopes": sorted(result.scopes or ()),
                "after_failure_days": connection.refresh_failure_days,
            },
            at=at,
        )
        storage.release_refresh_lease(connection.id, owner)
    return True


def _record_relink(
    connection: storage.Connection,
    reason: str,
    detail: dict[str, Any],
    now: datetime,
    outcome: str = "refresh_relink_needed",
) -> bool:
    """Move the connection to re-link needed; False (nothing written) if it was linked again
    while this run was refreshing the old sign-in."""
    at = _iso(now)
    with write_transaction():
        if not _same_link(connection):
            return False
        lifecycle.needs_reconnect(
            connection.id,
            f"keep-alive: {reason}",
            cause=(outcome, {"check": "keep-alive", "reason": reason, **detail}),
            at=at,
        )
    return True


def _record_transient(
    connection_id: str, reason: str, detail: dict[str, Any], now: datetime, settings: Settings
) -> tuple[Outcome, int]:
    """Count the failure once per UTC day; exhausted on the configured number of days."""
    today = now.astimezone(UTC).date().isoformat()
    at = _iso(now)
    with write_transaction():
        connection = storage.get_connection(connection_id)
        if connection is None or connection.state not in lifecycle.PROVEN:
            return "skipped", 0  # deleted or found unusable while this run was refreshing
        days = connection.refresh_failure_days
        last_day = connection.refresh_last_failure_day
        consented = parse_time(connection.consented_at)
        if last_day and consented and consented.date().isoformat() > last_day:
            days, last_day = 0, None  # re-linked since those failures: they don't count
        counted = last_day != today
        if counted:
            days += 1
        fields = {"refresh_failure_days": days, "refresh_last_failure_day": today}
        summary = {
            "check": "keep-alive",
            "reason": reason,
            "failure_days": days,
            "counted": counted,
            **detail,
        }
        if days >= settings.exhausted_after_days:
            storage.update_connection(connection_id, **fields)
            lifecycle.needs_reconnect(
                connection_id,
                f"keep-alive exhausted: refresh failed on {days} days ({reason})",
                cause=("refresh_exhausted", summary),
                at=at,
            )
            return "exhausted", days
        lifecycle.refresh_failed(connection_id, fields=fields, summary=summary, at=at)
        return "transient", days


def record_failure(
    connection: storage.Connection, failure: Failed, now: datetime, settings: Settings
) -> ConnectionResult:
    """Record a failed refresh by who has to act on it: the customer, nobody yet, or us."""
    connection_id, label = connection.id, connection.label
    if failure.category == "relink":
        log.warning("keep-alive: connection %s needs a re-link (%s)", connection_id, failure.reason)
        if not _record_relink(connection, failure.reason, failure.detail, now):
            return ConnectionResult(
                connection_id,
                label,
                "skipped",
                "changed meanwhile (re-linked or found unusable); old sign-in's failure ignored",
            )
        return ConnectionResult(connection_id, label, "relink", failure.reason)
    if failure.category == "transient":
        outcome, days = _record_transient(
            connection_id, failure.reason, failure.detail, now, settings
        )
        if outcome == "skipped":
            return ConnectionResult(
                connection_id, label, "skipped", f"changed meanwhile; {failure.reason} ignored"
            )
        log.warning(
            "keep-alive: connection %s refresh failed, transient (%s), failing days %d%s",
            connection_id,
            failure.reason,
            days,
            ", exhausted" if outcome == "exhausted" else "",
        )
        return ConnectionResult(connection_id, label, outcome, failure.reason, days)
    log.error(
        "keep-alive: connection %s: operator problem: %s %s",
        connection_id,
        failure.reason,
        json.dumps(failure.detail, sort_keys=True),
    )
    return ConnectionResult(connection_id, label, "operator", failure.reason)
