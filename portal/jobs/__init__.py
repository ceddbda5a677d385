"""Background jobs in the web process: checks with Microsoft that no request waits for.

A view starts a job (:func:`start_check`, :func:`start_upload_check`) and answers at once with
its progress region; the page polls the job's row (``storage.read_job``) until it is finished.
The row holds everything (steps, result, lease), so a reload, another worker process or a
restart reads the same job. ``executor`` holds the thread pools, ``runner`` one job's run,
``kinds`` what each kind does, ``view`` what the templates show.
"""

from __future__ import annotations

from flask import current_app

from portal import storage
from portal.jobs import executor, kinds, runner
from portal.jobs.runner import Settings, Work


def _start(connection: storage.Connection, kind: str, actor: int | None, work: Work):
    """The connection's unfinished job (joined), or a new one submitted to this process."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = Settings.of(app)
    job, created = storage.start_job(
        connection.id, connection.org_id, kind, actor, lease_seconds=settings.lease
    )
    if created:
        executor.supervise(runner.run, app, job.id, work)
    return job, created


def start_check(connection: storage.Connection, actor: int | None, trigger: str = "check"):
    """Start (or join) Link Account / Check again of a customer-owned connection."""
    return _start(connection, "check", actor, kinds.check(connection.id, trigger, actor))


def start_upload_check(connection: storage.Connection, actor: int | None):
    """Start (or join) the certificate upload check of wizard step 4."""
    return _start(connection, "uploaded", actor, kinds.uploaded(connection.id))
