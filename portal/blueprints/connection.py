"""A customer's connections and one connection's page: lifecycle, latest checklist, health
history, "check again" (the same verification as Link Account, run as a background job) and
deletion.

Live regions: ``connection/_list.html`` (the list), ``connection/_status.html`` (everything on the
page that a check changes), ``connection/_checklist.html`` (the checklist, also in the
wizard's last step) and ``connection/_job.html`` (a running job's progress, which polls itself).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from portal import htmx, jobs, regions, storage
from portal.access import (
    admin_required,
    fresh_auth_required,
    load_connection_or_404,
    login_required,
)
from portal.connections import deletion, setup_steps, verification
from portal.jobs.view import job_view
from portal.security import embeddable
from portal.services import find_cloud

bp = Blueprint("connection", __name__, url_prefix="/connections")
log = logging.getLogger("portal.connection")

LIST = "connection/_list.html"
STATUS = "connection/_status.html"
CHECKLIST = "connection/_checklist.html"
JOB = "connection/_job.html"

#: Re-checks after consent (replication): a new check job POLL_DELAY seconds after the last one
#: ended, at most MAX_POLLS times.
MAX_POLLS = 10
POLL_DELAY = 3
#: Polling only follows a consent this recent (seconds).
CONSENT_WINDOW = 300

LIFECYCLE = (
    ("draft", "Draft", "You have started the setup; nothing has been sent to Microsoft yet."),
    (
        "waiting",
        "Waiting for setup",
        "Our certificate exists; your application's setup in Microsoft Entra ID is in progress.",
    ),
    ("connected", "Connected", "We proved that every permission and role is in place."),
    (
        "needs_attention",
        "Needs attention",
        "The last check found something missing or broken; each item below says how to fix it.",
    ),
    (
        "needs_reconnect",
        "Needs reconnect",
        "We can no longer use the stored credentials: create a new certificate and link again.",
    ),
    (
        "deleted",
        "Deleted",
        "An administrator deleted the connection: its stored credentials are destroyed at once.",
    ),
)


#: The same states as a service-provider connection lives them (a delegated sign-in renewed by
#: the keep-alive; Microsoft ends an unused one after 90 days, entra.md §9).
SP_LIFECYCLE = (
    ("draft", "Draft", "You have started the connection; nobody has signed in with Microsoft yet."),
    ("waiting", "Waiting for sign-in", "A Link Account sign-in with Microsoft is under way."),
    (
        "connected",
        "Connected",
        "An administrator consented; we renew the sign-in every day and check each time that "
        "every permission is still granted.",
    ),
    (
        "needs_attention",
        "Needs attention",
        "The last check found a permission missing: run Link Account to grant it again.",
    ),
    (
        "needs_reconnect",
        "Needs reconnect",
        "Microsoft no longer accepts the stored sign-in (revoked, or unused for 90 days): run "
        "Link Account again.",
    ),
    (
        "deleted",
        "Deleted",
        "An administrator deleted the connection: the stored Microsoft sign-in is destroyed at "
        "once.",
    ),
)


def lifecycle_for(item: storage.Connection) -> tuple[tuple[str, str, str], ...]:
    """The lifecycle text of the connection's kind."""
    return SP_LIFECYCLE if item.kind == "service_provider" else LIFECYCLE


@bp.get("/")
@login_required
@embeddable
def index():
    """The list of connections (the page, or its region for htmx)."""
    if current_user.is_support:
        items = storage.list_all_connections()
        # Every organization's connections: a support read, audited like the dashboard.
        storage.record_audit("support.view_connections", actor=current_user.id)
    else:
        items = storage.list_connections(current_user.org_id)
    return regions.page_or_region("connection/list.html", LIST, connections=items)


@bp.get("/<connection_id>")
@login_required
@embeddable
def page(connection_id: str):
    """One connection: lifecycle, latest checklist and recent events (its status region); a
    deleted one says so, with what is left to remove at Microsoft. That page is where a
    deletion ends, so it answers 200: an error status would make every deletion look like a
    failure in logs, monitoring and the browser console."""
    item = load_connection_or_404(connection_id, deleted_ok=True)
    if item.deleted:
        if htmx.is_htmx():  # a fragment of a page that no longer exists: load the whole one
            return htmx.hx_redirect(url_for(".page", connection_id=item.id))
        return render_template("connection/deleted.html", **deleted_context(item))
    return regions.page_or_region("connection/page.html", STATUS, **page_context(item))


@bp.post("/<connection_id>/delete")
@admin_required
@fresh_auth_required
def delete(connection_id: str):
    """Delete the connection: its secrets are destroyed, its history kept; then the page that
    says what to remove at Microsoft."""
    item = load_connection_or_404(connection_id, write=True)
    deletion.delete_connection(item, actor=current_user.id)
    flash(f"“{item.label}” was deleted. We no longer hold any credential for it.", "success")
    target = url_for(".page", connection_id=item.id)
    return htmx.hx_redirect(target) if htmx.is_htmx() else redirect(target, 303)


def deleted_context(item: storage.Connection) -> dict:
    audit = storage.deletion_audit(item.id)
    actor = storage.get_user(audit.actor_user_id) if audit and audit.actor_user_id else None
    config = current_app.config
    sp_client_id = config.get("SP_CLIENT_ID")
    return {
        "connection": item,
        "organization": storage.get_organization(item.org_id),
        "deleted_by": actor.email if actor else None,
        "destroyed": audit.detail.get("destroyed", {}) if audit else {},
        "cleanup": deletion.microsoft_cleanup(item, sp_client_id, config.get("SP_CLOUDS")),
        "sp_client_id": sp_client_id,
        "readonly": current_user.is_support,
    }


