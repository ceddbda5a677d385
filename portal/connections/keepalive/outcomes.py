"""Recording the outcome of one refresh through ``portal.connections.lifecycle``: the rotated
sign-in with the success and the report of the check made with it, a re-link needed, a
transient failure counted once per UTC day (with support's alarm, and the end of the token's
life), our keyring's failure (an operator alarm), an operator problem logged. Each write is one
``BEGIN IMMEDIATE`` transaction that first checks the connection still holds the sign-in the
refresh started from."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from portal import storage
from portal.connections import lifecycle, verification
from portal.connections.keepalive.rules import (
    TOKEN_INACTIVE_LIFE,
    Category,
    alarm,
    last_alive,
    life_over,
    parse_time,
)
from portal.entra.client import EntraClient
from portal.entra.verify_delegated import DelegatedCheck, granted_scopes
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
    #: Support's alarm about this connection (refreshes failing for days, little life left).
    alarm: str = ""
    #: A refresh is a check too: whether every item of its report was in place (None: no
    #: report was recorded, e.g. Microsoft did not let the check finish).
    check_ok: bool | None = None


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
    check: DelegatedCheck,
    now: datetime,
    *,
    trigger: str = "keep-alive",
    actor: int | None = None,
) -> bool | None:
    """Store the rotated cache, the success and the check's report in ONE transaction. Returns
    whether the report was recorded ok (None: the check was interrupted; its last report
    stands). Raises :class:`LeaseLost`, with nothing written, when the lease was taken over or
    the connection changed meanwhile."""
    at = _iso(now)
    result = check.token
    scopes = granted_scopes(result, client.cloud)
    fields: dict[str, Any] = {
        "refresh_last_ok_at": at,
        "refresh_failure_days": 0,
        "refresh_last_failure_day": None,
    }
    if scopes is not None:
        # What Microsoft grants now: a scope withdrawn since the consent is asked for again by
        # the next Link Account (incremental consent, connections.delegated_link).
        fields["granted_scopes"] = sorted(scopes, key=str.lower)
    with write_transaction():
        if not storage.holds_refresh_lease(connection.id, owner) or not _same_link(connection):
            raise LeaseLost
        lifecycle.refresh_succeeded(
            connection.id,
            token_cache=client.cache_text().encode(),
            fields=fields,
            summary={
                "check": "keep-alive",
                "scopes": sorted(result.scopes or ()),
                "after_failure_days": connection.refresh_failure_days,
            },
            at=at,
        )
        checked = _record_check(connection, check, trigger, actor)
        storage.release_refresh_lease(connection.id, owner)
    return checked


class LeaseLost(Exception):
    """The refresh's result was not stored: the lease was taken over, or the connection was
    linked again or found unusable meanwhile."""


def _record_check(
    connection: storage.Connection, check: DelegatedCheck, trigger: str, actor: int | None
) -> bool | None:
    """The refresh's report as the connection's last check (state, health, "Last check"); a
    check Microsoft did not let finish leaves the last report standing."""
    report = check.report
    current = storage.get_connection_or_raise(connection.id)
    if report.problem is not None and report.problem.retryable:
        lifecycle.check_interrupted(
            connection.id,
            summary={
                "trigger": trigger,
                "problem": report.problem.title,
                "error": report.problem.error,
                "code": report.problem.code,
                "ms": round(report.total_ms),
            },
            actor=actor,
            detail={"ok": False, "transient": True, "trigger": trigger},
        )
        return None
    verification.record_report(current, report, trigger, actor)
    return report.ok


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


def _record_failed_day(
    connection_id: str, reason: str, detail: dict[str, Any], now: datetime, *, ours: bool
) -> tuple[Outcome, int, str]:
    """Count a failed refresh once per UTC day. ``ours`` (our keyring) is never the customer's:
    it never ends the connection. Otherwise, once the token's life is surely over, re-link."""
    today = now.astimezone(UTC).date().isoformat()
    at = _iso(now)
    with write_transaction():
        connection = storage.get_connection(connection_id)
        if connection is None or connection.state not in lifecycle.PROVEN:
            return "skipped", 0, ""  # deleted or found unusable while this run was refreshing
        days = connection.refresh_failure_days
        last_day = connection.refresh_last_failure_day
        consented = parse_time(connection.consented_at)
        if last_day and consented and consented.date().isoformat() > last_day:
            days, last_day = 0, None  # re-linked since those failures: they don't count
        counted = last_day != today
        if counted:
            days += 1
        fields: dict[str, Any] = {"refresh_failure_days": days, "refresh_last_failure_day": today}
        after = replace(connection, refresh_failure_days=days, refresh_last_failure_day=today)
        summary: dict[str, Any] = {
            "check": "keep-alive",
            "reason": reason,
            "failure_days": days,
            "counted": counted,
            **detail,
        }
        if not ours and life_over(after, now):
            alive = last_alive(after)
            storage.update_connection(connection_id, **fields)
            lifecycle.needs_reconnect(
                connection_id,
                f"keep-alive: the refresh token's life is over: no successful refresh since "
                f"{alive.date().isoformat() if alive else 'the link'} and Microsoft ends refresh "
                f"tokens after {TOKEN_INACTIVE_LIFE.days} days without use (last failure: "
                f"{reason})",
                cause=("refresh_exhausted", summary),
                at=at,
            )
            return "exhausted", days, ""
        raised = alarm(after, now) or ""
        if raised:
            summary["alarm"] = raised
        lifecycle.refresh_failed(
            connection_id,
            fields=fields,
            summary=summary,
            at=at,
            error_class="our_config" if ours else "transient",
        )
        return ("operator" if ours else "transient"), days, raised


def record_failure(
    connection: storage.Connection, failure: Failed, now: datetime
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
    if failure.category in ("transient", "our_config"):
        return _failed_day(connection, failure, now)
    log.error(
        "keep-alive: connection %s: operator problem: %s %s",
        connection_id,
        failure.reason,
        json.dumps(failure.detail, sort_keys=True),
    )
    # Visible to support on the connection (state unchanged: nothing for the customer to do).
    lifecycle.our_problem(connection_id, failure.reason, summary=failure.detail, at=_iso(now))
    return ConnectionResult(connection_id, label, "operator", failure.reason)


def _failed_day(connection: storage.Connection, failure: Failed, now: datetime) -> ConnectionResult:
    """A transient failure or our keyring's: counted, alarmed, and logged for the operator."""
    ours = failure.category == "our_config"
    outcome, days, raised = _record_failed_day(
        connection.id, failure.reason, failure.detail, now, ours=ours
    )
    if outcome == "skipped":
        return ConnectionResult(
            connection.id,
            connection.label,
            "skipped",
            f"changed meanwhile; {failure.reason} ignored",
        )
    if raised:
        # The alarm support must act on well before the token's life is over.
        log.error("keep-alive alarm: connection %s: %s (%s)", connection.id, raised, failure.reason)
    elif not ours:
        log.warning(
            "keep-alive: connection %s refresh failed, transient (%s), failing days %d%s",
            connection.id,
            failure.reason,
            days,
            ", token life over: re-link needed" if outcome == "exhausted" else "",
        )
    return ConnectionResult(connection.id, connection.label, outcome, failure.reason, days, raised)
