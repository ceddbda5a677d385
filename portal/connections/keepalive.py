"""Keep delegated (service-provider) connections alive: ``flask --app portal refresh-tokens``.

An Entra refresh token dies after 90 days without use (AADSTS700082). A cron job runs this once
or more a day; every linked service-provider connection whose last successful refresh (or
consent) is older than ``idle`` (24 h) is refreshed through MSAL against its own cloud and tenant.

Rules (security.md §0 item 5, §6.1, §6.3, §6.4, §7 items 24-26; entra.md §9):

* **Rotation is persisted atomically.** Entra hands out a new refresh token on every use and does
  not revoke the old one. The new MSAL cache (encrypted in the vault) is written in the SAME
  ``BEGIN IMMEDIATE`` transaction that records success (``refresh_last_ok_at``, counters reset,
  health event). If that transaction fails, nothing of it lands: the previous token stays stored,
  and because Entra still accepts it, the next run succeeds.
* **Failures are classified**, on Microsoft's ``error`` and ``error_codes`` (never the text):

  - *re-link needed* — ``invalid_grant`` (AADSTS700082 inactivity, 50173 revoked, 70043 sign-in
    frequency, 700084, 65001 consent withdrawn, …), ``interaction_required``,
    ``consent_required``, or no usable refresh token stored (missing or unreadable cache). The
    connection moves to ``needs_reconnect`` / ``failing`` and is never tried again until the
    customer links it again.
  - *transient* — network errors, timeouts, HTTP 429 and 5xx, ``temporarily_unavailable``,
    ``server_error``. Retried on the next run; counted at most once per UTC calendar day in
    ``refresh_failure_days`` (``refresh_last_failure_day`` holds the day). On the
    ``EXHAUSTED_AFTER_DAYS``-th (4th) failing day the connection is **exhausted**: state
    ``needs_reconnect``, health ``failing``, a ``refresh_exhausted`` health event. The marker of
    "exhausted" (as opposed to revoked) is ``state == "needs_reconnect"`` together with
    ``refresh_failure_days >= EXHAUSTED_AFTER_DAYS`` (see :func:`is_exhausted`).
  - *operator problem* — anything else: ``invalid_client`` (our own credential), unknown cloud,
    missing ``SP_*`` settings, a database write that failed, a token for the wrong tenant. Logged
    with Microsoft's support codes, not counted against the customer, and the command exits 1.

* **One refresher per connection.** Before any network call a run claims a lease row
  (``refresh_leases``) in a ``BEGIN IMMEDIATE`` transaction that also re-checks that the
  connection is still due; a concurrent run sees the lease (or the fresh ``refresh_last_ok_at``)
  and skips the connection. The success transaction writes only while the lease is still ours.

Nothing here needs a Flask request: the functions take the cloud table, the settings and the
clock as parameters and use ``portal.store`` (an app context provides the database).
Never logged or printed: tokens, the cache, the credential.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import requests

from portal import storage
from portal.connections import credentials, lifecycle, service_provider
from portal.entra.client import (
    Credential,
    EntraClient,
    TokenResult,
    read_stored_sign_in,
)
from portal.entra.clouds import Cloud, CloudTable, http_session
from portal.entra.errors import EntraProblem
from portal.storage import vault
from portal.storage.db import write_transaction

log = logging.getLogger("portal.keepalive")

DEFAULT_IDLE = timedelta(hours=24)
EXHAUSTED_AFTER_DAYS = 4
#: Longer than one refresh can take (connect 3 s + read 10 s, MSAL discovery + token call).
LEASE_SECONDS = 300.0

#: Codes that mean the stored sign-in is gone for good (entra.md §6, §9).
RELINK_CODES = frozenset({700082, 50173, 70043, 700084, 65001, 50076, 50079})
RELINK_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})

Outcome = Literal["refreshed", "relink", "transient", "exhausted", "operator", "skipped"]
Category = Literal["relink", "transient", "operator"]


class KeepAliveConfigError(RuntimeError):
    """The service provider application is not configured (an operator problem)."""


@dataclass(frozen=True)
class Settings:
    """What a run needs besides the database: our multi-tenant app and the policy knobs."""

    client_id: str
    credential: Credential = field(repr=False)
    idle: timedelta = DEFAULT_IDLE
    exhausted_after_days: int = EXHAUSTED_AFTER_DAYS
    lease_seconds: float = LEASE_SECONDS


@dataclass(frozen=True)
class ConnectionResult:
    """What happened to one connection in a run (no secrets: codes and ids only)."""

    connection_id: str
    label: str
    outcome: Outcome
    reason: str = ""
    failure_days: int = 0


@dataclass
class RunSummary:
    results: list[ConnectionResult] = field(default_factory=list)
    config_error: str | None = None

    def count(self, *outcomes: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome in outcomes)

    @property
    def refreshed(self) -> int:
        return self.count("refreshed")

    @property
    def relink(self) -> int:
        return self.count("relink")

    @property
    def transient(self) -> int:
        """Transient failures this run, the ones that just became exhausted included."""
        return self.count("transient", "exhausted")

    @property
    def exhausted(self) -> int:
        return self.count("exhausted")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def operator(self) -> int:
        return self.count("operator")

    @property
    def exit_code(self) -> int:
        """Non-zero only for operator problems: customers' failures are not the cron job's."""
        return 1 if self.operator else 0

    def line(self) -> str:
        return (
            f"refreshed {self.refreshed}, re-link needed {self.relink}, "
            f"transient failures {self.transient} (exhausted {self.exhausted}), "
            f"skipped {self.skipped}, operator problems {self.operator}"
        )


# --- Settings ---------------------------------------------------------------------------------


def settings_from_config(
    config: Mapping[str, Any], instance_path: str | None = None, *, idle_hours: float | None = None
) -> Settings:
    """Settings from the app config: our app as the one reader of its settings reads it for Link
    Account too (``portal.connections.service_provider``: the same client id, lower-cased, and
    the same credential), plus ``REFRESH_IDLE_HOURS``; ``idle_hours`` (the CLI option) wins.
    Raises :class:`KeepAliveConfigError` naming the setting to fix (never its value)."""
    app = service_provider.read_settings(config, instance_path or "")
    problems = service_provider.app_problems(app)
    if problems or app.client_id is None or app.credential is None:
        raise KeepAliveConfigError(" ".join(problems) or "service provider app not configured")
    hours = idle_hours if idle_hours is not None else config.get("REFRESH_IDLE_HOURS", 24)
    try:
        idle = timedelta(hours=float(hours))
    except (TypeError, ValueError):
        raise KeepAliveConfigError("REFRESH_IDLE_HOURS must be a number of hours") from None
    return Settings(app.client_id, app.credential, idle=idle)


# --- Selection and classification -------------------------------------------------------------


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


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
        for m in (_parse_time(connection.refresh_last_ok_at), _parse_time(connection.consented_at))
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


def _reason(problem: EntraProblem) -> str:
    code = problem.code or (problem.raw.error_codes[0] if problem.raw.error_codes else None)
    if code:
        return f"AADSTS{code}"
    if problem.raw.http_status:
        return f"HTTP {problem.raw.http_status}"
    return problem.error or problem.title


def _support_codes(problem: EntraProblem) -> dict[str, Any]:
    return {
        "error": problem.error,
        "code": problem.code,
        "title": problem.title,
        **problem.raw.as_dict(),
    }


# --- One connection ---------------------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, category: Category, reason: str, detail: dict[str, Any] | None = None):
        super().__init__(reason)
        self.category = category
        self.reason = reason
        self.detail = detail or {}


def _account_for(cache_text: str, connection: storage.Connection, client_id: str) -> dict[str, Any]:
    """The signed-in admin's account in the stored cache (read locally, no network), checked to
    hold a refresh token of our app."""
    home = (
        f"{connection.consented_by_oid}.{connection.tenant_id}"
        if connection.consented_by_oid and connection.tenant_id
        else None
    )
    try:
        stored = read_stored_sign_in(cache_text, home)
    except ValueError:
        raise _Failed("relink", "stored sign-in damaged") from None
    account = stored.account
    if account is None:
        raise _Failed("relink", "no stored sign-in")
    if not stored.refresh_token_client_ids:
        raise _Failed("relink", "no refresh token stored")
    if client_id not in stored.refresh_token_client_ids:
        raise _Failed("operator", "stored sign-in belongs to another client id (SP_CLIENT_ID?)")
    return account


def _refresh(
    cloud: Cloud,
    connection: storage.Connection,
    settings: Settings,
    cache_text: str,
    session: requests.Session,
) -> tuple[TokenResult, EntraClient]:
    account = _account_for(cache_text, connection, settings.client_id)
    client = EntraClient(
        cloud,
        connection.tenant_id or "",
        settings.client_id,
        settings.credential,
        session=session,
        token_cache_text=cache_text,
    )
    # force_refresh skips the cached access token: the point is to redeem (and so renew) the
    # refresh token. `.default` asks for whatever is granted, so a scope withdrawn later doesn't
    # fail the keep-alive (the status check reports missing scopes).
    result = client.acquire_delegated_silent([cloud.graph_scope()], account, force_refresh=True)
    return result, client


def _claim(
    connection_id: str, owner: str, now: datetime, settings: Settings
) -> tuple[storage.Connection | None, str]:
    """Re-read the connection and take its lease in one BEGIN IMMEDIATE. Returns the connection,
    or None and why not: no longer due (another run refreshed it meanwhile), or another run
    holds the lease right now."""
    with write_transaction():
        connection = storage.get_connection(connection_id)
        if connection is None or not is_linked(connection):
            return None, "no longer linked"
        if not is_due(connection, now, settings.idle):
            return None, "refreshed recently"
        if not storage.claim_refresh_lease(
            connection_id, owner, now=now.timestamp(), ttl=settings.lease_seconds
        ):
            return None, "another run is refreshing it"
        return connection, ""


def _release(connection_id: str, owner: str) -> None:
    try:
        storage.release_refresh_lease(connection_id, owner)
    except sqlite3.Error:
        log.warning(
            "keep-alive: could not release the lease of connection %s (it expires)", connection_id
        )


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


def _record_success(
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
        consented = _parse_time(connection.consented_at)
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


def refresh_connection(
    connection_id: str,
    *,
    settings: Settings,
    cloud_table: CloudTable,
    now: datetime,
    owner: str | None = None,
    session_for: Callable[[Cloud], requests.Session] | None = None,
) -> ConnectionResult:
    """Refresh one connection if it is due and nobody else is at it; record the outcome."""
    owner = owner or secrets.token_hex(16)
    own_session: requests.Session | None = None
    if session_for is None:

        def session_for(cloud: Cloud) -> requests.Session:
            nonlocal own_session
            own_session = own_session or http_session(cloud_table, cloud)
            return own_session

    try:
        return _refresh_claimed(
            connection_id,
            settings=settings,
            cloud_table=cloud_table,
            now=now,
            owner=owner,
            session_for=session_for,
        )
    except sqlite3.Error as exc:
        # Recording an outcome failed (the refresh itself, if any, was not stored): the
        # previous token is kept; an operator has to look at the database.
        log.error(
            "keep-alive: connection %s: database error %s: %s",
            connection_id,
            exc.__class__.__name__,
            exc,
        )
        _release(connection_id, owner)
        return ConnectionResult(connection_id, connection_id, "operator", "database error")
    finally:
        if own_session is not None:
            own_session.close()


def _refresh_claimed(
    connection_id: str,
    *,
    settings: Settings,
    cloud_table: CloudTable,
    now: datetime,
    owner: str,
    session_for: Callable[[Cloud], requests.Session],
) -> ConnectionResult:
    claimed, why = _claim(connection_id, owner, now, settings)
    if claimed is None:
        current = storage.get_connection(connection_id)
        label = current.label if current else connection_id
        return ConnectionResult(connection_id, label, "skipped", why)
    connection = claimed
    try:
        try:
            outcome, reason = _redeem_and_store(
                connection,
                settings=settings,
                cloud_table=cloud_table,
                now=now,
                owner=owner,
                session_for=session_for,
            )
            return ConnectionResult(connection_id, connection.label, outcome, reason)
        except _Failed as failure:
            return _record_failure(connection, failure, now, settings)
    finally:
        _release(connection_id, owner)


def _redeem_and_store(
    connection: storage.Connection,
    *,
    settings: Settings,
    cloud_table: CloudTable,
    now: datetime,
    owner: str,
    session_for: Callable[[Cloud], requests.Session],
) -> tuple[Outcome, str]:
    """Redeem the claimed connection's refresh token and store the rotated one; a failure
    Microsoft (or the stored sign-in) gave is raised as :class:`_Failed`."""
    try:
        cloud = cloud_table.get(connection.cloud or "")
    except KeyError:
        raise _Failed("operator", f"unknown cloud {connection.cloud!r}") from None
    if not connection.tenant_id:
        raise _Failed("relink", "no tenant stored")
    try:
        blob = credentials.token_cache(connection.id)
    except vault.SecretUnreadable as exc:
        # credentials.token_cache has already moved the connection to needs_reconnect.
        return "relink", f"stored sign-in unreadable ({exc.reason})"
    if not blob:
        raise _Failed("relink", "no stored sign-in")
    token, client = _refresh(cloud, connection, settings, blob.decode(), session_for(cloud))
    if not token.ok:
        problem = token.problem
        if problem is None:
            raise _Failed("operator", "token request failed without a reason")
        raise _Failed(classify_failure(problem), _reason(problem), _support_codes(problem))
    tid = token.claims.get("tid")
    if tid is not None and str(tid).lower() != connection.tenant_id.lower():
        raise _Failed("operator", "token issued for another tenant; not stored")
    try:
        stored = _record_success(connection, owner, client, token, now)
    except sqlite3.Error as exc:
        # Nothing of the success transaction landed: the previous token is still stored and
        # still valid at Entra (old refresh tokens are not revoked), so the next run works.
        log.error(
            "keep-alive: storing the refreshed sign-in of connection %s failed (%s); "
            "the previous one is kept",
            connection.id,
            exc.__class__.__name__,
        )
        return "operator", "database write failed; previous sign-in kept"
    if not stored:
        return "skipped", "changed meanwhile (re-linked, found unusable or lease lost); discarded"
    log.info("keep-alive: connection %s refreshed", connection.id)
    return "refreshed", ""


def _record_failure(
    connection: storage.Connection, failure: _Failed, now: datetime, settings: Settings
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


def run(
    *,
    settings: Settings | None,
    cloud_table: CloudTable,
    now: datetime | None = None,
    connection_ids: Iterable[str] | None = None,
    config_error: str | None = None,
    session_for: Callable[[Cloud], requests.Session] | None = None,
) -> RunSummary:
    """One keep-alive pass over every linked service-provider connection (or the given ones).

    ``settings`` None (with ``config_error``) makes each due connection an operator problem
    without touching it. Connections not due are reported as skipped; those waiting for a re-link
    are not reported at all."""
    now = now or datetime.now(UTC)
    idle = settings.idle if settings else DEFAULT_IDLE
    owner = secrets.token_hex(16)
    wanted = set(connection_ids) if connection_ids is not None else None
    summary = RunSummary()
    sessions: dict[str, requests.Session] = {}

    def session_of(cloud: Cloud) -> requests.Session:
        if session_for is not None:
            return session_for(cloud)
        if cloud.key not in sessions:
            sessions[cloud.key] = http_session(cloud_table, cloud)
        return sessions[cloud.key]

    try:
        for connection in storage.list_all_connections():
            if wanted is not None and connection.id not in wanted:
                continue
            if not is_linked(connection):
                continue
            if settings is None and is_due(connection, now, idle):
                summary.config_error = config_error or "service provider app not configured"
            summary.results.append(
                _run_one(connection, settings, cloud_table, now, owner, session_of)
            )
    finally:
        for session in sessions.values():
            session.close()
    return summary


def _run_one(
    connection: storage.Connection,
    settings: Settings | None,
    cloud_table: CloudTable,
    now: datetime,
    owner: str,
    session_of: Callable[[Cloud], requests.Session],
) -> ConnectionResult:
    """One linked connection of a run: skipped when not due, refreshed when it is."""
    if not is_due(connection, now, settings.idle if settings else DEFAULT_IDLE):
        return ConnectionResult(connection.id, connection.label, "skipped", "refreshed recently")
    if settings is None:
        return ConnectionResult(connection.id, connection.label, "operator", "not configured")
    try:
        return refresh_connection(
            connection.id,
            settings=settings,
            cloud_table=cloud_table,
            now=now,
            owner=owner,
            session_for=session_of,
        )
    except Exception as exc:  # one broken connection must not stop the others
        log.error(
            "keep-alive: connection %s: unexpected %s: %s",
            connection.id,
            exc.__class__.__name__,
            exc,
        )
        return ConnectionResult(connection.id, connection.label, "operator", "unexpected error")


_LABELS = {
    "refreshed": "refreshed",
    "relink": "re-link needed",
    "transient": "transient failure",
    "exhausted": "exhausted (re-link needed)",
    "operator": "operator problem",
    "skipped": "skipped",
}


def report_lines(summary: RunSummary, verbose: bool = False) -> list[str]:
    """Lines for the CLI: one per connection that needs someone's attention (all with
    ``verbose``), then the summary. Ids, labels and Microsoft's codes only."""
    lines: list[str] = []
    if summary.config_error:
        lines.append(f"Service provider application not configured: {summary.config_error}.")
    for r in summary.results:
        if r.outcome in ("refreshed", "skipped") and not verbose:
            continue
        detail = f" ({r.reason})" if r.reason else ""
        days = f", failing days {r.failure_days}" if r.outcome in ("transient", "exhausted") else ""
        lines.append(
            f"  {r.connection_id} {_one_line(r.label)}: {_LABELS[r.outcome]}{detail}{days}"
        )
    lines.append(f"Refresh tokens: {summary.line()}")
    return lines


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)[:80]


def run_from_app(
    app,
    *,
    idle_hours: float | None = None,
    now: datetime | None = None,
    connection_ids: Iterable[str] | None = None,
) -> RunSummary:
    """The CLI's entry point: settings from the app config, the app's cloud table."""
    from portal.services import cloud_table

    try:
        settings: Settings | None = settings_from_config(
            app.config, app.instance_path, idle_hours=idle_hours
        )
        error = None
    except KeepAliveConfigError as exc:
        settings, error = None, str(exc)
    return run(
        settings=settings,
        cloud_table=cloud_table(),
        now=now,
        connection_ids=connection_ids,
        config_error=error,
    )
