"""New connections and the customer-owned application wizard (one page, six sections).

Each section of ``pages/wizard.html`` is a Jinja block: htmx posts get that block back (plus the
sections that depend on it, out of band); without JavaScript every form posts, the server saves
and redirects back to the page anchored at the section (post/redirect/get). Every input is saved
in the connection's draft as it arrives, so a reload or a server restart loses nothing.
"""

from __future__ import annotations

import logging
import re
import secrets

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
from jinja2_fragments.flask import render_blocks

from portal import htmx, storage
from portal.access import (
    admin_required,
    fresh_auth_required,
    load_connection_or_404,
    login_required,
)
from portal.blueprints.status import MAX_POLLS, checklist_context
from portal.connections import lifecycle
from portal.connections.verification import record_report, run_check, verify_with
from portal.entra import permissions
from portal.entra.certificates import (
    MAX_VALIDITY_DAYS,
    ExportFormat,
    export_certificate,
    issue_certificate,
)
from portal.entra.errors import classify_redirect_error
from portal.entra.tenant import TenantInputError, discover_tenant, parse_tenant_input
from portal.security import embeddable, framed_navigation
from portal.services import caches, cloud_table, find_cloud
from portal.storage import vault

bp = Blueprint("onboarding", __name__, url_prefix="/connections")
log = logging.getLogger("portal.onboarding")

#: The wizard's sections, in order: (block name, title).
STEPS = (
    ("cloud", "National cloud"),
    ("ids", "Tenant ID and client ID"),
    ("register", "Register the application"),
    ("certificate", "Certificate"),
    ("permissions", "Permissions"),
    ("link", "Link Account"),
)
SECTION_NAMES = tuple(name for name, _ in STEPS)
CONSENT_COOKIE = "portal_consent"
CONSENT_TTL = 600
CERT_FORMATS: tuple[ExportFormat, ...] = ("cer", "pem", "crt")
MAX_INPUT = 300


# --- Choosing the kind of connection ---------------------------------------------------------


@bp.get("/new")
@admin_required
@embeddable
def start():
    """Service provider application or customer owned application, each explained."""
    return render_template("pages/new_connection.html")


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
    storage.record_audit(
        "connection.create",
        actor=current_user.id,
        org_id=connection.org_id,
        connection_id=connection.id,
        detail={"kind": kind},
    )
    if kind == "customer_owned":
        target = url_for(".wizard", connection_id=connection.id)
    else:
        target = url_for("status.connection", connection_id=connection.id)
    return htmx.hx_redirect(target) if htmx.is_htmx() else redirect(target)


# --- The wizard page -------------------------------------------------------------------------


@bp.get("/<connection_id>/setup")
@login_required
@embeddable
def wizard(connection_id: str):
    """The whole wizard (or, for htmx, one section named by ``?section=``)."""
    connection = load_connection_or_404(connection_id)
    if current_user.is_support or connection.kind != "customer_owned":
        return redirect(url_for("status.connection", connection_id=connection.id))
    context = wizard_context(connection)
    section = request.args.get("section")
    if htmx.wants_fragment() and section in SECTION_NAMES:
        return htmx.add_vary(
            make_response(render_blocks("pages/wizard.html", [section], **context))
        )
    return htmx.add_vary(make_response(render_template("pages/wizard.html", **context)))


def wizard_context(connection: storage.Connection, oob=(), **extra) -> dict:
    """Everything the wizard's sections read (no network: discovery results come from the draft)."""
    table = cloud_table()
    cloud = find_cloud(connection.cloud)
    draft = connection.draft
    client_id = connection.client_id
    public_url = current_app.config["PUBLIC_URL"].rstrip("/")
    report = connection.last_check
    context = {
        "connection": connection,
        "draft": draft,
        "steps": STEPS,
        "step": max(1, min(connection.wizard_step or 1, len(STEPS))),
        "clouds": table.all(),
        "cloud": cloud,
        "client_id": client_id,
        "certificate": storage.active_certificate(connection.id),
        "lookup": draft.get("lookup") if _lookup_current(connection) else None,
        "client_message": _client_message(draft.get("client_id")),
        "app_permissions": permissions.APP_PERMISSIONS,
        "user_admin": permissions.USER_ADMINISTRATOR,
        "exchange_permission": permissions.EXCHANGE_PERMISSION,
        "exchange_admin": permissions.EXCHANGE_ADMINISTRATOR,
        "consent_redirect_uri": public_url + url_for(".admin_consent_return"),
        "oob": set(oob),
        "readonly": current_user.is_support,
    }
    context.update(checklist_context(connection, report, where="wizard"))
    context.update(extra)
    return context


