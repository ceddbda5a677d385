"""Background jobs: one row per Link Account, Check again or certificate upload check.

A job is ``queued`` → ``running`` → ``done`` | ``failed``; or ``interrupted`` when the process
running it stopped first: its ``lease_until`` (epoch seconds, renewed while it runs) passed.
Every reader of a job goes through :func:`read_job` / :func:`latest_job`, which mark such a job
interrupted first, so nobody ever sees "running" forever.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from portal.storage.db import write_transaction
from portal.storage.sql import _execute, _row, _rows, utcnow

JOB_KINDS = ("check", "uploaded")
UNFINISHED = ("queued", "running")
JOB_STATUSES = (*UNFINISHED, "done", "failed", "interrupted")


@dataclass(frozen=True)
class Job:
    """One background job of a connection (``steps``: ``{name, status, ms}`` in order)."""

    id: str
    connection_id: str
    org_id: int
    kind: str
    status: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    created_by: int | None = None
    created_at: str = ""
    lease_until: float = 0.0
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED


def _job(row: dict | None) -> Job | None:
    if row is None:
        return None
    return Job(
        id=row["id"],
        connection_id=row["connection_id"],
        org_id=row["org_id"],
        kind=row["kind"],
        status=row["status"],
        steps=json.loads(row["steps"] or "[]"),
        result=json.loads(row["result"]) if row["result"] else None,
        created_by=row["created_by"],
        created_at=row["created_at"],
        lease_until=row["lease_until"],
        finished_at=row["finished_at"],
    )


def _expire(where: str, params: list, now: float) -> None:
    """Mark unfinished jobs whose lease has passed interrupted (their process stopped)."""
    _execute(
        "UPDATE jobs SET status = 'interrupted', finished_at = ? "
        f"WHERE {where} AND status IN ('queued', 'running') AND lease_until < ?",
        [utcnow(), *params, now],
    )


def start_job(
    connection_id: str,
    org_id: int,
    kind: str,
    created_by: int | None,
    *,
    lease_seconds: float,
    now: float | None = None,
) -> tuple[Job, bool]:
    """The connection's unfinished job, or a new queued one: ``(job, created)``.

    One ``BEGIN IMMEDIATE`` transaction decides, so two clicks in two worker processes get
    the same job (the second waits for the first's lock, then finds its row)."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    now = time.time() if now is None else now
    with write_transaction():
        _expire("connection_id = ?", [connection_id], now)
        running = _row(
            "SELECT * FROM jobs WHERE connection_id = ? AND status IN ('queued', 'running')",
            [connection_id],
        )
        if running is not None:
            job = _job(running)
            assert job is not None
            return job, False
        job_id = secrets.token_urlsafe(16)
        _execute(
            "INSERT INTO jobs (id, connection_id, org_id, kind, status, created_by, created_at,"
            " lease_until) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            [job_id, connection_id, org_id, kind, created_by, utcnow(), now + lease_seconds],
        )
        created = _job(_row("SELECT * FROM jobs WHERE id = ?", [job_id]))
        assert created is not None
        return created, True


def read_job(job_id: str, now: float | None = None) -> Job | None:
    """A job by id (an interrupted one says so)."""
    _expire("id = ?", [job_id], time.time() if now is None else now)
    return _job(_row("SELECT * FROM jobs WHERE id = ?", [job_id]))


def latest_job(connection_id: str, kind: str | None = None, now: float | None = None) -> Job | None:
    """The connection's newest job (of ``kind``), or None."""
    _expire("connection_id = ?", [connection_id], time.time() if now is None else now)
    if kind is None:
        row = _row(
            "SELECT * FROM jobs WHERE connection_id = ? ORDER BY created_at DESC, rowid DESC "
            "LIMIT 1",
            [connection_id],
        )
    else:
        row = _row(
            "SELECT * FROM jobs WHERE connection_id = ? AND kind = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [connection_id, kind],
        )
    return _job(row)


def claim_job(job_id: str, lease_until: float) -> bool:
    """queued → running for the process that will run it; False when it is no longer queued."""
    cursor = _execute(
        "UPDATE jobs SET status = 'running', lease_until = ? WHERE id = ? AND status = 'queued'",
        [lease_until, job_id],
    )
    return cursor.rowcount == 1


def renew_job_lease(job_id: str, lease_until: float) -> bool:
    """The heartbeat of a running job; False once it is finished (or was taken as interrupted)."""
    cursor = _execute(
        "UPDATE jobs SET lease_until = ? WHERE id = ? AND status = 'running'",
        [lease_until, job_id],
    )
    return cursor.rowcount == 1


def add_job_step(job_id: str, name: str, status: str, ms: float) -> None:
    """Append one finished step to a running job (one statement: no lost update)."""
    step = json.dumps({"name": name, "status": status, "ms": round(ms)})
    _execute(
        "UPDATE jobs SET steps = json_insert(steps, '$[#]', json(?)) "
        "WHERE id = ? AND status = 'running'",
        [step, job_id],
    )


def finish_job(job_id: str, status: str, result: dict[str, Any]) -> bool:
    """Record a job's end (``done`` or ``failed``) and its result; False when it had already
    ended (a job past its deadline is not finished twice)."""
    if status not in ("done", "failed"):
        raise ValueError(f"a job finishes done or failed, not {status!r}")
    cursor = _execute(
        "UPDATE jobs SET status = ?, result = ?, finished_at = ? "
        "WHERE id = ? AND status IN ('queued', 'running')",
        [status, json.dumps(result), utcnow(), job_id],
    )
    return cursor.rowcount == 1


def job_counts(since: str) -> list[tuple[str, str, int]]:
    """(kind, status, count) of the background jobs created since ``since`` (ISO time) and of
    every unfinished one, one GROUP BY (the metrics read it at every scrape)."""
    rows = _rows(
        "SELECT kind, status, COUNT(*) AS n FROM jobs "
        "WHERE created_at >= :since OR status IN ('queued', 'running') GROUP BY kind, status",
        {"since": since},
    )
    return [(r["kind"], r["status"], r["n"]) for r in rows]