def page_context(
    item: storage.Connection, attempt: int = 0, job: storage.Job | None = None
) -> dict:
    certificate = storage.active_certificate(item.id)
    return {
        "connection": item,
        "events": storage.list_health_events(item.id, limit=10),
        "organization": storage.get_organization(item.org_id),
        "lifecycle": lifecycle_for(item),
        "continue_step": setup_steps.current_name(item),
        "certificate": certificate,
        "certificate_days_left": verification.days_left(certificate.not_after)
        if certificate
        else None,
        "expiry_warning_days": verification.EXPIRY_WARNING_DAYS,
        "pending_certificate": storage.pending_certificate(item.id),
        "readonly": current_user.is_support,
        **checklist_context(item, item.last_check, where="page", attempt=attempt, job=job),
    }


@bp.post("/<connection_id>/check")
@login_required
def check(connection_id: str):
    """Link Account / Check again: start the check with Microsoft as a background job (or join
    the one running) and answer at once with its progress; the progress region polls the job.
    Each check attempt is one job and one history entry; polls only read it."""
    item = load_connection_or_404(connection_id, write=True)
    attempt = _attempt(request.form.get("attempt", "0"))
    where = "wizard" if request.form.get("where") == "wizard" else "page"
    job, _created = jobs.start_check(item, current_user.id, trigger="poll" if attempt else "check")
    if htmx.wants_fragment():
        return _check_region(item, where, attempt, job)
    if where == "wizard":
        return redirect(url_for("wizard.page", connection_id=item.id, _anchor="step-link"))
    return redirect(url_for(".page", connection_id=item.id))


@bp.get("/<connection_id>/jobs/<job_id>")
@login_required
def job(connection_id: str, job_id: str):
    """A job's progress region while it runs; once finished, the region around it (the
    checklist, the connection's status or the certificate step) with the result, in its
    place. Another organization's connection, or a job of another connection: 404."""
    item = load_connection_or_404(connection_id)
    found = storage.read_job(job_id[:64])
    if found is None or found.connection_id != item.id:
        abort(404)
    where = "wizard" if request.args.get("where") == "wizard" else "page"
    attempt = _attempt(request.args.get("attempt", "0"))
    if not htmx.wants_fragment():
        return redirect(url_for(".page", connection_id=item.id))
    if not found.finished:
        return regions.render(JOB, job=job_view(found), job_url=job_url(found, where, attempt))
    if found.kind == "uploaded":
        # The wizard imports this blueprint; importing it here at load time would be circular.
        from portal.blueprints.wizard import upload_finished

        return upload_finished(item.id)
    item = storage.get_connection_or_raise(item.id)
    target = "#connection-status" if where == "page" else "#checklist"
    return htmx.retarget(_check_region(item, where, attempt, found), target)


def _attempt(raw: str) -> int:
    try:
        return max(0, min(int(raw), MAX_POLLS))
    except ValueError:
        return 0


def job_url(found: storage.Job, where: str, attempt: int = 0) -> str:
    """Where a job's progress region polls."""
    args = {"where": where, "attempt": attempt} if attempt else {"where": where}
    return url_for("connection.job", connection_id=found.connection_id, job_id=found.id, **args)


def _check_region(item: storage.Connection, where: str, attempt: int, found: storage.Job):
    if where == "page":
        return regions.render(STATUS, **page_context(item, attempt, found))
    return regions.render(
        CHECKLIST,
        connection=item,
        readonly=False,
        **checklist_context(item, item.last_check, where, attempt, found),
    )


def _recent(iso: str | None, seconds: float) -> bool:
    if not iso:
        return False
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return False
    return (datetime.now(UTC) - when).total_seconds() <= seconds


def checklist_context(
    item: storage.Connection,
    report: dict | None,
    where: str,
    attempt: int = 0,
    job: storage.Job | None = None,
) -> dict:
    """What ``connection/_checklist.html`` needs: items, problem, the check job (running, or
    the last one's message when it is newer than the last report) and whether to re-check."""
    job = job or storage.latest_job(item.id, "check")
    shown = job_view(job) if job else None
    message = None
    if shown and shown["finished"] and (shown["finished_at"] or "") >= (item.last_checked_at or ""):
        message = shown["message"]
    running = bool(shown and not shown["finished"])
    cloud = find_cloud(item.cloud)
    problem = None
    if report and report.get("problem") and not report.get("ok"):
        raw = report["problem"]
        url = cloud.link(raw.get("link"), item.client_id) if cloud and raw.get("link") else None
        problem = {
            "title": raw.get("title"),
            "message": raw.get("message"),
            "fix": raw.get("fix"),
            "url": url,
        }
    items = (report or {}).get("checklist") or []
    pending = (
        report is not None
        and bool(report)
        and not report.get("ok")
        and (
            (report.get("pending_replication") and _recent(item.consented_at, CONSENT_WINDOW))
            or any(i.get("note") for i in items)
        )
    )
    may_poll = (
        pending and not running and item.state != "needs_reconnect" and not current_user.is_support
    )
    return {
        "check": report,
        "check_items": items,
        "check_problem": problem,
        "check_cloud": cloud,
        "check_where": where,
        "check_target": "#connection-status" if where == "page" else "#checklist",
        "check_poll": may_poll and attempt < MAX_POLLS,
        "check_exhausted": may_poll and attempt >= MAX_POLLS,
        "check_attempt": attempt,
        "check_next_attempt": attempt + 1,
        "check_message": message,
        "check_job": shown,
        "check_job_url": job_url(job, where, attempt) if job else None,
        # A whole page (not a fragment): a running job's region may reload it without JS.
        "page_reload": not htmx.wants_fragment(),
        "max_polls": MAX_POLLS,
        "poll_delay": POLL_DELAY,
    }