def _lookup_current(connection: storage.Connection) -> bool:
    """The stored lookup belongs to the current cloud and tenant input (else it is stale)."""
    lookup = connection.draft.get("lookup")
    return (
        isinstance(lookup, dict)
        and lookup.get("cloud") == connection.cloud
        and lookup.get("input") == connection.draft.get("tenant_input")
    )


def _respond(connection_id: str, main: str):
    """After a wizard POST: the changed section and those after it (htmx), or PRG."""
    connection = storage.get_connection_or_raise(connection_id)
    anchor = "step-ids" if main == "ids_status" else f"step-{main}"
    if not htmx.wants_fragment():
        return redirect(url_for(".wizard", connection_id=connection_id, _anchor=anchor))
    first = SECTION_NAMES.index("ids" if main == "ids_status" else main) + 1
    oob = ["progress", *SECTION_NAMES[first:]]
    context = wizard_context(connection, oob=oob, clear_format=main == "ids_status")
    body = render_blocks("pages/wizard.html", [main, *oob], **context)
    return htmx.add_vary(make_response(body))


def _advance(connection: storage.Connection, step: int) -> int:
    return max(connection.wizard_step or 1, step)


def _load_customer_owned(connection_id: str) -> storage.Connection:
    """The connection a wizard step may change. These steps set a customer-owned application's
    cloud, tenant, client, certificate and state; on a service-provider connection they would
    corrupt it, so such a connection is not found here, exactly like another organization's."""
    connection = load_connection_or_404(connection_id, write=True)
    if connection.kind != "customer_owned":
        abort(404)
    return connection


# --- Step 1: cloud ---------------------------------------------------------------------------


@bp.post("/<connection_id>/setup/cloud")
@login_required
def save_cloud(connection_id: str):
    """Save the cloud; a tenant already typed is looked up again in the new cloud."""
    connection = _load_customer_owned(connection_id)
    key = request.form.get("cloud", "")
    cloud = find_cloud(key[:64])
    if cloud is None:
        storage.save_draft(connection.id, {"cloud_error": "Choose one of the clouds listed."})
        return _respond(connection.id, "cloud")
    storage.save_draft(
        connection.id,
        {"cloud": cloud.key, "cloud_error": None},
        wizard_step=_advance(connection, 2),
    )
    connection = _set_if_changed(connection, cloud=cloud.key)
    if connection.draft.get("tenant_input"):
        _lookup_tenant(connection)
    return _respond(connection.id, "cloud")


# --- Step 2: tenant and client ---------------------------------------------------------------


@bp.get("/validate/tenant")
@login_required
def validate_tenant():
    """Live format check while typing: no database write, no network."""
    text = request.args.get("tenant_input", "")[:MAX_INPUT]
    if not text.strip():
        return _format_fragment("tenant", None, "")
    try:
        ref = parse_tenant(text)
    except TenantInputError as exc:
        return _format_fragment("tenant", "error", str(exc))
    return _format_fragment(
        "tenant",
        "ok",
        "Looks like a tenant ID."
        if ref.kind == "guid"
        else "Looks like a domain name: we will look up its tenant ID.",
    )


@bp.get("/validate/client")
@login_required
def validate_client():
    """Live format check of the Application (client) ID: no database write, no network."""
    message = _client_message(request.args.get("client_id", "")[:MAX_INPUT])
    level, text = message if message else (None, "")
    return _format_fragment("client", level, text)


_GUID_LIKE = re.compile(r"^[{(]?[0-9A-Fa-f-]{8,}[)}]?$")


def parse_tenant(text: str):
    """``parse_tenant_input``, with a precise message for a tenant ID that is almost a GUID
    (a missing digit or dash would otherwise read as a domain without a dot)."""
    try:
        return parse_tenant_input(text)
    except TenantInputError:
        stripped = text.strip()
        if _GUID_LIKE.match(stripped) and any(c.isdigit() for c in stripped):
            digits = sum(c in "0123456789abcdefABCDEF" for c in stripped)
            raise TenantInputError(
                f"That looks like a tenant ID, but it has {digits} hexadecimal digits: a tenant "
                "ID has 32, grouped 8-4-4-4-12 with dashes, like "
                "72f988bf-86f1-41af-91ab-2d7cd011db47."
            ) from None
        raise


