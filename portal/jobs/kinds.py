"""What each kind of job does, as the runner's ``Work`` (an app context, no request)."""

from __future__ import annotations

from portal import storage
from portal.connections.verification import run_check
from portal.entra.report import Progress
from portal.jobs.runner import Work
from portal.jobs.upload_check import verify_upload


def check(connection_id: str, trigger: str, actor: int | None) -> Work:
    """Link Account / Check again: the customer-owned connection's whole check, recorded."""

    def work(progress: Progress) -> dict:
        item = storage.get_connection_or_raise(connection_id)
        return run_check(item, trigger=trigger, actor=actor, progress=progress)

    return work


def uploaded(connection_id: str) -> Work:
    """ "I have uploaded the certificate": Microsoft accepts it (a token), nothing recorded."""

    def work(progress: Progress) -> dict:
        return verify_upload(connection_id, progress)

    return work
