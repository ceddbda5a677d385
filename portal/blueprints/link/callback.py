"""Microsoft's answer to a Link Account sign-in: one use per state, bound to the browser's flow
cookie; the code redeemed by MSAL, the id token validated by us, the result stored (top level) or
kept for the starting session's confirmation (popup)."""

from __future__ import annotations

import json
import logging

from flask import make_response, redirect, render_template, request, url_for

from portal import storage
from portal.blueprints.link import bp
from portal.blueprints.link.binding import clear_flow_cookie, flow_cookie_name
from portal.blueprints.link.panel import cloud_for, sp_settings
from portal.blueprints.link.start import client_for
from portal.connections import delegated_link
from portal.connections.delegated_link import SignedIn
from portal.connections.service_provider import CALLBACK_PATH
from portal.entra import idtoken
from portal.entra.clouds import http_session
from portal.entra.errors import classify_redirect_error
from portal.security import cross_site_post, no_referrer
from portal.services import caches, cloud_table

log = logging.getLogger("portal.link")


def _rejected(reason: str, *, flow_matched: bool = False):
    """Refuse a callback. The flow cookie is cleared only when the answer belonged to this
    browser's flow: a forged answer (any site can post one) must not end the flow the browser is
    really running."""
    log.warning("OAuth callback rejected: %s", reason)
    response = make_response(render_template("link/rejected.html", popup=False), 400)
    if flow_matched:
        clear_flow_cookie(response)
    return response


def _failed(
    flow: storage.AuthFlow,
    connection: storage.Connection,
    extras: dict,
    *,
    title: str,
    message: str,
    fix: str,
    code: int | None,
    reason: str,
    description: str | None = None,
    status: int = 200,
):
    """A sign-in that did not link: record it (no secrets), explain it in plain words."""
    detail = {"title": title, "message": message, "fix": fix, "code": code, "reason": reason}
    storage.audit_connection(
        "connection.link_failed",
        connection,
        actor=flow.user_id,
        detail={"reason": reason, "code": code},
    )
    if extras.get("handoff_id"):
        storage.record_link_outcome(extras["handoff_id"], connection.id, "failed", detail)
    body = render_template(
        "link/result.html",
        ok=False,
        popup=bool(extras.get("handoff_id")),
        connection=connection,
        title=title,
        message=message,
        fix=fix,
        code=code,
        description=description,
    )
    response = make_response(body, status)
    clear_flow_cookie(response)
    return response


def _id_token_from_cache(cache_text: str) -> str | None:
    try:
        entries = json.loads(cache_text).get("IdToken", {})
    except (ValueError, AttributeError):
        return None
    secrets_found = [e.get("secret") for e in entries.values() if isinstance(e, dict)]
    return secrets_found[0] if len(secrets_found) == 1 else None


@bp.route(CALLBACK_PATH, methods=["GET", "POST"])
@cross_site_post
@no_referrer
def callback():
    """Microsoft's answer (form_post: a cross-site POST; query: a GET). One use per state."""
    params = request.form if request.method == "POST" else request.args
    state = params.get("state") or ""
    cookie = request.cookies.get(flow_cookie_name()) or ""
    if not state or len(state) > 128:
        return _rejected("missing state")
    if not cookie or len(cookie) > 128:
        return _rejected("missing flow cookie")
    flow = storage.consume_auth_flow(state, cookie, "delegated")
    if flow is None:
        return _rejected("unknown, used, expired, other-kind or foreign-browser state")
    connection = storage.get_connection(flow.connection_id)
    wrapped = flow.flow or {}
    extras, msal_flow = wrapped.get("portal") or {}, wrapped.get("msal") or {}
    if connection is None or not msal_flow:
        return _rejected("flow without connection", flow_matched=True)
    if extras.get("response_mode", "form_post") == "form_post" and request.method != "POST":
        # The flow asked for form_post: an answer in the query string is not Microsoft's
        # answer to it (and would leave a code in the browser's history).
        return _rejected("response mode does not match the flow", flow_matched=True)
    if params.get("error"):
        p = classify_redirect_error(
            str(params.get("error")),
            str(params.get("error_description") or ""),
            params.get("error_uri"),
        )
        return _failed(
            flow,
            connection,
            extras,
            title=p.title,
            message=p.message,
            fix=p.fix,
            code=p.code,
            reason=str(params.get("error"))[:64],
            description=str(params.get("error_description") or "")[:1000],
        )
    settings = sp_settings()
    cloud, why = cloud_for(connection, settings) if settings.ok else (None, "")
    if cloud is None or cloud.key != extras.get("cloud"):
        # (A bare page: nothing here may write the session, see _store_link.)
        log.warning(
            "Link Account unavailable at the callback: %s",
            " ".join([*settings.problems, why or "cloud changed during the sign-in"]),
        )
        return _failed(
            flow,
            connection,
            extras,
            title="Linking is not available yet",
            message="The sign-in could not be completed here.",
            fix="Please contact support.",
            code=None,
            reason="unavailable",
            status=503,
        )
    return _redeem(flow, connection, extras, msal_flow, settings, cloud, params)


