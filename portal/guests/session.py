"""A guest's portal session: how it begins and ends, whom its pages may be framed by, and the
pages it may reach (checked before every request, ``check_request``).

A guest has no password, so nothing can re-authenticate one: a guest session is short
(``GUEST_SESSION_MINUTES``, default 60, from the moment the token or link was traded) and counts
as freshly authenticated for all of it; when it ends, the page says how to come back (reopen
from the host product, or open the link again) instead of showing a sign-in form nobody can use.
"""

from __future__ import annotations

import logging
import time

from flask import abort, current_app, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal import htmx, storage

log = logging.getLogger("portal.guests")

#: Session keys: the guest's grant while it lasts, and how it was reached once it ended.
GRANT = "guest"
ENDED = "guest_ended"

#: Every guest may reach these blueprints only: the setup of connections and its answers.
GUEST_BLUEPRINTS = frozenset(
    {"home", "connection", "wizard", "certificates", "consent", "link", "guests"}
)
GUEST_ENDPOINTS = frozenset({"static", "auth.logout"})
#: A setup link's guest: no connection list, no new connection, no deletion.
SETUP_LINK_REFUSED = frozenset({"connection.delete", "wizard.start", "wizard.create"})


def begin(
    user: storage.User,
    *,
    via: str,
    ref: str,
    origins: tuple[str, ...] = (),
    origin: str | None = None,
    return_url: str | None = None,
) -> None:
    """Sign ``user`` in, in a new session (no fixation), bound to this grant."""
    from portal.access import mark_authenticated

    session.clear()
    login_user(user)
    session.permanent = True
    mark_authenticated(new_sign_in=True)
    session[GRANT] = {
        "via": via,
        "ref": ref,
        "origins": list(origins),
        "origin": origin,
        "return_url": return_url,
    }


def grant() -> dict | None:
    value = session.get(GRANT)
    return value if isinstance(value, dict) else None


def lifetime_seconds() -> int:
    return int(current_app.config["GUEST_SESSION_MINUTES"]) * 60


def end(via: str) -> None:
    """End the guest's session, remembering how to say it ended."""
    logout_user()
    session.clear()
    session[ENDED] = via


def ended_via() -> str | None:
    value = session.get(ENDED)
    return value if value in ("connect_session", "setup_link") else None


def frame_ancestors(configured: list[str]) -> list[str]:
    """The origins this response may be framed by: a connect session's pages only by the
    origins its token allowed (and the deployment allows); a setup link's pages by none (they
    are opened from an email, at top level); anyone else's as configured."""
    held = grant()
    if held is None:
        return configured
    if held.get("via") != "connect_session":
        return []
    return [origin for origin in held.get("origins") or () if origin in configured]


def parent_origin() -> str | None:
    """The host page a connect session's frame reports its events to (exact origin)."""
    held = grant()
    if held and held.get("via") == "connect_session":
        return held.get("origin")
    return None


def return_url() -> str | None:
    """Where the host asked its page to go when the user closes the portal (checked at mint)."""
    held = grant()
    if held and held.get("via") == "connect_session":
        return held.get("return_url")
    return None


def started_at() -> float | None:
    from portal.access import SIGNED_IN_AT

    value = session.get(SIGNED_IN_AT)
    return float(value) if isinstance(value, (int, float)) else None


def check_request():
    """before_request: keep a guest to what their grant allows."""
    if not current_user.is_authenticated or not current_user.is_guest:
        return None
    held = grant()
    started = started_at()
    if held is None or started is None or time.time() - started > lifetime_seconds():
        log.info("guest session of user %s ended (lifetime)", current_user.id)
        end(current_user.sign_in)
        return _to_ended_page()
    endpoint = request.endpoint or ""
    blueprint = endpoint.partition(".")[0]
    if endpoint not in GUEST_ENDPOINTS and blueprint not in GUEST_BLUEPRINTS:
        abort(404)
    if current_user.sign_in == "setup_link":
        return _check_setup_link(held, endpoint)
    return None


def _check_setup_link(held: dict, endpoint: str):
    from portal.guests import setup_links

    link = storage.get_setup_link(str(held.get("ref")))
    problem = setup_links.why_unusable(link, for_session=True)
    if problem is not None:
        log.info("setup link session ended: %s", problem)
        end("setup_link")
        return _to_ended_page()
    assert link is not None
    only = current_user.only_connection_id
    named = (request.view_args or {}).get("connection_id")
    if endpoint in SETUP_LINK_REFUSED:
        abort(403)
    if named is not None and named != only:
        abort(404)
    if named is None and endpoint.partition(".")[0] in ("home", "connection", "wizard"):
        if request.method != "GET":
            abort(404)
        return redirect(url_for("connection.page", connection_id=only))
    if link.spent_at is not None and request.method not in ("GET", "HEAD"):
        abort(403)
    return None


def _to_ended_page():
    target = url_for("guests.ended")
    if htmx.is_htmx():
        return htmx.hx_redirect(target)
    return redirect(target, code=303)
