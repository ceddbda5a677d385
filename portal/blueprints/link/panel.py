"""The service-provider panel (``link/_panel.html``, a live region: the iframe polls it while a
popup sign-in is pending) and the page it stands on; what our app's settings allow here."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from flask import abort, current_app, render_template, request
from flask_login import current_user

from portal import regions, storage
from portal.access import load_connection_or_404, login_required
from portal.blueprints.link import bp
from portal.blueprints.link.binding import FLOW_TTL, existing_session_binding
from portal.connections.delegated_link import SignedIn, missing_scopes
from portal.connections.service_provider import SpSettings, read_settings
from portal.entra.clouds import Cloud
from portal.security import embeddable
from portal.services import cloud_table

log = logging.getLogger("portal.link")

PANEL = "link/_panel.html"


def sp_settings() -> SpSettings:
    """The operator's settings of our app, read by the one reader (the certificate file is
    parsed once per change, in the app's cache)."""
    return read_settings(
        current_app.config,
        current_app.instance_path,
        current_app.extensions.setdefault("portal.sp_cert", {}),
    )


def cloud_for(connection: storage.Connection, settings: SpSettings) -> tuple[Cloud | None, str]:
    """The connection's cloud if the app is registered there (else None and why)."""
    key = connection.cloud or (settings.clouds[0] if settings.clouds else None)
    if key is None or key not in settings.clouds:
        return None, (
            f"The app is not registered in the cloud {key!r} of this connection "
            f"(SP_CLOUDS = {list(settings.clouds)})."
        )
    try:
        return cloud_table().get(key), ""
    except KeyError:
        return None, f"SP_CLOUDS names {key!r}, which is not in the cloud table."


def scopes_to_request(connection: storage.Connection, required: tuple[str, ...]) -> list[str]:
    """Incremental consent: only what is missing while the consent still works; else all."""
    missing = missing_scopes(connection, required)
    if connection.consented_at and connection.state in ("connected", "needs_attention") and missing:
        return missing
    return list(required)


def unavailable(settings: SpSettings | None, reason: str | None = None):
    """Operator: what to fix. Customer: not available yet, contact support."""
    details = list(settings.problems if settings else ()) + ([reason] if reason else [])
    log.warning("Link Account unavailable: %s", " ".join(details))
    operator = current_user.is_authenticated and current_user.is_support
    return render_template("link/unavailable.html", details=details, operator=operator), 503


def require_service_provider(connection: storage.Connection) -> None:
    if connection.kind != "service_provider":
        abort(404)


def _attempt_view(attempt: storage.LinkAttempt | None, now: float) -> dict[str, Any]:
    """How this session's latest popup sign-in shows: waiting, waiting for its confirmation
    (docs/decisions/0004), just finished, or run out of time (each mentioned for a while,
    then forgotten). A GET changes nothing: an expired result is destroyed by the next flow or
    the cron."""
    if attempt is None:
        return {
            "attempt": None,
            "pending": False,
            "expired": False,
            "recent": False,
            "unconfirmed": False,
            "confirming": False,
            "signed_in": None,
            "confirm_until": None,
        }
    finished = attempt.finished_at or 0
    pending = attempt.pending(now)
    confirming = attempt.outcome == "confirm" and finished + storage.CONFIRM_TTL_SECONDS > now
    return {
        "attempt": attempt,
        "pending": pending,
        "expired": attempt.outcome is None and not pending and now < attempt.expires_at + FLOW_TTL,
        "recent": attempt.outcome is not None and finished > now - FLOW_TTL,
        "unconfirmed": attempt.outcome in ("confirm", "expired")
        and not confirming
        and now < finished + storage.CONFIRM_TTL_SECONDS + FLOW_TTL,
        "confirming": confirming,
        "signed_in": SignedIn.from_dict(attempt.detail["signed_in"])
        if confirming and "signed_in" in attempt.detail
        else None,
        "confirm_until": datetime.fromtimestamp(
            finished + storage.CONFIRM_TTL_SECONDS, UTC
        ).isoformat(timespec="seconds")
        if confirming
        else None,
    }


def panel_context(
    connection: storage.Connection, blocked: bool = False, stale: bool = False
) -> dict:
    """What the service-provider panel shows (also on the connection page). ``stale``: a
    confirmation was answered that no longer waited (expired, or answered elsewhere)."""
    settings = sp_settings()
    cloud, cloud_problem = cloud_for(connection, settings) if settings.ok else (None, "")
    binding = existing_session_binding()
    attempt = storage.latest_link_attempt(connection.id, binding) if binding else None
    required = settings.required_scopes
    return {
        "connection": connection,
        "available": settings.ok and cloud is not None,
        "operator_details": list(settings.problems) + ([cloud_problem] if cloud_problem else []),
        "required": required,
        "missing": missing_scopes(connection, required) if connection.consented_at else [],
        "to_request": scopes_to_request(connection, required),
        **_attempt_view(attempt, time.time()),
        "blocked": blocked,
        "stale": stale,
        "can_link": current_user.is_authenticated and current_user.is_admin,
        "organization": storage.get_organization(connection.org_id),
        "held": storage.list_link_reviews("held", connection.id),
    }


def render_panel(connection: storage.Connection, **flags: bool):
    """The panel region alone (htmx and the iframe's polling)."""
    return regions.render(PANEL, p=panel_context(connection, **flags))


@bp.app_context_processor
def _panel_helper():
    """``sp_panel(connection)`` for templates that include the service-provider panel."""
    return {"sp_panel": panel_context}


@bp.get("/connections/<connection_id>/link")
@login_required
@embeddable
def page(connection_id: str):
    """The service-provider panel on a page of its own (the connection page also includes it)."""
    connection = load_connection_or_404(connection_id)
    require_service_provider(connection)
    return render_template("link/page.html", connection=connection)


@bp.get("/connections/<connection_id>/link-status")
@login_required
@embeddable
def status(connection_id: str):
    """The panel region: polled every 2 s by the iframe while a popup sign-in is pending."""
    connection = load_connection_or_404(connection_id)
    require_service_provider(connection)
    return render_panel(connection, blocked=request.args.get("blocked") == "1")