def _format_fragment(field: str, level: str | None, message: str) -> str:
    # Rendered straight from the (cached) template, without context processors: this fragment
    # answers every keystroke, so it stays as lean as the sign-in check allows.
    template = current_app.jinja_env.get_template("fragments/_wizard_format.html")
    return template.render(field=field, level=level, message=message)


def _client_message(text: str | None) -> tuple[str, str] | None:
    """(level, message) for a typed client ID; None when nothing was typed."""
    if not text or not text.strip():
        return None
    try:
        ref = parse_tenant_input(text)
    except TenantInputError:
        ref = None
    if ref is None or ref.kind != "guid":
        return (
            "error",
            "The Application (client) ID is a GUID like "
            "72f988bf-86f1-41af-91ab-2d7cd011db47 (8-4-4-4-12 hexadecimal digits).",
        )
    return ("ok", "Looks like a client ID. We prove that it exists when you link the account.")


def _client_guid(text: str | None) -> str | None:
    try:
        ref = parse_tenant_input(text or "")
    except TenantInputError:
        return None
    return ref.value if ref.kind == "guid" else None


@bp.post("/<connection_id>/setup/ids")
@login_required
def save_ids(connection_id: str):
    """Save the tenant and client ID as typed, then look the tenant up in the chosen cloud."""
    connection = _load_customer_owned(connection_id)
    tenant_text = request.form.get("tenant_input", connection.draft.get("tenant_input", ""))
    client_text = request.form.get("client_id", connection.draft.get("client_id", ""))
    tenant_text, client_text = tenant_text.strip()[:MAX_INPUT], client_text.strip()[:MAX_INPUT]
    connection = storage.save_draft(
        connection.id, {"tenant_input": tenant_text, "client_id": client_text}
    )
    connection = _set_if_changed(
        connection, client_id=_client_guid(client_text), tenant_input=tenant_text or None
    )
    lookup = _lookup_tenant(connection) if tenant_text else None
    if not tenant_text:
        _set_if_changed(connection, tenant_id=None)
    connection = storage.get_connection_or_raise(connection.id)
    if lookup and lookup["outcome"] == "found" and connection.client_id:
        storage.save_draft(connection.id, {}, wizard_step=_advance(connection, 3))
    return _respond(connection.id, "ids_status")


def _lookup_tenant(connection: storage.Connection) -> dict | None:
    """Discovery of the typed tenant in the connection's cloud; the result goes to the draft."""
    text = connection.draft.get("tenant_input") or ""
    lookup = {
        "input": text,
        "cloud": connection.cloud,
        "tenant_id": None,
        "kind": None,
        "other_cloud": None,
        "other_cloud_name": None,
    }
    try:
        ref = parse_tenant(text)
    except TenantInputError as exc:
        lookup.update(outcome="malformed", message=str(exc))
    else:
        lookup["kind"] = ref.kind
        cloud = find_cloud(connection.cloud)
        if cloud is None:
            lookup.update(outcome="no_cloud", message="Choose the cloud first (step 1).")
        else:
            found = discover_tenant(cloud_table(), cloud.key, ref, cache=caches().discovery)
            lookup.update(
                outcome=found.outcome,
                tenant_id=found.tenant_id,
                message=_lookup_message(found, cloud),
            )
            if found.other_cloud:
                other = find_cloud(found.other_cloud)
                lookup.update(
                    other_cloud=found.other_cloud,
                    other_cloud_name=other.label if other else found.other_cloud,
                )
    tenant_id = lookup["tenant_id"] if lookup["outcome"] == "found" else None
    storage.save_draft(connection.id, {"lookup": lookup})
    _set_if_changed(storage.get_connection_or_raise(connection.id), tenant_id=tenant_id)
    return lookup


def _lookup_message(found, cloud) -> str:
    if found.outcome == "found":
        return f"Found your tenant in {cloud.label}."
    if found.outcome == "other_cloud":
        other = find_cloud(found.other_cloud)
        return (
            f"This tenant is in another cloud: {other.label if other else found.other_cloud}"
            f", not {cloud.label}."
        )
    if found.outcome == "not_found":
        return (
            f"We couldn't find this tenant in {cloud.label}. Check the tenant ID or domain, "
            "and the cloud."
        )
    if found.outcome == "malformed":
        return "Microsoft says this is neither a valid tenant ID nor a domain name."
    return "We couldn't reach Microsoft to look the tenant up. This is usually brief: try again."