#: What the customer reads when the id token is refused, by reason (title, message, fix).
_ID_TOKEN_REFUSED = {
    "tenant": (
        "Account from another organization",
        "You signed in with an account of a different organization than the one this "
        "connection belongs to. Nothing was stored.",
        "Click Link Account again and sign in with an administrator account of the "
        "organization of this connection.",
    ),
    "": (
        "Sign-in couldn't be confirmed",
        "Microsoft's answer did not pass our checks, so nothing was stored.",
        "Click Link Account again; if it keeps happening, contact support.",
    ),
}


def _redeem(flow, connection, extras, msal_flow, settings, cloud, params):
    session_ = http_session(cloud_table(), cloud)
    client = client_for(settings, cloud, session_)
    result = client.complete_auth_code_flow(msal_flow, params.to_dict())
    if not result.ok:
        p = result.problem.as_ours() if result.problem else None  # our app's credential
        log.warning("code redemption failed: %s", p.as_dict() if p else None)
        if p is not None and p.category == "our_configuration":
            log.error("the service provider app's credential was refused: alert the operator")
        title, message, fix = (
            (p.title, p.message, p.fix)
            if p
            else ("Sign-in failed", "Microsoft did not complete the sign-in.", "Please try again.")
        )
        return _failed(
            flow,
            connection,
            extras,
            title=title,
            message=message,
            fix=fix,
            code=p.code if p else None,
            reason=(p.error if p else None) or "token",
        )
    raw = _id_token_from_cache(client.cache_text())
    check = idtoken.validate(
        raw,
        cloud=cloud,
        client_id=settings.client_id,
        nonce=extras.get("nonce_sent") or "",
        session=session_,
        expected_tenant=connection.tenant_id or extras.get("expected_tenant") or None,
        cache=caches().jwks,
    )
    if not check.ok:
        log.warning("id token rejected (%s) for connection %s", check.reason, connection.id)
        title, message, fix = _ID_TOKEN_REFUSED.get(check.reason or "", _ID_TOKEN_REFUSED[""])
        return _failed(
            flow,
            connection,
            extras,
            title=title,
            message=message,
            fix=fix,
            code=None,
            reason=f"id_token:{check.reason}",
            status=400,
        )
    return _store_link(flow, connection, extras, settings, cloud, client, result, check)


def _store_link(flow, connection, extras, settings, cloud, client, result, check):
    signed_in = SignedIn(
        tenant_id=check.tenant_id,
        object_id=check.object_id,
        name=check.name,
        username=_claim_text(check.claims, "preferred_username"),
        cloud=cloud.key,
        client_id=settings.client_id,
        scopes=tuple(result.scopes or ()),
        requested=tuple(extras.get("scopes") or ()),
    )
    token_cache = client.cache_text().encode()
    handoff_id = extras.get("handoff_id")
    if handoff_id:
        # A popup: its browser proves nothing about who started the flow (anyone can be lured
        # into opening a popup page), so the starting session must confirm what it is shown.
        delegated_link.await_confirmation(
            handoff_id, connection, signed_in, token_cache, actor=flow.user_id
        )
        response = make_response(
            render_template(
                "link/result.html",
                ok=True,
                popup=True,
                connection=connection,
                title="Signed in: confirm in the portal",
                message="Microsoft signed you in. Nothing is linked yet: go back to the portal "
                "window and confirm the organization and the account shown there.",
                fix="",
                code=None,
            )
        )
        clear_flow_cookie(response)
        return response
    outcome = delegated_link.complete(
        connection, signed_in, token_cache, required=settings.required_scopes, actor=flow.user_id
    )
    # Top level: leave the callback URL at once (RFC 9700 4.3.1: no code in the history,
    # no form resubmission). No flash message: on the cross-site form_post the Lax session
    # cookie is not sent, and writing a session here would replace the user's.
    if outcome == "held":
        page = url_for(".page", connection_id=connection.id)
    else:
        page = url_for(".page", connection_id=connection.id, linked=1)
    response = make_response(redirect(page, code=303))
    clear_flow_cookie(response)
    return response


def _claim_text(claims: dict, name: str) -> str | None:
    value = claims.get(name)
    return value[:256] if isinstance(value, str) else None
