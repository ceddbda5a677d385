"""Admin consent for a customer-owned application (step 5 of the wizard): off to Microsoft's
admin consent page with a one-time state bound to this browser and this user, and back here
with the answer, which is never trusted for the tenant: every item is proven by a check."""

from __future__ import annotations

import logging
import secrets

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

from portal import jobs, storage
from portal.access import load_connection_or_404, login_required
from portal.blueprints.wizard import load_customer_owned
from portal.connections import setup_steps
from portal.entra.clouds import Cloud
from portal.entra.errors import classify_redirect_error
from portal.security import embeddable, framed_navigation
from portal.services import find_cloud

bp = Blueprint("consent", __name__, url_prefix="/connections")
log = logging.getLogger("portal.consent")

COOKIE = "portal_consent"
TTL = 600  # seconds: the state and its browser cookie


@bp.post("/<connection_id>/admin-consent")
@login_required
@embeddable
def start(connection_id: str):
    """Start admin consent: a one-time state bound to this browser, then off to Microsoft."""
    connection = load_customer_owned(connection_id)
    cloud = find_cloud(connection.cloud)
    if cloud is None or not connection.tenant_id or not connection.client_id:
        flash(
            "Enter the cloud, a tenant we found and the client ID first (steps 1 and 2).", "error"
        )
        return redirect(
            url_for("wizard.page", connection_id=connection.id, _anchor="step-permissions")
        )
    if framed_navigation():
        # Inside the host product's frame Microsoft's consent page would be refused, and the
        # frame's (partitioned) session would not come back with the answer: offer the two
        # routes that work there instead of a broken frame. Nothing is started.
        return render_template(
            "consent/framed.html",
            connection=connection,
            permissions_url=cloud.app_permissions_url(connection.client_id),
        )
    return _send_to_microsoft(connection, cloud)


def _send_to_microsoft(connection: storage.Connection, cloud: Cloud):
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
        ttl=TTL,
    )
    storage.save_draft(connection.id, {}, wizard_step=setup_steps.advance(connection, 5))
    storage.audit_connection(
        "connection.admin_consent_start",
        connection,
        actor=current_user.id,
    )
    redirect_uri = current_app.config["PUBLIC_URL"].rstrip("/") + url_for(".finish")
    target = cloud.admin_consent_url(
        connection.tenant_id or "",
        connection.client_id or "",
        redirect_uri=redirect_uri,
        state=state,
    )
    response = redirect(target)
    # Secure follows the public address, not this hop: behind a TLS-terminating proxy the
    # request arrives over plain http although the browser speaks https.
    public_https = current_app.config["PUBLIC_URL"].lower().startswith("https://")
    response.set_cookie(
        COOKIE,
        browser,
        max_age=TTL,
        httponly=True,
        samesite="Lax",
        secure=public_https,
        path=url_for(".finish"),
    )
    return response


@bp.get("/admin-consent/return")
@login_required
def finish():
    """Microsoft sends the admin back here. The state is used once; the tenant is not trusted."""
    state = request.args.get("state", "")[:128]
    browser = request.cookies.get(COOKIE, "")
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
    back = url_for("wizard.page", connection_id=connection.id, _anchor="step-link")
    error = request.args.get("error")
    if error:
        _refused(connection, error)
        return _forget_cookie(redirect(back.replace("step-link", "step-permissions")))
    _granted(connection)
    return _forget_cookie(redirect(back))


def _refused(connection: storage.Connection, error: str) -> None:
    """Microsoft answered with an error: say what it means and how to fix it."""
    description = (request.args.get("error_description") or "").split("\r")[0][:300]
    found = classify_redirect_error(error, description, request.args.get("error_uri"))
    storage.audit_connection(
        "connection.admin_consent_failed",
        connection,
        actor=current_user.id,
        detail={"error": error[:64]},
    )
    if found.declined:
        flash(
            "Admin consent was declined, so nothing was granted. When you are ready, "
            "start it again or grant consent in API permissions.",
            "error",
        )
        return
    answer = f"{error[:64]}: {description}" if description else error[:64]
    flash(
        f"Microsoft did not grant consent. {found.message} {found.fix} (Microsoft's "
        f"answer: {answer})",
        "error",
    )


def _granted(connection: storage.Connection) -> None:
    """Consent was granted: record it and prove every item against the tenant we know."""
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
    storage.audit_connection(
        "connection.admin_consent",
        connection,
        actor=current_user.id,
    )
    # The check runs as a job, like Link Account: the page this redirects to shows its steps.
    jobs.start_check(connection, current_user.id, trigger="consent")
    flash(
        "Admin consent recorded. We are checking every item with Microsoft now: the result "
        "appears in step 6 (Microsoft can take a minute to apply a consent).",
        "info",
    )


def _forget_cookie(response):
    response.delete_cookie(COOKIE, path=url_for(".finish"))
    return response