def _set_if_changed(connection: storage.Connection, **fields) -> storage.Connection:
    """Update columns that changed; a proven connection whose identity changed waits again."""
    return lifecycle.identity_changed(connection.id, fields, actor=current_user.id)


# --- Steps 3 and 4: registration and certificate ---------------------------------------------


@bp.post("/<connection_id>/setup/registered")
@login_required
@fresh_auth_required
def registered(connection_id: str):
    """ "I have registered the application": go on to the certificate, creating it now."""
    connection = _load_customer_owned(connection_id)
    storage.save_draft(connection.id, {}, wizard_step=_advance(connection, 4))
    if storage.active_certificate(connection.id) is None:
        _issue(connection)
    return _respond(connection.id, "certificate")


@bp.post("/<connection_id>/setup/certificate")
@login_required
@fresh_auth_required
def create_certificate(connection_id: str):
    """Create the certificate (none active), or replace it (``replace=1``)."""
    connection = _load_customer_owned(connection_id)
    active = storage.active_certificate(connection.id)
    if (
        active is not None
        and request.form.get("replace") == "1"
        and connection.state in ("connected", "needs_attention")
    ):
        # Linked once: replacing at once would break a working connection. Rotate instead.
        return rotate_certificate(connection.id)
    if active is None or request.form.get("replace") == "1":
        _issue(connection, retire=active)
    storage.save_draft(connection.id, {}, wizard_step=_advance(connection, 4))
    return _respond(connection.id, "certificate")


def _issue(
    connection: storage.Connection, retire=None, status: str = "active"
) -> storage.CertificateRecord:
    months = int(current_app.config["CERT_VALIDITY_MONTHS"])
    issued = issue_certificate(
        "HR identity automation",
        connection.id,
        validity_days=min(round(months * 365.25 / 12), MAX_VALIDITY_DAYS),
        key_size=int(current_app.config["CERT_KEY_SIZE"]),
    )
    record = storage.add_certificate(
        connection.id,
        cert_pem=issued.cert_pem.decode("ascii"),
        thumbprint_sha1=issued.thumbprint_sha1,
        thumbprint_sha256=issued.thumbprint_sha256,
        subject=issued.subject,
        not_before=issued.not_before.isoformat(),
        not_after=issued.not_after.isoformat(),
        private_key_pem=issued.private_key_pem,
        status=status,
    )
    if retire is not None:
        storage.set_certificate_status(retire.id, "retired")
    lifecycle.certificate_issued(
        connection.id,
        actor=current_user.id,
        detail={
            "thumbprint_sha1": record.thumbprint_sha1,
            "status": status,
            "replaced": retire.thumbprint_sha1 if retire else None,
        },
    )
    return record


@bp.post("/<connection_id>/setup/uploaded")
@login_required
def uploaded(connection_id: str):
    """ "I have uploaded the certificate": go on to the permissions."""
    connection = _load_customer_owned(connection_id)
    storage.save_draft(connection.id, {}, wizard_step=_advance(connection, 5))
    return _respond(connection.id, "certificate")


@bp.get("/<connection_id>/certificate.<fmt>")
@login_required
def download_certificate(connection_id: str, fmt: str):
    """The active certificate's public part as ``.cer`` (DER), ``.pem`` or ``.crt``."""
    connection = load_connection_or_404(connection_id)
    if request.args.get("which") == "pending":  # the next certificate, during a rotation
        certificate = storage.pending_certificate(connection.id)
    else:
        certificate = storage.active_certificate(connection.id)
    if fmt not in CERT_FORMATS or certificate is None:
        abort(404)
    body, mime = export_certificate(certificate.cert_pem, fmt)
    response = make_response(body)
    response.headers["Content-Type"] = mime
    name = f"hr-automation-{certificate.thumbprint_sha1[:8].lower()}.{fmt}"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- Certificate rotation (from the connection page) -----------------------------------------


def _to_certificate(connection_id: str):
    url = url_for("status.connection", connection_id=connection_id, _anchor="certificate")
    return htmx.hx_redirect(url) if htmx.is_htmx() else redirect(url)


