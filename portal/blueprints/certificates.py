"""A customer-owned connection's certificate: create it in the wizard, download its public
part, and rotate it from the connection page (:mod:`portal.connections.certificates` holds the
rules: a rotation never breaks a working connection)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, request, url_for
from flask_login import current_user

from portal import htmx, storage
from portal.access import fresh_auth_required, load_connection_or_404, login_required
from portal.blueprints.wizard import load_customer_owned, respond
from portal.connections import certificates, lifecycle, setup_steps
from portal.entra.certificates import ExportFormat, export_certificate

bp = Blueprint("certificates", __name__, url_prefix="/connections")

FORMATS: tuple[ExportFormat, ...] = ("cer", "pem", "crt")


@bp.post("/<connection_id>/setup/certificate")
@login_required
@fresh_auth_required
def create(connection_id: str):
    """Create the certificate (none active), or replace it (``replace=1``)."""
    connection = load_customer_owned(connection_id)
    active = storage.active_certificate(connection.id)
    replace = request.form.get("replace") == "1"
    if active is not None and replace and connection.state in lifecycle.PROVEN:
        # Linked once: replacing at once would break a working connection. Rotate instead.
        return rotate(connection.id)
    if active is None or replace:
        certificates.issue(connection, actor=current_user.id, retire=active)
    storage.save_draft(connection.id, {}, wizard_step=setup_steps.advance(connection, 4))
    return respond(connection.id, "certificate")


@bp.get("/<connection_id>/certificate.<fmt>")
@login_required
def download(connection_id: str, fmt: str):
    """The active certificate's public part as ``.cer`` (DER), ``.pem`` or ``.crt``."""
    connection = load_connection_or_404(connection_id)
    if request.args.get("which") == "pending":  # the next certificate, during a rotation
        certificate = storage.pending_certificate(connection.id)
    else:
        certificate = storage.active_certificate(connection.id)
    if fmt not in FORMATS or certificate is None:
        abort(404)
    body, mime = export_certificate(certificate.cert_pem, fmt)
    response = make_response(body)
    response.headers["Content-Type"] = mime
    name = f"hr-automation-{certificate.thumbprint_sha1[:8].lower()}.{fmt}"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _to_certificate(connection_id: str):
    url = url_for("connection.page", connection_id=connection_id, _anchor="certificate")
    return htmx.hx_redirect(url) if htmx.is_htmx() else redirect(url)


@bp.post("/<connection_id>/certificate/rotate")
@login_required
@fresh_auth_required
def rotate(connection_id: str):
    """Issue the next certificate as *pending*. The active one keeps signing until the new one is
    proven against the tenant, so a rotation never breaks a working connection."""
    connection = load_customer_owned(connection_id)
    started = certificates.start_rotation(connection, actor=current_user.id)
    if started == "no_active":
        flash("A rotation starts from a connection that already has a certificate.", "error")
    elif started == "started":
        flash(
            "New certificate created. Download it and upload it to your application, keeping "
            "the current one there for now; then select 'Check the new certificate'.",
            "success",
        )
    return _to_certificate(connection.id)


@bp.post("/<connection_id>/certificate/confirm")
@login_required
@fresh_auth_required
def confirm(connection_id: str):
    """Check everything with the pending certificate; it replaces the active one only if every
    item passes. A failure changes nothing."""
    connection = load_customer_owned(connection_id)
    result = certificates.confirm_rotation(connection, actor=current_user.id)
    if result.outcome == "nothing":
        flash("There is no certificate rotation to check.", "error")
    elif result.outcome == "unreadable":
        flash("We can't read the new certificate's private key. Start the rotation again.", "error")
    elif result.outcome == "failed":
        flash(
            f"The new certificate is not in use yet ({result.reason}) The current certificate "
            "keeps working.",
            "error",
        )
    else:
        flash(
            f"The new certificate works and is now in use. You can delete the old one "
            f"(thumbprint {result.old_thumbprint}) from your application's Certificates & "
            "secrets.",
            "success",
        )
    return _to_certificate(connection.id)
