"""Runs of the cron jobs (``job_runs``): started, progress, finished, with the run's counts.

The health sweep and the keep-alive run as processes of their own; this table is how the web
workers (``/metrics``) learn how their last run went. Times are epoch seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from portal.storage.sql import _execute, _one, _rows

#: Runs kept per job; older ones are pruned when a new run starts (hourly cron: four days).
KEEP_RUNS = 100


@dataclass(frozen=True)
class JobRun:
    id: int
    job: str
    started_at: float
    finished_at: float | None
    processed: int
    total: int | None
    outcome: str | None  # None while running, then 'ok' or 'failed'
    summary: dict = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True)
class JobStatus:
    """What the metrics show of one job: its latest run, and when a run last finished and last
    succeeded (either may be an earlier run than the latest)."""

    latest: JobRun
    last_finished_at: float | None
    last_success_at: float | None


def _run(row: dict) -> JobRun:
    return JobRun(
        id=row["id"],
        job=row["job"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        processed=row["processed"],
        total=row["total"],
        outcome=row["outcome"],
        summary=json.loads(row["summary"] or "{}"),
    )


def start_job_run(job: str, total: int | None = None, now: float | None = None) -> int:
    """Record that a run of ``job`` started; returns its id. Prunes the job's oldest runs."""
    cursor = _execute(
        "INSERT INTO job_runs (job, started_at, total) VALUES (?, ?, ?)",
        [job, time.time() if now is None else now, total],
    )
    run_id = int(cursor.lastrowid or 0)
    _execute(
        "DELETE FROM job_runs WHERE job = ? AND id NOT IN "
        "(SELECT id FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT ?)",
        [job, job, KEEP_RUNS],
    )
    return run_id


def record_job_progress(run_id: int, processed: int, total: int | None = None) -> None:
    """How far a running run has got (``total`` kept unless given)."""
    _execute(
        "UPDATE job_runs SET processed = ?, total = COALESCE(?, total) "
        "WHERE id = ? AND finished_at IS NULL",
        [processed, total, run_id],
    )


def finish_job_run(
    run_id: int,
    *,
    ok: bool,
    processed: int | None = None,
    total: int | None = None,
    summary: dict | None = None,
    now: float | None = None,
) -> JobRun:
    """Record the end of a run: its outcome, final counts and summary (counts only, no ids)."""
    _execute(
        "UPDATE job_runs SET finished_at = ?, outcome = ?, processed = COALESCE(?, processed), "
        "total = COALESCE(?, total), summary = ? WHERE id = ?",
        [
            time.time() if now is None else now,
            "ok" if ok else "failed",
            processed,
            total,
            json.dumps(summary or {}, sort_keys=True),
            run_id,
        ],
    )
    return _run(_one("SELECT * FROM job_runs WHERE id = ?", [run_id]))


def list_job_runs(job: str, limit: int = 20) -> list[JobRun]:
    """A job's runs, newest first."""
    rows = _rows("SELECT * FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT ?", [job, limit])
    return [_run(row) for row in rows]


def job_statuses() -> list[JobStatus]:
    """Every job's latest run with its last finish and last success, in one query."""
    rows = _rows(
        """
        SELECT r.*,
            (SELECT MAX(finished_at) FROM job_runs f WHERE f.job = r.job) AS last_finished_at,
            (SELECT MAX(finished_at) FROM job_runs s WHERE s.job = r.job AND s.outcome = 'ok')
                AS last_success_at
        FROM job_runs r
        WHERE r.id IN (SELECT MAX(id) FROM job_runs GROUP BY job)
        ORDER BY r.job
        """
    )
    return [JobStatus(_run(row), row["last_finished_at"], row["last_success_at"]) for row in rows]
