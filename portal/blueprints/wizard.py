"""New connections and the customer-owned application's setup wizard (one page, six steps).

Each step is a region of ``wizard/page.html`` (``wizard/_<step>.html``): htmx posts get that
region back, plus the regions that depend on it out of band; without JavaScript every form
posts, the server saves and redirects back to the page anchored at the step
(post/redirect/get). Every input is saved in the connection's draft as it arrives, so a reload
or a server restart loses nothing. The rules live in :mod:`portal.connections`: the steps in
``setup_steps``, live tenant validation in ``tenant_lookup``, certificates in ``certificates``.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
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
from portal.blueprints.connection import checklist_context, job_url
from portal.connections import certificates, lifecycle, setup_steps, tenant_lookup
from portal.connections.tenant_lookup import MAX_INPUT
from portal.entra import permissions
from portal.jobs.view import job_view
from portal.security import embeddable
from portal.services import cloud_table, find_cloud

bp = Blueprint("wizard", __name__, url_prefix="/connections")

#: Each step's region, by step name.
REGIONS = {name: f"wizard/_{name}.html" for name in setup_steps.NAMES}
PROGRESS = "wizard/_progress.html"
IDS_STATUS = "wizard/_ids_status.html"


@bp.get("/new")
@admin_required
@embeddable
def start():
    """Service provider application or customer owned application, each explained."""
    return render_template("wizard/new.html")


@bp.post("/new")
@admin_required
def create():
    """Create the connection (state ``draft``) and go to its next step."""
    kind = request.form.get("kind", "")
    if kind not in storage.KINDS:
        flash("Choose how you want to connect.", "error")
        return redirect(url_for(".start"))
    name = (request.form.get("display_name") or "").strip()[:100] or None
    connection = storage.create_connection(current_user.org_id, kind, name)
    storage.audit_connection(
        "connection.create",
        connection,
        actor=current_user.id,
        detail={"kind": kind},
    )
    if kind == "customer_owned":
        target = url_for(".page", connection_id=connection.id)
    else:
        target = url_for("connection.page", connection_id=connection.id)
    return htmx.hx_redirect(target) if htmx.is_htmx() else redirect(target)


@bp.get("/<connection_id>/setup")
@login_required
@embeddable
def page(connection_id: str):
    """The whole wizard (or, for htmx, one step's region named by ``?section=``)."""
    connection = load_connection_or_404(connection_id)
    if current_user.is_support or connection.kind != "customer_owned":
        return redirect(url_for("connection.page", connection_id=connection.id))
    context = wizard_context(connection)
    section = request.args.get("section")
    if htmx.wants_fragment() and section in REGIONS:
        return regions.render(REGIONS[section], **context)
    return htmx.add_vary(make_response(render_template("wizard/page.html", **context)))


def wizard_context(connection: storage.Connection, **extra) -> dict:
    """Everything the wizard's regions read (no network: discovery results come from the draft)."""
    draft = connection.draft
    public_url = current_app.config["PUBLIC_URL"].rstrip("/")
    context = {
        "connection": connection,
        "draft": draft,
        "steps": setup_steps.STEPS,
        "step": setup_steps.current(connection),
        "clouds": cloud_table().all(),
        "cloud": find_cloud(connection.cloud),
        "client_id": connection.client_id,
        "certificate": storage.active_certificate(connection.id),
        "lookup": draft.get("lookup") if tenant_lookup.is_current(connection) else None,
        "client_message": tenant_lookup.client_message(draft.get("client_id")),
        "app_permissions": permissions.APP_PERMISSIONS,
        "user_admin": permissions.USER_ADMINISTRATOR,
        "exchange_permission": permissions.EXCHANGE_PERMISSION,
        "exchange_admin": permissions.EXCHANGE_ADMINISTRATOR,
        "consent_redirect_uri": public_url + url_for("consent.finish"),
        "readonly": current_user.is_support,
    }
    context.update(checklist_context(connection, connection.last_check, where="wizard"))
    upload = storage.latest_job(connection.id, "uploaded")
    context["upload_job"] = job_view(upload) if upload else None
    context["upload_job_url"] = job_url(upload, "wizard") if upload else None
    context.update(extra)
    return context


def respond(connection_id: str, step: str, *, ids_status: bool = False):
    """After a wizard POST: the changed step's region and the regions after it, out of band
    (htmx), or post/redirect/get. ``ids_status``: only the tenant lookup's answer of step 2."""
    connection = storage.get_connection_or_raise(connection_id)
    if not htmx.wants_fragment():
        return redirect(url_for("wizard.page", connection_id=connection_id, _anchor=f"step-{step}"))
    later = setup_steps.NAMES[setup_steps.NAMES.index(step) + 1 :]
    main = IDS_STATUS if ids_status else REGIONS[step]
    context = wizard_context(connection, clear_format=ids_status)
    return regions.render(main, oob=[PROGRESS, *(REGIONS[name] for name in later)], **context)


def load_customer_owned(connection_id: str) -> storage.Connection:
    """The connection a wizard step may change. These steps set a customer-owned application's
    cloud, tenant, client, certificate and state; on a service-provider connection they would
    corrupt it, so such a connection is not found here, exactly like another organization's."""
    connection = load_connection_or_404(connection_id, write=True)
    if connection.kind != "customer_owned":
        abort(404)
    return connection


def _set_if_changed(connection: storage.Connection, **fields) -> storage.Connection:
    """Update columns that changed; a proven connection whose identity changed waits again."""
    return lifecycle.identity_changed(connection.id, fields, actor=current_user.id)


def _reached(connection: storage.Connection, step: int) -> None:
    storage.save_draft(connection.id, {}, wizard_step=setup_steps.advance(connection, step))


@bp.post("/<connection_id>/setup/cloud")
@login_required
def save_cloud(connection_id: str):
    """Save the cloud; a tenant already typed is looked up again in the new cloud."""
    connection = load_customer_owned(connection_id)
    cloud = find_cloud(request.form.get("cloud", "")[:64])
    if cloud is None:
        storage.save_draft(connection.id, {"cloud_error": "Choose one of the clouds listed."})
        return respond(connection.id, "cloud")
    storage.save_draft(
        connection.id,
        {"cloud": cloud.key, "cloud_error": None},
        wizard_step=setup_steps.advance(connection, 2),
    )
    connection = _set_if_changed(connection, cloud=cloud.key)
    if connection.draft.get("tenant_input"):
        tenant_lookup.look_up(connection, actor=current_user.id)
    return respond(connection.id, "cloud")


@bp.get("/validate/tenant")
@login_required
def validate_tenant():
    """Live format check while typing: no database write, no network."""
    level, message = tenant_lookup.tenant_message(request.args.get("tenant_input", "")[:MAX_INPUT])
    return _format("tenant", level, message)


@bp.get("/validate/client")
@login_required
def validate_client():
    """Live format check of the Application (client) ID: no database write, no network."""
    answer = tenant_lookup.client_message(request.args.get("client_id", "")[:MAX_INPUT])
    level, message = answer if answer else (None, "")
    return _format("client", level, message)


def _format(field: str, level: str | None, message: str):
    # Lean: this region answers every keystroke and reads nothing of the session.
    return regions.render(
        "wizard/_format.html", lean=True, field=field, level=level, message=message
    )


@bp.post("/<connection_id>/setup/ids")
@login_required
def save_ids(connection_id: str):
    """Save the tenant and client ID as typed, then look the tenant up in the chosen cloud."""
    connection = load_customer_owned(connection_id)
    tenant_text = request.form.get("tenant_input", connection.draft.get("tenant_input", ""))
    client_text = request.form.get("client_id", connection.draft.get("client_id", ""))
    tenant_text, client_text = tenant_text.strip()[:MAX_INPUT], client_text.strip()[:MAX_INPUT]
    connection = storage.save_draft(
        connection.id, {"tenant_input": tenant_text, "client_id": client_text}
    )
    connection = _set_if_changed(
        connection,
        client_id=tenant_lookup.client_guid(client_text),
        tenant_input=tenant_text or None,
    )
    lookup = tenant_lookup.look_up(connection, actor=current_user.id) if tenant_text else None
    if not tenant_text:
        _set_if_changed(connection, tenant_id=None)
    connection = storage.get_connection_or_raise(connection.id)
    if lookup and lookup["outcome"] == "found" and connection.client_id:
        _reached(connection, 3)
    return respond(connection.id, "ids", ids_status=True)


@bp.post("/<connection_id>/setup/registered")
@login_required
@fresh_auth_required
def registered(connection_id: str):
    """ "I have registered the application": go on to the certificate, creating it now."""
    connection = load_customer_owned(connection_id)
    _reached(connection, 4)
    if storage.active_certificate(connection.id) is None:
        certificates.issue(connection, actor=current_user.id)
    return respond(connection.id, "certificate")


@bp.post("/<connection_id>/setup/uploaded")
@login_required
def uploaded(connection_id: str):
    """ "I have uploaded the certificate": check with Microsoft that it accepts the certificate
    (a background job; step 4 shows its progress, then the outcome, and step 5 opens)."""
    connection = load_customer_owned(connection_id)
    jobs.start_upload_check(connection, current_user.id)
    return respond(connection.id, "certificate")


def upload_finished(connection_id: str):
    """The upload check's last poll: step 4 with the outcome (and the steps after it), in
    place of the progress region."""
    response = respond(connection_id, "certificate")
    return htmx.retarget(response, "#step-certificate") if htmx.wants_fragment() else response


@bp.post("/<connection_id>/setup/exchange")
@login_required
def save_exchange(connection_id: str):
    """The Exchange Online toggle (adds Exchange.ManageAsApp and Exchange Administrator)."""
    connection = load_customer_owned(connection_id)
    enabled = request.form.get("exchange") == "1"
    storage.save_draft(
        connection.id, {"exchange": enabled}, wizard_step=setup_steps.advance(connection, 5)
    )
    _set_if_changed(connection, exchange_enabled=enabled)
    return respond(connection.id, "permissions")
