"""Starting Link Account: at top level a 303 to Microsoft's sign-in; inside the host's frame a
one-time handoff for a popup; and the starting session's confirmation of a popup's result."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import parse_qs, urlsplit

from flask import jsonify, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from portal import htmx, storage
from portal.access import admin_required, fresh_auth_required, load_connection_or_404
from portal.blueprints.link import bp
from portal.blueprints.link.binding import (
    FLOW_TTL,
    existing_session_binding,
    session_binding,
    set_flow_cookie,
)
from portal.blueprints.link.panel import (
    cloud_for,
    render_panel,
    require_service_provider,
    scopes_to_request,
    sp_settings,
    unavailable,
)
from portal.connections import delegated_link, lifecycle
from portal.connections.service_provider import SpSettings
from portal.entra.client import AuthFlow, EntraClient
from portal.entra.clouds import Cloud, http_session
from portal.security import embeddable, framed_navigation
from portal.services import caches, cloud_table

log = logging.getLogger("portal.link")


def client_for(settings: SpSettings, cloud: Cloud, session_) -> EntraClient:
    """MSAL for our multi-tenant app at ``https://<login>/organizations``, empty token cache."""
    client_id, credential, _redirect_uri = settings.app()
    return EntraClient(
        cloud,
        "organizations",
        client_id,
        credential,
        session=session_,
        http_cache=caches().msal_http,
    )


def start_flow(connection: storage.Connection, user_id: int, handoff_id: str | None = None):
    """Create the server-side flow and answer with a redirect to the authorize endpoint."""
    settings = sp_settings()
    if not settings.ok:
        return make_response(unavailable(settings))
    cloud, why = cloud_for(connection, settings)
    if cloud is None:
        return make_response(unavailable(settings, why))
    storage.purge_auth_flows()
    storage.purge_unconfirmed_links()
    scopes = scopes_to_request(connection, settings.required_scopes)
    state = secrets.token_urlsafe(32)
    client = client_for(settings, cloud, http_session(cloud_table(), cloud))
    # select_account: Microsoft shows which account signs in even when single sign-on could
    # finish silently, so no consent completes unseen
    # (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#request-an-authorization-code).
    started = client.initiate_auth_code_flow(
        settings.app()[2],
        scopes,
        state=state,
        prompt="select_account",
        domain_hint=connection.tenant_domain or None,
    )
    if not started.ok or started.state != state or started.auth_uri is None:
        return _not_started(connection, started, popup=handoff_id is not None)
    cookie = secrets.token_urlsafe(32)
    _keep_flow(connection, user_id, state, cookie, started, scopes, cloud, handoff_id)
    response = redirect(started.auth_uri, code=303)
    set_flow_cookie(response, cookie)
    return response


def _not_started(connection: storage.Connection, started: AuthFlow, *, popup: bool):
    problem = started.problem
    log.error(
        "could not start the delegated sign-in: %s",
        problem.as_dict() if problem else "state not kept",
    )
    body = render_template(
        "link/result.html",
        ok=False,
        popup=popup,
        connection=connection,
        title="Microsoft sign-in is not reachable",
        message="We could not start the sign-in with Microsoft.",
        fix="Please try again in a few minutes.",
        code=None,
    )
    return make_response(body, 502)


def _keep_flow(connection, user_id, state, cookie, started, scopes, cloud, handoff_id) -> None:
    """The flow, server-side under its state: MSAL's half and what the callback checks."""
    sent = parse_qs(urlsplit(started.auth_uri).query)
    storage.create_auth_flow(
        state=state,
        kind="delegated",
        connection_id=connection.id,
        user_id=user_id,
        browser_cookie=cookie,
        ttl=FLOW_TTL,
        flow={
            "msal": started.flow,
            "portal": {
                "nonce_sent": (sent.get("nonce") or [""])[0],
                "scopes": scopes,
                "handoff_id": handoff_id,
                "cloud": cloud.key,
                "expected_tenant": connection.tenant_id,
                "response_mode": "form_post",
            },
        },
    )
    lifecycle.link_started(
        connection.id, actor=user_id, detail={"scopes": scopes, "popup": handoff_id is not None}
    )


@bp.post("/connections/<connection_id>/link")
@admin_required
@fresh_auth_required
@embeddable
def start(connection_id: str):
    """Link Account (top level): 303 to Microsoft. Posted from inside a frame without script,
    it answers with a page that opens the sign-in in a new tab instead (Microsoft refuses to be
    framed)."""
    connection = load_connection_or_404(connection_id, write=True)
    require_service_provider(connection)
    if framed_navigation():
        settings = sp_settings()
        if not settings.ok:
            return unavailable(settings)
        handoff = storage.create_handoff(
            connection_id=connection.id,
            user_id=current_user.id,
            session_binding=session_binding(),
            ttl=FLOW_TTL,
        )
        return render_template(
            "link/page.html",
            connection=connection,
            handoff_url=url_for(".handoff", handoff_id=handoff.id),
        )
    return start_flow(connection, current_user.id)


@bp.post("/connections/<connection_id>/link/handoff")
@admin_required
@fresh_auth_required
def create_handoff(connection_id: str):
    """For the framed panel (``static/link.js``): a one-time handoff for the popup (JSON)."""
    connection = load_connection_or_404(connection_id, write=True)
    require_service_provider(connection)
    settings = sp_settings()
    if not settings.ok or cloud_for(connection, settings)[0] is None:
        log.warning("Link Account unavailable: %s", " ".join(settings.problems))
        return jsonify(error="unavailable"), 503
    handoff = storage.create_handoff(
        connection_id=connection.id,
        user_id=current_user.id,
        session_binding=session_binding(),
        ttl=FLOW_TTL,
    )
    storage.audit_connection(
        "connection.link_handoff",
        connection,
        actor=current_user.id,
    )
    return jsonify(
        handoff_url=url_for(".handoff", handoff_id=handoff.id),
        status_url=url_for(".status", connection_id=connection.id),
    )


@bp.post("/connections/<connection_id>/link/confirm")
@admin_required
@embeddable
def confirm(connection_id: str):
    """The session that started a popup sign-in confirms (or refuses) the tenant and the
    Microsoft user it is shown; only then is anything linked."""
    connection = load_connection_or_404(connection_id, write=True)
    require_service_provider(connection)
    binding = existing_session_binding()
    attempt = storage.latest_link_attempt(connection.id, binding) if binding else None
    handoff_id = request.form.get("handoff", "")
    done = False
    if binding and attempt is not None and attempt.handoff_id == handoff_id:
        if request.form.get("decision") == "confirm":
            linked = delegated_link.confirm(
                connection,
                handoff_id,
                binding,
                required=sp_settings().required_scopes,
                actor=current_user.id,
            )
            done = linked is not None
        else:
            done = delegated_link.cancel(connection, handoff_id, binding, actor=current_user.id)
    if not done:
        log.warning(
            "link confirmation refused for connection %s (nothing of this session's waits)",
            connection.id,
        )
    connection = storage.get_connection(connection.id) or connection
    if htmx.is_htmx():
        return render_panel(connection, stale=not done)
    return redirect(url_for(".page", connection_id=connection.id), code=303)
