"""One job, from its claim to its result, inside ``app.app_context()`` (no request).

The supervisor thread holds the job's lease (a heartbeat every third of it), writes each step
the work reports (the work's own threads only put them on a queue: no database in them), and
ends the job at its deadline: the work is then abandoned, and its next progress report raises
:class:`JobAbandoned`, so a late answer from Microsoft records nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from flask import Flask

from portal import storage
from portal.connections import lifecycle
from portal.entra.report import Progress, Step
from portal.jobs import executor

log = logging.getLogger("portal.jobs")

#: A job's work: runs in an app context, reports its steps, returns run_check's dict.
Work = Callable[[Progress], dict[str, Any]]

DEADLINE_MESSAGE = (
    "Microsoft did not answer in time, so we stopped this check. Nothing changed: the last "
    "result below still stands. Try again in a minute; the next scheduled check also tries again."
)
FAILED_MESSAGE = "Something went wrong on our side during this check. Please try again."


class JobAbandoned(Exception):
    """Raised into a job's work when the job has ended without it (its deadline passed)."""


@dataclass(frozen=True)
class Settings:
    """How jobs run: work threads per process, the deadline and the lease (seconds)."""

    threads: int = 4
    deadline: float = 60.0
    lease: float = 15.0

    @classmethod
    def of(cls, app: Flask) -> Settings:
        config = app.config
        return cls(
            threads=int(config.get("JOB_THREADS", cls.threads)),
            deadline=float(config.get("JOB_DEADLINE_SECONDS", cls.deadline)),
            lease=float(config.get("JOB_LEASE_SECONDS", cls.lease)),
        )


def run(app: Flask, job_id: str, work: Work) -> None:
    """The supervisor: claim the job, run its work, record how it ended."""
    with app.app_context():
        settings = Settings.of(app)
        try:
            if not storage.claim_job(job_id, time.time() + settings.lease):
                return  # already ended (interrupted while queued)
            status, result = _supervise(app, job_id, work, settings)
        except Exception:
            log.exception("job %s failed", job_id)
            status, result = "failed", {"ok": False, "message": FAILED_MESSAGE}
        if storage.finish_job(job_id, status, result) and result.get("deadline"):
            _record_deadline(job_id, settings)


def _record_deadline(job_id: str, settings: Settings) -> None:
    """A check stopped at its deadline is a failed attempt, like one Microsoft interrupted:
    the health record says so (the state and the last report stand)."""
    job = storage.read_job(job_id)
    if job is None or job.kind != "check":
        return
    try:
        lifecycle.check_interrupted(
            job.connection_id,
            summary={"trigger": "job", "problem": "Microsoft did not answer in time"},
            actor=job.created_by,
            detail={"ok": False, "transient": True, "deadline_seconds": settings.deadline},
        )
    except (lifecycle.TransitionRefused, storage.ConnectionDeleted, KeyError):
        pass  # deleted meanwhile


def _supervise(
    app: Flask, job_id: str, work: Work, settings: Settings
) -> tuple[str, dict[str, Any]]:
    events: queue.SimpleQueue[Step | None] = queue.SimpleQueue()
    abandoned = threading.Event()

    def progress(step: Step) -> None:
        if abandoned.is_set():
            raise JobAbandoned(job_id)
        events.put(step)

    future = executor.work(settings.threads, _in_context, app, work, progress)
    future.add_done_callback(lambda _: events.put(None))  # after every step it reported
    deadline = time.monotonic() + settings.deadline
    beat = settings.lease / 3
    next_beat = time.monotonic() + beat
    while True:
        now = time.monotonic()
        if now >= deadline:
            abandoned.set()
            log.warning("job %s passed its deadline of %.0f s", job_id, settings.deadline)
            return "failed", {
                "ok": False,
                "transient": True,
                "deadline": True,
                "message": DEADLINE_MESSAGE,
            }
        if now >= next_beat:
            storage.renew_job_lease(job_id, time.time() + settings.lease)
            next_beat = now + beat
        try:
            event = events.get(timeout=max(0.0, min(next_beat, deadline) - now))
        except queue.Empty:
            continue
        if event is None:
            return _outcome(future)
        storage.add_job_step(job_id, event.name, event.outcome, event.ms)


def _in_context(app: Flask, work: Work, progress: Progress) -> dict[str, Any]:
    with app.app_context():
        return work(progress)


def _outcome(future: Future) -> tuple[str, dict[str, Any]]:
    """``done`` when the check ran to its end (whatever it found), else ``failed``."""
    result = future.result()  # an exception of the work is the supervisor's to log
    return ("failed" if "message" in result else "done"), result
