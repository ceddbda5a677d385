"""Link Account for service-provider connections: delegated consent to our multi-tenant app.

Authorization code + PKCE + nonce through MSAL (``response_mode=form_post``), the flow kept
server-side under a random ``state`` and bound to the browser by a short-lived flow cookie; the
callback redeems the code, validates the id token itself (:mod:`portal.entra.idtoken`: MSAL 1.39
does not) and hands the result to :mod:`portal.delegated_link`. Inside the host's iframe the
sign-in runs in a popup started from a one-time handoff that only the portal's own page can open,
after a confirmation in the popup; the result waits until the iframe's session confirms it (the
iframe polls ``link-status``). RFC 9700 sections 2.1, 4.2.4, 4.7;
docs/decisions/0002-delegated-consent-in-a-popup.md, 0004-handoff-bound-to-its-session.md.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from portal import htmx, storage
from portal.access import (
    admin_required,
    fresh_auth_required,
    load_connection_or_404,
    login_required,
)
from portal.connections import delegated_link, lifecycle
from portal.connections.delegated_link import SignedIn, missing_scopes
from portal.connections.service_provider import (
    CALLBACK_PATH,
    SpSettings,
    read_settings,
)
from portal.entra import idtoken
from portal.entra.client import (
    EntraClient,
)
from portal.entra.clouds import Cloud, http_session
from portal.entra.errors import classify_redirect_error
from portal.security import cross_site_post, csrf, embeddable, framed_navigation, no_referrer
from portal.services import caches, cloud_table

bp = Blueprint("oauth", __name__)
log = logging.getLogger("portal.oauth")

FLOW_TTL = 600  # seconds: state, flow cookie and handoff all live at most 10 minutes


def sp_settings() -> SpSettings:
    """The operator's settings of our app, read by the one reader (the certificate file is
    parsed once per change, in the app's cache)."""
    return read_settings(
        current_app.config,
        current_app.instance_path,
        current_app.extensions.setdefault("portal.sp_cert", {}),
    )


def _cloud_for(connection: storage.Connection, settings: SpSettings) -> tuple[Cloud | None, str]:
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


# --- Browser binding ---------------------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def flow_cookie_name() -> str:
    """``__Host-`` when the public URL is https (Secure, Path=/, no Domain)."""
    public = str(current_app.config.get("PUBLIC_URL") or "")
    return "__Host-portal_oauth_flow" if public.startswith("https://") else "portal_oauth_flow"


def _set_flow_cookie(response, value: str) -> None:
    # SameSite=None: the form_post callback is a cross-site POST from the login host, and Lax
    # cookies are not sent on it. Secure is required with None (RFC 6265bis); Chromium and
    # Firefox treat http://localhost as secure, so development on loopback works too. Not
    # Partitioned: it is set and read in top-level documents (redirect or popup) only.
    response.set_cookie(
        flow_cookie_name(),
        value,
        max_age=FLOW_TTL,
        path="/",
        secure=True,
        httponly=True,
        samesite="None",
    )


def _clear_flow_cookie(response) -> None:
    response.delete_cookie(
        flow_cookie_name(), path="/", secure=True, httponly=True, samesite="None"
    )


def _session_binding() -> str:
    """A per-session random value (hashed) that ties handoffs and their results to this
    browser session; the iframe's session is the only one that can read the result."""
    sid = session.get("link_sid")
    if not sid:
        sid = session["link_sid"] = secrets.token_urlsafe(32)
    return _digest(sid)


def _existing_session_binding() -> str | None:
    sid = session.get("link_sid")
    return _digest(sid) if sid else None


# --- Pages and fragments -----------------------------------------------------------------------


def _unavailable(settings: SpSettings | None, reason: str | None = None):
    """Operator: what to fix. Customer: not available yet, contact support."""
    details = list(settings.problems if settings else ()) + ([reason] if reason else [])
    log.warning("Link Account unavailable: %s", " ".join(details))
    operator = current_user.is_authenticated and current_user.is_support
    return render_template("pages/oauth_unavailable.html", details=details, operator=operator), 503


