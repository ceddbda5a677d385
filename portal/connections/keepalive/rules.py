"""The keep-alive's rules: when a connection is linked, due or exhausted, and who has to act on
a failed refresh (the customer, nobody yet, or the operator). Pure functions of a connection,
the clock and Microsoft's error; nothing here writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from portal import storage
from portal.entra.errors import EntraProblem

DEFAULT_IDLE = timedelta(hours=24)
EXHAUSTED_AFTER_DAYS = 4
#: Longer than one refresh can take (connect 3 s + read 10 s, MSAL discovery + token call).
LEASE_SECONDS = 300.0

#: Codes that mean the stored sign-in is gone for good (entra.md §6, §9).
RELINK_CODES = frozenset({700082, 50173, 70043, 700084, 65001, 50076, 50079})
RELINK_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})

Category = Literal["relink", "transient", "operator"]


def parse_time(value: str | None) -> datetime | None:
    """A stored ISO timestamp as an aware datetime (naive ones are UTC); None if unparsable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_linked(connection: storage.Connection) -> bool:
    """A service-provider connection that holds a sign-in and may be kept alive."""
    return (
        connection.kind == "service_provider"
        and connection.consented_at is not None
        and connection.state not in ("draft", "needs_reconnect", storage.DELETED)
    )


def is_exhausted(connection: storage.Connection, after_days: int = EXHAUSTED_AFTER_DAYS) -> bool:
    """True when keep-alive gave up after transient failures on ``after_days`` days."""
    return connection.state == "needs_reconnect" and connection.refresh_failure_days >= after_days


def last_alive(connection: storage.Connection) -> datetime | None:
    """When the refresh token last proved alive: the later of the last refresh and the consent."""
    moments = [
        m
        for m in (parse_time(connection.refresh_last_ok_at), parse_time(connection.consented_at))
        if m is not None
    ]
    return max(moments) if moments else None


def is_due(connection: storage.Connection, now: datetime, idle: timedelta = DEFAULT_IDLE) -> bool:
    """Linked, not waiting for a re-link, and idle for at least ``idle``."""
    if not is_linked(connection):
        return False
    alive = last_alive(connection)
    return alive is None or now - alive >= idle


def classify_failure(problem: EntraProblem) -> Category:
    """Who has to act on a failed refresh: the customer (re-link), nobody yet (transient), or
    the operator (everything else, e.g. ``invalid_client``: our own credential)."""
    codes = set(problem.raw.error_codes)
    if problem.code is not None:
        codes.add(problem.code)
    if problem.error in RELINK_ERRORS or codes & RELINK_CODES:
        return "relink"
    if problem.category == "transient":
        return "transient"
    return "operator"


def failure_reason(problem: EntraProblem) -> str:
    """The short reason shown for a failure: Microsoft's code, else the HTTP status."""
    code = problem.code or (problem.raw.error_codes[0] if problem.raw.error_codes else None)
    if code:
        return f"AADSTS{code}"
    if problem.raw.http_status:
        return f"HTTP {problem.raw.http_status}"
    return problem.error or problem.title


def support_codes(problem: EntraProblem) -> dict[str, Any]:
    """What Microsoft's support asks for (no secrets), for the log and the health event."""
    return {
        "error": problem.error,
        "code": problem.code,
        "title": problem.title,
        **problem.raw.as_dict(),
    }
