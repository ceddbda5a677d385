"""One keep-alive pass over every linked service-provider connection: each due one refreshed
(sharing one HTTP session per cloud), the others reported as skipped, and the CLI's entry point
that reads the settings from the app."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import requests

from portal import storage
from portal.connections.breaker import CloudBreaker, breaker_from_config
from portal.connections.keepalive.outcomes import ConnectionResult
from portal.connections.keepalive.refresh import refresh_connection
from portal.connections.keepalive.report import RunSummary
from portal.connections.keepalive.rules import DEFAULT_IDLE, is_due, is_linked
from portal.connections.keepalive.settings import (
    KeepAliveConfigError,
    Settings,
    settings_from_config,
)
from portal.entra.clouds import Cloud, CloudTable, http_session
from portal.entra.retry import Tracker, track

log = logging.getLogger("portal.keepalive")


def run(
    *,
    settings: Settings | None,
    cloud_table: CloudTable,
    now: datetime | None = None,
    connection_ids: Iterable[str] | None = None,
    config_error: str | None = None,
    session_for: Callable[[Cloud], requests.Session] | None = None,
    progress: Callable[[int], None] | None = None,
    breaker: CloudBreaker | None = None,
) -> RunSummary:
    """One keep-alive pass over every linked service-provider connection (or the given ones).

    ``settings`` None (with ``config_error``) makes each due connection an operator problem
    without touching it. Connections not due are reported as skipped; those waiting for a re-link
    are not reported at all. Due connections of a cloud the breaker paused are skipped too."""
    now = now or datetime.now(UTC)
    idle = settings.idle if settings else DEFAULT_IDLE
    owner = secrets.token_hex(16)
    wanted = set(connection_ids) if connection_ids is not None else None
    summary = RunSummary()
    sessions: dict[str, requests.Session] = {}
    breaker = breaker or CloudBreaker()

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
            if progress is not None:  # how many are done (for the job's progress)
                progress(len(summary.results))
            if settings is None and is_due(connection, now, idle):
                summary.config_error = config_error or "service provider app not configured"
            cloud = connection.cloud or "unknown"
            if settings is not None and is_due(connection, now, idle):
                if not breaker.admit(cloud):
                    summary.results.append(
                        ConnectionResult(connection.id, connection.label, "skipped", PAUSED)
                    )
                    continue
            with track() as calls:
                result = _run_one(connection, settings, cloud_table, now, owner, session_of)
            _tell_breaker(breaker, cloud, result, calls)
            summary.results.append(result)
    finally:
        for session in sessions.values():
            session.close()
    return summary


#: Why a due connection was not refreshed: its cloud is paused (the pause is logged once).
PAUSED = "not checked: cloud paused"


def _tell_breaker(
    breaker: CloudBreaker, cloud: str, result: ConnectionResult, calls: Tracker
) -> None:
    """A transient failure counts against the cloud; any answer from Microsoft resets it."""
    if result.outcome in ("transient", "exhausted"):
        breaker.record(cloud, transient=True, retry_after=calls.retry_after())
    elif calls.calls:
        breaker.record(cloud, transient=False)
    else:
        breaker.undecided(cloud)


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


def run_from_app(
    app,
    *,
    idle_hours: float | None = None,
    now: datetime | None = None,
    connection_ids: Iterable[str] | None = None,
    progress: Callable[[int], None] | None = None,
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
        progress=progress,
        breaker=breaker_from_config(app.config),
    )