def _require_service_provider(connection: storage.Connection) -> None:
    if connection.kind != "service_provider":
        abort(404)


def panel_context(
    connection: storage.Connection, blocked: bool = False, stale: bool = False
) -> dict:
    """What the service-provider panel shows (also used by the wizard's connection page).
    ``stale``: a confirmation was answered that no longer waited (expired, or answered
    elsewhere)."""
    settings = sp_settings()
    cloud, cloud_problem = _cloud_for(connection, settings) if settings.ok else (None, "")
    attempt = None
    binding = _existing_session_binding()
    if binding:
        attempt = storage.latest_link_attempt(connection.id, binding)
    now = time.time()
    pending = attempt is not None and attempt.pending(now)
    # (A GET changes nothing: an expired result is destroyed by the next flow or the cron.)
    confirming = (
        attempt is not None
        and attempt.outcome == "confirm"
        and (attempt.finished_at or 0) + storage.CONFIRM_TTL_SECONDS > now
    )
    # A finished attempt is shown for a while (the iframe's answer), then the panel is plain.
    recent = (
        attempt is not None
        and attempt.outcome is not None
        and (attempt.finished_at or 0) > now - FLOW_TTL
    )
    required = settings.required_scopes
    return {
        "connection": connection,
        "available": settings.ok and cloud is not None,
        "operator_details": list(settings.problems) + ([cloud_problem] if cloud_problem else []),
        "required": required,
        "missing": missing_scopes(connection, required) if connection.consented_at else [],
        "to_request": scopes_to_request(connection, required),
        "attempt": attempt,
        "pending": pending,
        # An unfinished attempt that ran out of time is mentioned for a while, then forgotten.
        "expired": attempt is not None
        and attempt.outcome is None
        and not pending
        and now < attempt.expires_at + FLOW_TTL,
        "recent": recent,
        "blocked": blocked,
        "stale": stale,
        # A result that was not confirmed in time is mentioned for a while, then forgotten.
        "unconfirmed": attempt is not None
        and attempt.outcome in ("confirm", "expired")
        and not confirming
        and now < (attempt.finished_at or 0) + storage.CONFIRM_TTL_SECONDS + FLOW_TTL,
        "can_link": current_user.is_authenticated and current_user.is_admin,
        # A popup sign-in of this session waits for its confirmation (docs/decisions/0004).
        "confirming": confirming,
        "signed_in": SignedIn.from_dict(attempt.detail["signed_in"])
        if confirming and attempt and "signed_in" in attempt.detail
        else None,
        "confirm_until": datetime.fromtimestamp(
            (attempt.finished_at or 0) + storage.CONFIRM_TTL_SECONDS, UTC
        ).isoformat(timespec="seconds")
        if confirming and attempt
        else None,
        "organization": storage.get_organization(connection.org_id),
        "held": storage.list_link_reviews("held", connection.id),
    }


@bp.app_context_processor
def _panel_helper():
    """``sp_panel(connection)`` for templates that include the service-provider panel."""
    return {"sp_panel": panel_context}


@bp.get("/connections/<connection_id>/link")
@login_required
@embeddable
def link_page(connection_id: str):
    """The service-provider panel on a page of its own (the wizard also includes it)."""
    connection = load_connection_or_404(connection_id)
    _require_service_provider(connection)
    return render_template("pages/oauth_link.html", connection=connection)


@bp.get("/connections/<connection_id>/link-status")
@login_required
@embeddable
def link_status(connection_id: str):
    """The panel fragment: polled every 2 s by the iframe while a popup sign-in is pending."""
    connection = load_connection_or_404(connection_id)
    _require_service_provider(connection)
    body = render_template(
        "fragments/_oauth_panel.html",
        p=panel_context(connection, blocked=request.args.get("blocked") == "1"),
    )
    return htmx.add_vary(make_response(body))


# --- Starting the flow -------------------------------------------------------------------------


