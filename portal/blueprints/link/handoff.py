"""The popup's handoff: inside the host's frame Microsoft's sign-in cannot be shown, so the
framed page opens a popup on a one-time handoff. The popup has its own top-level site without
the iframe's cookies; it answers only the portal's own page and continues to Microsoft only
after the admin confirms who starts the sign-in and for what (docs/decisions/0004)."""

from __future__ import annotations

import logging
import secrets

from flask import abort, make_response, render_template, request

from portal import storage
from portal.blueprints.link import bp
from portal.blueprints.link.binding import FLOW_TTL, opened_by_the_portal, popup_cookie_name
from portal.blueprints.link.start import start_flow
from portal.security import csrf, no_referrer

log = logging.getLogger("portal.link")


def _handoff_refused(reason: str, status: int = 400):
    log.warning("handoff refused: %s", reason)
    return render_template(
        "link/rejected.html",
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
    if not opened_by_the_portal():
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
            "link/handoff.html",
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
    if not opened_by_the_portal():
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
    storage.audit_connection(
        "connection.link_handoff_confirmed",
        connection,
        actor=user.id,
    )
    response = start_flow(connection, user.id, handoff_id=found.id)
    response.delete_cookie(
        popup_cookie_name(), path="/", secure=True, httponly=True, samesite="Strict"
    )
    return response
