"""What the progress region (``connection/_job.html``) shows of a job: its steps in words."""

from __future__ import annotations

from typing import Any

from portal import storage

#: Step names of portal.entra.verify and the upload check, in the customer's words.
LABELS = {
    "discovery": "Find your tenant in the chosen cloud",
    "token": "Get a token from Microsoft signed with our certificate",
    "exchange token": "Get an Exchange Online token",
    "organization": "Read your tenant's name",
    "service principal": "Find the application in your tenant",
    "app role assignments": "Read the permissions granted",
    "directory roles": "Read the roles assigned",
}
TITLES = {
    "check": "Checking with Microsoft",
    "uploaded": "Checking the certificate with Microsoft",
}
INTERRUPTED_MESSAGE = "Interrupted: we restarted before Microsoft answered; try again."
_GOOD = ("ok", "found")
_BAD = ("missing", "failed", "error", "not_found", "other_cloud", "malformed")


def _mark(status: str) -> str:
    """``ok``, ``bad`` or ``unknown``: how a step's outcome reads."""
    if status.startswith(_GOOD):
        return "ok"
    if status.startswith(_BAD):
        return "bad"
    return "unknown"


def job_view(job: storage.Job) -> dict[str, Any]:
    """The job as the template reads it."""
    steps = [
        {
            "label": LABELS.get(s["name"], s["name"]),
            "status": s["status"],
            "mark": _mark(str(s["status"])),
            "ms": s["ms"],
        }
        for s in job.steps
        if s["name"] != "total"
    ]
    total = next((s["ms"] for s in job.steps if s["name"] == "total"), None)
    result = job.result or {}
    message = INTERRUPTED_MESSAGE if job.status == "interrupted" else result.get("message")
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "finished": job.finished,
        "ok": bool(result.get("ok")),
        "transient": job.status == "interrupted" or bool(result.get("transient")),
        "title": TITLES.get(job.kind, "Checking with Microsoft"),
        "steps": steps,
        "total_ms": total,
        "message": message,
        "result": result,
        "finished_at": job.finished_at,
    }