def _client(settings: SpSettings, cloud: Cloud, session_) -> EntraClient:
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


def _start_flow(connection: storage.Connection, user_id: int, handoff_id: str | None = None):
    """Create the server-side flow and answer with a redirect to the authorize endpoint."""
    settings = sp_settings()
    if not settings.ok:
        return make_response(_unavailable(settings))
    cloud, why = _cloud_for(connection, settings)
    if cloud is None:
        return make_response(_unavailable(settings, why))
    storage.purge_auth_flows()
    storage.purge_unconfirmed_links()
    scopes = scopes_to_request(connection, settings.required_scopes)
    state = secrets.token_urlsafe(32)
    client = _client(settings, cloud, http_session(cloud_table(), cloud))
    domain_hint = connection.tenant_domain or None
    # select_account: Microsoft shows which account signs in even when single sign-on could
    # finish silently, so no consent completes unseen
    # (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#request-an-authorization-code).
    started = client.initiate_auth_code_flow(
        settings.app()[2], scopes, state=state, prompt="select_account", domain_hint=domain_hint
    )
    if not started.ok or started.state != state or started.auth_uri is None:
        problem = started.problem
        log.error(
            "could not start the delegated sign-in: %s",
            problem.as_dict() if problem else "state not kept",
        )
        return make_response(
            render_template(
                "pages/oauth_result.html",
                ok=False,
                popup=handoff_id is not None,
                connection=connection,
                title="Microsoft sign-in is not reachable",
                message="We could not start the sign-in with Microsoft.",
                fix="Please try again in a few minutes.",
                code=None,
            ),
            502,
        )
    sent = parse_qs(urlsplit(started.auth_uri).query)
    nonce_sent = (sent.get("nonce") or [""])[0]
    cookie = secrets.token_urlsafe(32)
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
                "nonce_sent": nonce_sent,
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
    response = redirect(started.auth_uri, code=303)
    _set_flow_cookie(response, cookie)
    return response


@bp.post("/connections/<connection_id>/link")
@admin_required
@fresh_auth_required
@embeddable
def link(connection_id: str):
    """Link Account (top level): 303 to Microsoft. Posted from inside a frame without script,
    it answers with a page that opens the sign-in in a new tab instead (Microsoft refuses to be
    framed)."""
    connection = load_connection_or_404(connection_id, write=True)
    _require_service_provider(connection)
    if framed_navigation():
        settings = sp_settings()
        if not settings.ok:
            return _unavailable(settings)
        handoff = storage.create_handoff(
            connection_id=connection.id,
            user_id=current_user.id,
            session_binding=_session_binding(),
            ttl=FLOW_TTL,
        )
        return render_template(
            "pages/oauth_link.html",
            connection=connection,
            handoff_url=url_for("oauth.handoff", handoff_id=handoff.id),
        )
    return _start_flow(connection, current_user.id)


@bp.post("/connections/<connection_id>/link/handoff")
@admin_required
@fresh_auth_required
def create_link_handoff(connection_id: str):
    """For the framed panel (``static/link.js``): a one-time handoff for the popup (JSON)."""
    connection = load_connection_or_404(connection_id, write=True)
    _require_service_provider(connection)
    settings = sp_settings()
    if not settings.ok or _cloud_for(connection, settings)[0] is None:
        log.warning("Link Account unavailable: %s", " ".join(settings.problems))
        return jsonify(error="unavailable"), 503
    handoff = storage.create_handoff(
        connection_id=connection.id,
        user_id=current_user.id,
        session_binding=_session_binding(),
        ttl=FLOW_TTL,
    )
    storage.record_audit(
        "connection.link_handoff",
        actor=current_user.id,
        org_id=connection.org_id,
        connection_id=connection.id,
    )
    return jsonify(
        handoff_url=url_for("oauth.handoff", handoff_id=handoff.id),
        status_url=url_for("oauth.link_status", connection_id=connection.id),
    )


def popup_cookie_name() -> str:
    public = str(current_app.config.get("PUBLIC_URL") or "")
    return "__Host-portal_handoff" if public.startswith("https://") else "portal_handoff"


