"""Guest access in the browser: the frame a connect session is traded in (``/embed``), the
setup link's landing page (``/setup/<token>``), the page a guest sees when their session ended,
and the connection page's "Send this setup to your IT admin" region."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user

from portal import htmx, regions, storage
from portal.access import admin_required, fresh_auth_required, load_connection_or_404
from portal.blueprints.auth import client_address
from portal.guests import connect_sessions, setup_links
from portal.guests import session as guest_session
from portal.security import embeddable, framed_navigation, no_referrer

bp = Blueprint("guests", __name__)
log = logging.getLogger("portal.guests")

#: Session key: this browser loaded ``/embed`` as a frame (a token is traded only there).
FRAMED = "embed_framed"
LINKS_REGION = "guests/_setup_links.html"


@bp.get("/embed")
@embeddable
def embed():
    """The frame ``embed.js`` opens: it says it is ready, receives the token by postMessage and
    trades it (``static/embed-frame.js``). Opened at top level, it says what it is for."""
    framed = framed_navigation()
    session.pop(FRAMED, None)
    if framed:
        session[FRAMED] = True
    return render_template("guests/embed.html", framed=framed)


@bp.post("/embed/session")
def trade():
    """JSON ``{token, origin}`` from the frame's script: the guest session, or why not."""
    body = request.get_json(silent=True) or {}
    origin = body.get("origin")
    if not session.get(FRAMED) or not isinstance(origin, str) or len(origin) > 200:
        return _refused(connect_sessions.refused("origin_not_allowed"), 403)
    result = connect_sessions.trade(body.get("token"), origin)
    if result.code is not None or result.session is None or result.user is None:
        status = 410 if result.code in ("token_used", "token_expired") else 403
        return _refused(result, status)
    found = result.session
    guest_session.begin(
        result.user,
        via="connect_session",
        ref=found.id,
        origins=connect_sessions.frame_origins(found),
        origin=origin,
        return_url=found.return_url,
    )
    return jsonify(next=_first_page(found), return_url=found.return_url)


def _refused(result: connect_sessions.Traded, status: int):
    session.pop(FRAMED, None)
    return jsonify(error=result.code, message=result.message), status


def _first_page(found: storage.ConnectSession) -> str:
    if found.connection_id:
        connection = storage.get_connection(found.connection_id)
        if connection is not None and connection.kind == "customer_owned":
            return url_for("wizard.page", connection_id=connection.id)
        return url_for("connection.page", connection_id=found.connection_id)
    if found.kind:
        return url_for("wizard.start", kind=found.kind)
    return url_for("home.index")


@bp.get("/guest/ended")
@embeddable
def ended():
    """A guest's session ended: how to come back (there is no password to sign in with)."""
    return render_template("guests/ended.html", via=guest_session.ended_via()), 401


@bp.get("/setup/<token>")
@no_referrer
def setup_landing(token: str):
    """The link from the email: what it opens, and a Continue button (a GET changes nothing)."""
    link = setup_links.find(token)
    problem = setup_links.why_unusable(link)
    if problem is not None or link is None:
        return render_template("guests/setup_refused.html", problem=problem), 410
    connection = storage.get_connection_or_raise(link.connection_id)
    org = storage.get_organization(link.org_id)
    return render_template(
        "guests/setup_landing.html", token=token, link=link, connection=connection, org=org
    )


@bp.post("/setup")
@no_referrer
def setup_open():
    """Continue: a guest session for this link's connection, then its setup (a clean URL)."""
    token = request.form.get("token", "")
    link = setup_links.find(token)
    problem = setup_links.why_unusable(link)
    if problem is not None or link is None:
        return render_template("guests/setup_refused.html", problem=problem), 410
    user = setup_links.open_link(link, address=client_address())
    guest_session.begin(user, via="setup_link", ref=link.id)
    connection = storage.get_connection_or_raise(link.connection_id)
    endpoint = "wizard.page" if connection.kind == "customer_owned" else "connection.page"
    return redirect(url_for(endpoint, connection_id=connection.id), code=303)


def _links_context(connection: storage.Connection, issued=None) -> dict:
    return {
        "connection": connection,
        "links": storage.list_setup_links(connection.id),
        "issued": issued,
        "now": storage.utcnow(),
        "max_days": setup_links.MAX_DAYS,
        "default_days": setup_links.DEFAULT_DAYS,
    }


def _load_for_links(connection_id: str) -> storage.Connection:
    if current_user.is_authenticated and current_user.sign_in == "setup_link":
        abort(403)  # a link's visitor does not hand the setup on again
    return load_connection_or_404(connection_id, write=True)


@bp.get("/connections/<connection_id>/setup-links")
@admin_required
@embeddable
def links(connection_id: str):
    connection = _load_for_links(connection_id)
    return regions.render(LINKS_REGION, **_links_context(connection))


@bp.post("/connections/<connection_id>/setup-links")
@admin_required
@fresh_auth_required
def create_link(connection_id: str):
    """A new setup link, shown once with a copy button."""
    connection = _load_for_links(connection_id)
    try:
        days = int(request.form.get("days") or setup_links.DEFAULT_DAYS)
    except ValueError:
        days = 0
    if not 1 <= days <= setup_links.MAX_DAYS:
        context = _links_context(connection)
        context["error"] = f"Choose 1 to {setup_links.MAX_DAYS} days."
        return regions.render(LINKS_REGION, **context), 422
    issued = setup_links.issue(connection, days=days, created_by=f"user:{current_user.id}")
    return regions.render(LINKS_REGION, **_links_context(connection, issued))


@bp.post("/connections/<connection_id>/setup-links/<link_id>/revoke")
@admin_required
def revoke_link(connection_id: str, link_id: str):
    connection = _load_for_links(connection_id)
    link = storage.get_setup_link(link_id) if len(link_id) <= 40 else None
    if link is None or link.connection_id != connection.id:
        abort(404)
    setup_links.revoke(link, revoked_by=f"user:{current_user.id}")
    if htmx.is_htmx():
        return regions.render(LINKS_REGION, **_links_context(connection))
    return redirect(url_for("connection.page", connection_id=connection.id), code=303)