@bp.post("/<connection_id>/certificate/rotate")
@login_required
@fresh_auth_required
def rotate_certificate(connection_id: str):
    """Issue the next certificate as *pending*. The active one keeps signing until the new one is
    proven against the tenant, so a rotation never breaks a working connection."""
    connection = _load_customer_owned(connection_id)
    if storage.active_certificate(connection.id) is None:
        flash("A rotation starts from a connection that already has a certificate.", "error")
    elif storage.pending_certificate(connection.id) is None:
        _issue(connection, status="pending")
        flash(
            "New certificate created. Download it and upload it to your application, keeping "
            "the current one there for now; then select 'Check the new certificate'.",
            "success",
        )
    return _to_certificate(connection.id)


@bp.post("/<connection_id>/certificate/confirm")
@login_required
@fresh_auth_required
def confirm_certificate(connection_id: str):
    """Verify everything with the pending certificate; only if every item passes does it become
    the active one (and the previous one retired). A failure changes nothing."""
    connection = _load_customer_owned(connection_id)
    pending, active = (
        storage.pending_certificate(connection.id),
        storage.active_certificate(connection.id),
    )
    cloud = find_cloud(connection.cloud)
    if pending is None or active is None or cloud is None or not connection.client_id:
        flash("There is no certificate rotation to check.", "error")
        return _to_certificate(connection.id)
    try:
        key = storage.get_secret("certificates", pending.id, "private_key")
    except vault.SecretUnreadable:
        key = None
    if key is None:  # only the new certificate is affected: retire it, keep the connection
        storage.set_certificate_status(pending.id, "retired")
        flash("We can't read the new certificate's private key. Start the rotation again.", "error")
        return _to_certificate(connection.id)
    report = verify_with(connection, cloud, pending, key)
    if not report.ok:
        reason = (
            report.problem.message
            if report.problem
            else "missing: " + ", ".join(item.label for item in report.missing) + "."
        )
        flash(
            f"The new certificate is not in use yet ({reason}) The current certificate keeps "
            "working.",
            "error",
        )
        return _to_certificate(connection.id)
    storage.promote_certificate(connection.id, pending.id)
    record_report(connection, report, "certificate rotation", actor=current_user.id)
    storage.record_audit(
        "certificate.rotate",
        actor=current_user.id,
        org_id=connection.org_id,
        connection_id=connection.id,
        detail={"new": pending.thumbprint_sha1, "old": active.thumbprint_sha1},
    )
    flash(
        f"The new certificate works and is now in use. You can delete the old one "
        f"(thumbprint {active.thumbprint_sha1}) from your application's Certificates & "
        "secrets.",
        "success",
    )
    return _to_certificate(connection.id)


# --- Step 5: permissions, Exchange, admin consent --------------------------------------------


@bp.post("/<connection_id>/setup/exchange")
@login_required
def save_exchange(connection_id: str):
    """The Exchange Online toggle (adds Exchange.ManageAsApp and Exchange Administrator)."""
    connection = _load_customer_owned(connection_id)
    enabled = request.form.get("exchange") == "1"
    storage.save_draft(connection.id, {"exchange": enabled}, wizard_step=_advance(connection, 5))
    _set_if_changed(connection, exchange_enabled=enabled)
    return _respond(connection.id, "permissions")