def _opened_by_the_portal() -> bool:
    """The popup (or the new-tab fallback) is navigated by the portal's own page, so the browser
    says ``same-origin``. A link in a mail or a chat is ``none``, another site's page is
    ``cross-site`` or ``same-site``; a browser that sends no Fetch Metadata cannot prove it."""
    return request.headers.get("Sec-Fetch-Site") == "same-origin"


def _handoff_refused(reason: str, status: int = 400):
    log.warning("handoff refused: %s", reason)
    return render_template(
        "pages/oauth_rejected.html",
        popup=True,
        not_from_portal=reason == "not opened by the portal",
    ), status


def _handoff_parties(found: storage.Handoff | None):
    """The user, connection and organization of a handoff, if the user may still link it."""
    user = storage.get_user(found.user_id) if found and found.user_id else None
    connection = storage.get_connection(found.connection_id) if found else None
    if (
        found is None
        or user is None
        or connection is None
        or not user.is_admin
        or user.org_id != connection.org_id
    ):
        return None
    return user, connection, storage.get_organization(connection.org_id)


@bp.get("/oauth/handoff/<handoff_id>")
@no_referrer
def handoff(handoff_id: str):
    """The popup's first page (its own top-level site, without the iframe's cookies). It only
    answers the portal's own page, and links nothing by itself: it names who started the sign-in
    and for what, and continues to Microsoft only when that is confirmed here."""
    if request.method != "GET":
        abort(405)  # Flask answers HEAD with this view too: a HEAD must not open the handoff
    if not _opened_by_the_portal():
        return _handoff_refused("not opened by the portal", 403)
    if not 20 <= len(handoff_id) <= 100:
        return _handoff_refused("malformed id")
    popup_cookie = request.cookies.get(popup_cookie_name()) or secrets.token_urlsafe(32)
    token = secrets.token_urlsafe(32)
    parties = _handoff_parties(storage.open_handoff(handoff_id, popup_cookie[:128], token))
    if parties is None:
        return _handoff_refused("missing, used, expired, opened elsewhere or no longer valid")
    user, connection, organization = parties
    response = make_response(
        render_template(
            "pages/oauth_handoff.html",
            handoff_id=handoff_id,
            token=token,
            user=user,
            connection=connection,
            organization=organization,
        )
    )
    # Strict: only this popup's own same-site requests carry it back. Path=/ because browsers
    # refuse a __Host- cookie with any other path (RFC 6265bis, cookie name prefixes).
    response.set_cookie(
        popup_cookie_name(),
        popup_cookie,
        max_age=FLOW_TTL,
        path="/",
        secure=True,
        httponly=True,
        samesite="Strict",
    )
    return response


@bp.post("/oauth/handoff/<handoff_id>")
@csrf.exempt  # no portal session in the popup: the one-time token and popup cookie stand in
@no_referrer
def handoff_continue(handoff_id: str):
    """The popup's confirmation: burn the handoff and go to Microsoft's sign-in."""
    if not _opened_by_the_portal():
        return _handoff_refused("not posted by the portal's page", 403)
    popup_cookie = request.cookies.get(popup_cookie_name()) or ""
    token = request.form.get("token") or ""
    found = None
    if popup_cookie and token and len(popup_cookie) <= 128 and len(token) <= 128:
        found = storage.consume_confirmed_handoff(handoff_id, popup_cookie, token)
    parties = _handoff_parties(found)
    if found is None or parties is None:
        return _handoff_refused("confirmation without a matching page, cookie or token")
    user, connection, _organization = parties
    storage.record_audit(
        "connection.link_handoff_confirmed",
        actor=user.id,
        org_id=connection.org_id,
        connection_id=connection.id,
    )
    response = _start_flow(connection, user.id, handoff_id=found.id)
    response.delete_cookie(
        popup_cookie_name(), path="/", secure=True, httponly=True, samesite="Strict"
    )
    return response


