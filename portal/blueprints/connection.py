"""A customer's connections and one connection's page: lifecycle, latest checklist, health
history, "check again" (the same verification as Link Account) and deletion.

Live regions: ``connection/_list.html`` (the list), ``connection/_status.html`` (everything on the
page that a check changes) and ``connection/_checklist.html`` (the checklist, also in the
wizard's last step)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from portal import htmx, regions, storage
from portal.access import (
    admin_required,
    fresh_auth_required,
    load_connection_or_404,
    login_required,
)
from portal.connections import deletion, setup_steps, verification
from portal.connections.verification import run_check
from portal.security import embeddable
from portal.services import find_cloud

bp = Blueprint("connection", __name__, url_prefix="/connections")
log = logging.getLogger("portal.connection")

LIST = "connection/_list.html"
STATUS = "connection/_status.html"
CHECKLIST = "connection/_checklist.html"

#: Re-checks after consent (replication): every POLL_DELAY seconds, at most MAX_POLLS times.
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


def page_context(item: storage.Connection, attempt: int = 0, message: str | None = None) -> dict:
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
        **checklist_context(item, item.last_check, where="page", attempt=attempt, message=message),
    }


@bp.post("/<connection_id>/check")
@login_required
def check(connection_id: str):
    """Link Account / Check again: verify with Microsoft now and show the checklist."""
    item = load_connection_or_404(connection_id, write=True)
    try:
        attempt = max(0, min(int(request.form.get("attempt", "0")), MAX_POLLS))
    except ValueError:
        attempt = 0
    where = "wizard" if request.form.get("where") == "wizard" else "page"
    outcome = run_check(item, trigger="poll" if attempt else "check", actor=current_user.id)
    item = storage.get_connection_or_raise(item.id)
    message = outcome.get("message")
    if htmx.wants_fragment():
        if where == "page":
            return regions.render(STATUS, **page_context(item, attempt, message))
        return regions.render(
            CHECKLIST,
            connection=item,
            readonly=False,
            **checklist_context(item, item.last_check, where, attempt, message),
        )
    if message:
        flash(message, "error")
    if where == "wizard":
        return redirect(url_for("wizard.page", connection_id=item.id, _anchor="step-link"))
    return redirect(url_for(".page", connection_id=item.id))


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
    message: str | None = None,
) -> dict:
    """What ``connection/_checklist.html`` needs: items, problem, and whether to poll."""
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
    may_poll = pending and item.state != "needs_reconnect" and not current_user.is_support
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
        "max_polls": MAX_POLLS,
        "poll_delay": POLL_DELAY,
    }