@bp.post("/<connection_id>/admin-consent")
@login_required
@embeddable
def admin_consent(connection_id: str):
    """Start admin consent: a one-time state bound to this browser, then off to Microsoft."""
    connection = _load_customer_owned(connection_id)
    cloud = find_cloud(connection.cloud)
    if cloud is None or not connection.tenant_id or not connection.client_id:
        flash(
            "Enter the cloud, a tenant we found and the client ID first (steps 1 and 2).", "error"
        )
        return redirect(url_for(".wizard", connection_id=connection.id, _anchor="step-permissions"))
    if framed_navigation():
        # Inside the host product's frame Microsoft's consent page would be refused, and the
        # frame's (partitioned) session would not come back with the answer: offer the two
        # routes that work there instead of a broken frame. Nothing is started.
        return render_template(
            "pages/admin_consent_framed.html",
            connection=connection,
            permissions_url=cloud.app_permissions_url(connection.client_id),
        )
    state, browser = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    storage.create_auth_flow(
        state=state,
        kind="admin_consent",
        connection_id=connection.id,
        user_id=current_user.id,
        browser_cookie=browser,
        flow={
            "tenant_id": connection.tenant_id,
            "client_id": connection.client_id,
            "cloud": cloud.key,
        },
        ttl=CONSENT_TTL,
    )
    storage.save_draft(connection.id, {}, wizard_step=_advance(connection, 5))
    storage.record_audit(
        "connection.admin_consent_start",
        actor=current_user.id,
        org_id=connection.org_id,
        connection_id=connection.id,
    )
    redirect_uri = current_app.config["PUBLIC_URL"].rstrip("/") + url_for(".admin_consent_return")
    target = cloud.admin_consent_url(
        connection.tenant_id, connection.client_id, redirect_uri=redirect_uri, state=state
    )
    response = redirect(target)
    # Secure follows the public address, not this hop: behind a TLS-terminating proxy the
    # request arrives over plain http although the browser speaks https.
    public_https = current_app.config["PUBLIC_URL"].lower().startswith("https://")
    response.set_cookie(
        CONSENT_COOKIE,
        browser,
        max_age=CONSENT_TTL,
        httponly=True,
        samesite="Lax",
        secure=public_https,
        path=url_for(".admin_consent_return"),
    )
    return response


@bp.get("/admin-consent/return")
@login_required
def admin_consent_return():
    """Microsoft sends the admin back here. The state is used once; the tenant is not trusted."""
    state = request.args.get("state", "")[:128]
    browser = request.cookies.get(CONSENT_COOKIE, "")
    flow = (
        storage.consume_auth_flow(state, browser, "admin_consent", user_id=current_user.id)
        if state and browser
        else None
    )
    if flow is None:
        log.warning("admin consent return with an unknown, used, expired or foreign state")
        flash(
            "This consent answer has expired, was already used or was started in another "
            "browser. Start admin consent again from the wizard.",
            "error",
        )
        # The cookie stays: an answer that is not this browser's flow must not end the flow
        # this browser is really running (it expires by itself after 10 minutes).
        return redirect(url_for("home.index"))
    connection = load_connection_or_404(flow.connection_id, write=True)
    back = url_for(".wizard", connection_id=connection.id, _anchor="step-link")
    error = request.args.get("error")
    if error:
        description = (request.args.get("error_description") or "").split("\r")[0][:300]
        found = classify_redirect_error(error, description, request.args.get("error_uri"))
        storage.record_audit(
            "connection.admin_consent_failed",
            actor=current_user.id,
            org_id=connection.org_id,
            connection_id=connection.id,
            detail={"error": error[:64]},
        )
        if found.declined:
            flash(
                "Admin consent was declined, so nothing was granted. When you are ready, "
                "start it again or grant consent in API permissions.",
                "error",
            )
        else:
            answer = f"{error[:64]}: {description}" if description else error[:64]
            flash(
                f"Microsoft did not grant consent. {found.message} {found.fix} (Microsoft's "
                f"answer: {answer})",
                "error",
            )
        return _forget_cookie(redirect(back.replace("step-link", "step-permissions")))
    returned = (request.args.get("tenant") or "").strip().lower()
    if returned and returned != connection.tenant_id:
        log.warning(
            "admin consent returned tenant %r for connection %s", returned[:64], connection.id
        )
        flash(
            f"Microsoft's answer named another tenant ({returned[:64]}). We ignored it and "
            f"checked your tenant {connection.tenant_id}.",
            "warning",
        )
    connection = storage.update_connection(connection.id, consented_at=storage.utcnow())
    storage.record_audit(
        "connection.admin_consent",
        actor=current_user.id,
        org_id=connection.org_id,
        connection_id=connection.id,
    )
    outcome = run_check(connection, trigger="consent", actor=current_user.id)
    if outcome.get("ok"):
        flash("Admin consent granted and every item checked: the account is linked.", "success")
    else:
        flash(
            "Admin consent recorded. We are checking the setup: Microsoft can take a minute "
            "to apply it.",
            "info",
        )
    return _forget_cookie(redirect(back))


def _forget_cookie(response):
    response.delete_cookie(CONSENT_COOKIE, path=url_for(".admin_consent_return"))
    return response


__all__ = ["bp", "wizard_context", "MAX_POLLS"]