@bp.post("/connections/<connection_id>/link/confirm")
@admin_required
@embeddable
def confirm_link(connection_id: str):
    """The session that started a popup sign-in confirms (or refuses) the tenant and the
    Microsoft user it is shown; only then is anything linked."""
    connection = load_connection_or_404(connection_id, write=True)
    _require_service_provider(connection)
    binding = _existing_session_binding()
    attempt = storage.latest_link_attempt(connection.id, binding) if binding else None
    handoff_id = request.form.get("handoff", "")
    done = False
    if binding and attempt is not None and attempt.handoff_id == handoff_id:
        if request.form.get("decision") == "confirm":
            done = (
                delegated_link.confirm(
                    connection,
                    handoff_id,
                    binding,
                    required=sp_settings().required_scopes,
                    actor=current_user.id,
                )
                is not None
            )
        else:
            done = delegated_link.cancel(connection, handoff_id, binding, actor=current_user.id)
    if not done:
        log.warning(
            "link confirmation refused for connection %s (nothing of this session's waits)",
            connection.id,
        )
    connection = storage.get_connection(connection.id) or connection
    if htmx.is_htmx():
        body = render_template(
            "fragments/_oauth_panel.html", p=panel_context(connection, stale=not done)
        )
        return htmx.add_vary(make_response(body))
    return redirect(url_for("oauth.link_page", connection_id=connection.id), code=303)


# --- The callback ------------------------------------------------------------------------------


def _rejected(reason: str, *, flow_matched: bool = False):
    """Refuse a callback. The flow cookie is cleared only when the answer belonged to this
    browser's flow: a forged answer (any site can post one) must not end the flow the browser is
    really running."""
    log.warning("OAuth callback rejected: %s", reason)
    response = make_response(render_template("pages/oauth_rejected.html", popup=False), 400)
    if flow_matched:
        _clear_flow_cookie(response)
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
    storage.record_audit(
        "connection.link_failed",
        actor=flow.user_id,
        org_id=connection.org_id,
        connection_id=connection.id,
        detail={"reason": reason, "code": code},
    )
    if extras.get("handoff_id"):
        storage.record_link_outcome(extras["handoff_id"], connection.id, "failed", detail)
    body = render_template(
        "pages/oauth_result.html",
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
    _clear_flow_cookie(response)
    return response


def _id_token_from_cache(cache_text: str) -> str | None:
    import json

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
    cloud, why = _cloud_for(connection, settings) if settings.ok else (None, "")
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


def _redeem(flow, connection, extras, msal_flow, settings, cloud, params):
    session_ = http_session(cloud_table(), cloud)
    client = _client(settings, cloud, session_)
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
        if check.reason == "tenant":
            title, message, fix = (
                "Account from another organization",
                "You signed in with an account of a different organization than the one this "
                "connection belongs to. Nothing was stored.",
                "Click Link Account again and sign in with an administrator account of the "
                "organization of this connection.",
            )
        else:
            title, message, fix = (
                "Sign-in couldn't be confirmed",
                "Microsoft's answer did not pass our checks, so nothing was stored.",
                "Click Link Account again; if it keeps happening, contact support.",
            )
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
                "pages/oauth_result.html",
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
        _clear_flow_cookie(response)
        return response
    outcome = delegated_link.complete(
        connection, signed_in, token_cache, required=settings.required_scopes, actor=flow.user_id
    )
    # Top level: leave the callback URL at once (RFC 9700 4.3.1: no code in the history,
    # no form resubmission). No flash message: on the cross-site form_post the Lax session
    # cookie is not sent, and writing a session here would replace the user's.
    if outcome == "held":
        page = url_for("oauth.link_page", connection_id=connection.id)
    else:
        page = url_for("oauth.link_page", connection_id=connection.id, linked=1)
    response = make_response(redirect(page, code=303))
    _clear_flow_cookie(response)
    return response


def _claim_text(claims: dict, name: str) -> str | None:
    value = claims.get(name)
    return value[:256] if isinstance(value, str) else None
