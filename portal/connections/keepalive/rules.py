"""The keep-alive's rules: when a connection is linked or due, how long its refresh token can
still be alive, when support must be alarmed, and who has to act on a failed refresh (the
customer, nobody yet, or the operator). Pure functions of a connection, the clock and
Microsoft's error; nothing here writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from portal import storage
from portal.entra.errors import EntraProblem

DEFAULT_IDLE = timedelta(hours=24)
#: Microsoft ends a refresh token that goes unused this long (MaxInactiveTime, 90 days; not
#: configurable since 2021-01-30): entra.md §9, sources CTL and RT,
#: https://learn.microsoft.com/entra/identity-platform/configurable-token-lifetimes and
#: https://learn.microsoft.com/entra/identity-platform/refresh-tokens . Transient failures are
#: retried for as long as the token can still be alive; only then is the customer asked to
#: link again.
TOKEN_INACTIVE_LIFE = timedelta(days=90)
#: Taken off that life: ``last_alive`` is our record of the moment (consent is stored after
#: Microsoft issued the token; our clock and Microsoft's may differ), and the cron runs about
#: daily, so a day more would be a run against a token that is already gone.
LIFE_MARGIN = timedelta(days=1)
#: Support is alarmed after this many failing UTC days ...
ALARM_AFTER_DAYS = 3
#: ... and again once this little of the token's life is left.
ALARM_LIFE_LEFT = timedelta(days=30)
#: Longer than one refresh can take (connect 3 s + read 10 s, MSAL discovery + token call).
LEASE_SECONDS = 300.0

#: Codes that mean the stored sign-in is gone for good (entra.md §6, §9).
RELINK_CODES = frozenset({700082, 50173, 70043, 700084, 65001, 50076, 50079})
RELINK_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})

#: ``our_config``: our own vault keyring cannot read the stored sign-in (an operator alarm; the
#: customer's connection is left as it is).
Category = Literal["relink", "transient", "operator", "our_config"]


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


def last_alive(connection: storage.Connection) -> datetime | None:
    """When the refresh token last proved alive: the later of the last refresh and the consent."""
    moments = [
        m
        for m in (parse_time(connection.refresh_last_ok_at), parse_time(connection.consented_at))
        if m is not None
    ]
    return max(moments) if moments else None


def life_end(connection: storage.Connection) -> datetime | None:
    """When the refresh token is surely gone if it is not redeemed before: 90 days after it last
    proved alive, less the margin. None when it never proved alive."""
    alive = last_alive(connection)
    return alive + TOKEN_INACTIVE_LIFE - LIFE_MARGIN if alive is not None else None


def life_left(connection: storage.Connection, now: datetime) -> timedelta | None:
    """How long the refresh token can still be alive (negative once it is surely gone)."""
    end = life_end(connection)
    return end - now if end is not None else None


def life_over(connection: storage.Connection, now: datetime) -> bool:
    """True once the refresh token cannot be alive any more (so retrying is pointless)."""
    left = life_left(connection, now)
    return left is not None and left <= timedelta(0)


def is_exhausted(connection: storage.Connection) -> bool:
    """True when keep-alive gave up because refreshes kept failing (transiently) until the
    token's life was over, as opposed to Microsoft saying the grant is gone."""
    end = life_end(connection)
    return (
        connection.state == "needs_reconnect"
        and connection.refresh_failure_days > 0
        and end is not None
        and connection.refresh_last_failure_day is not None
        and connection.refresh_last_failure_day >= end.date().isoformat()
    )


def alarm(connection: storage.Connection, now: datetime) -> str | None:
    """What support must be told about a connection whose refreshes keep failing, well before
    its token's life is over (None while there is nothing to tell): failing on
    ``ALARM_AFTER_DAYS`` days, and again with at most ``ALARM_LIFE_LEFT`` of life left."""
    left = life_left(connection, now)
    days = connection.refresh_failure_days
    if left is None or connection.state not in ("connected", "needs_attention"):
        return None
    days_left = max(0, left.days)
    if left <= ALARM_LIFE_LEFT:
        return (
            f"refresh token has {days_left} day(s) of life left (Microsoft ends it after "
            f"{TOKEN_INACTIVE_LIFE.days} days without use); refresh failing on {days} day(s)"
        )
    if days >= ALARM_AFTER_DAYS:
        return f"refresh failing on {days} days; {days_left} day(s) of the token's life left"
    return None


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
