"""Who may see what: sign-in, roles, and the one loader that checks a connection's organization.

- anonymous → the sign-in page (``HX-Redirect`` to it for htmx requests);
- ``admin`` (a customer's user) → only the connections of their own organization; another
  organization's connection answers 404, exactly like one that does not exist;
- ``support`` → every organization, read-only (``write=True`` → 403), and every view of a
  customer's connection is written to the audit log.

A sign-in lasts at most ``SESSION_MAX_HOURS`` from the moment the password (and second factor)
was entered, however busy the session is (ASVS V7.3.2): the cookie's idle expiry slides with
every request, htmx polling included, so only a recorded sign-in time can end it. Sensitive
actions additionally need that entry to be recent (``fresh_auth_required``, ASVS V7.5).
"""

from __future__ import annotations

import functools
import logging
import time
from urllib.parse import quote, urlsplit

from flask import abort, current_app, jsonify, redirect, request, session, url_for
from flask_login import LoginManager, current_user, logout_user

from portal import htmx, storage
from portal.next_page import safe_next

log = logging.getLogger("portal.access")

#: Session keys: when the user signed in, and when they last proved who they are (sign-in or
#: re-authentication). Epoch seconds; set only by :func:`mark_authenticated`.
SIGNED_IN_AT = "signed_in_at"
AUTHENTICATED_AT = "authenticated_at"

login_manager = LoginManager()
login_manager.session_protection = None  # the session epoch (User.get_id) does the revoking


@login_manager.user_loader
def _load_user(user_id: str):
    """Session value is ``<id>:<epoch>``; a bumped epoch (sign-out) ends the session."""
    raw_id, sep, raw_epoch = user_id.partition(":")
    if not sep or not raw_id.isdigit() or not raw_epoch.isdigit():
        return None
    user = storage.get_user(int(raw_id))
    if user is None or user.session_epoch != int(raw_epoch):
        return None
    return user


@login_manager.unauthorized_handler
def _unauthorized():
    """Not signed in (or the session expired): go to the sign-in page, keeping where we were.
    A guest whose session ended has no password to sign in with: they get the page that says
    how to come back."""
    if session.get("guest_ended"):
        target = url_for("guests.ended")
        return htmx.hx_redirect(target) if htmx.is_htmx() else redirect(target)
    if htmx.is_htmx():
        back = htmx.current_path() or request.full_path.rstrip("?")
        return htmx.hx_redirect(url_for("auth.login", next=back))
    if request.method == "GET":
        target = request.full_path.rstrip("?")
        return redirect(url_for("auth.login") + "?next=" + quote(target, safe="/"))
    return redirect(url_for("auth.login"))


def login_required(view):
    """The user must be signed in (any role)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        return view(*args, **kwargs)

    return wrapped


def roles_required(*roles: str):
    """The user must be signed in with one of ``roles`` (otherwise 403)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                log.warning(
                    "forbidden: user %s (%s) on %s",
                    current_user.id,
                    current_user.role,
                    request.endpoint,
                )
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


admin_required = roles_required("admin")
support_required = roles_required("support")


def mark_authenticated(*, new_sign_in: bool) -> None:
    """Record in the session that the user has just entered their password (+ second factor)."""
    now = time.time()
    session[AUTHENTICATED_AT] = now
    if new_sign_in:
        session[SIGNED_IN_AT] = now


def _seconds_since(key: str) -> float | None:
    value = session.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return time.time() - value


def enforce_session_lifetime():
    """before_request: end a sign-in older than ``SESSION_MAX_HOURS`` (or with no recorded
    sign-in time), so the view sees an anonymous user and sends them to the sign-in page."""
    if "_user_id" not in session:
        return None
    if current_user.is_authenticated and current_user.is_guest:
        return None  # a guest's shorter lifetime: portal/guests/session.py
    age = _seconds_since(SIGNED_IN_AT)
    if age is not None and 0 <= age <= current_app.config["SESSION_MAX_HOURS"] * 3600:
        return None
    log.info("sign-in older than SESSION_MAX_HOURS ended")
    logout_user()
    session.clear()
    return None


def is_fresh() -> bool:
    """The password (+ second factor) was entered within ``REAUTH_MINUTES``. A guest has no
    password: their whole (short) session counts as fresh (portal/guests/session.py)."""
    if current_user.is_authenticated and current_user.is_guest:
        return True
    age = _seconds_since(AUTHENTICATED_AT)
    return age is not None and 0 <= age <= current_app.config["REAUTH_MINUTES"] * 60


def fresh_auth_required(view):
    """Sensitive action: the user must have authenticated within ``REAUTH_MINUTES``; otherwise
    they are sent to re-authenticate and come back to the page the action came from."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not is_fresh():
            return _reauth_response()
        return view(*args, **kwargs)

    return wrapped


def _page_of_the_action() -> str | None:
    """Path and query of the page that sent this request (htmx's header or a same-origin
    Referer), validated like the sign-in's ``next``."""

    page = htmx.current_path() if htmx.is_htmx() else None
    referrer = request.headers.get("Referer")
    if page is None and referrer:
        try:
            parts = urlsplit(referrer)
        except ValueError:  # a malformed Referer (anyone can send one) names no page
            parts = urlsplit("")
        if parts.netloc == request.host:
            page = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if page is None and request.method == "GET":
        page = request.full_path.rstrip("?")
    # Pages of the auth and oauth blueprints send no Referer: a POST to a URL that also
    # serves a page (POST/GET /connections/<id>/link) goes back to that page.
    return safe_next(page) or safe_next(request.path)


def _reauth_response():
    back = _page_of_the_action()
    url = url_for("auth.reauth") + ("?next=" + quote(back, safe="/") if back else "")
    log.info("re-authentication required for %s", request.endpoint)
    if htmx.is_htmx():
        return htmx.hx_redirect(url)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(error="reauth_required", reauth_url=url), 401
    return redirect(url, code=303)


def current_org_id() -> int | None:
    """The signed-in customer admin's organization (None for support and anonymous)."""
    if current_user.is_authenticated and current_user.is_admin:
        return current_user.org_id
    return None


def load_connection_or_404(
    connection_id: str, write: bool = False, deleted_ok: bool = False
) -> storage.Connection:
    """The connection if the signed-in user may see it (and change it, with ``write``).

    Another organization's connection is a 404, never its data. Support may read any
    connection (each read is audited) and may never write (403). A deleted connection is a 404
    too, except for the pages that say it was deleted (``deleted_ok``): nothing acts on it.
    """
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    connection = storage.get_connection(connection_id) if _plausible_id(connection_id) else None
    if connection is None or (connection.deleted and not deleted_ok):
        abort(404)
    if current_user.is_admin:
        if connection.org_id != current_user.org_id:
            log.warning(
                "user %s asked for connection of org %s", current_user.id, connection.org_id
            )
            abort(404)
        return connection
    if current_user.is_support:
        if write:
            log.warning(
                "support user %s tried to change connection %s", current_user.id, connection.id
            )
            abort(403)
        storage.audit_connection(
            "support.view_connection",
            connection,
            actor=current_user.id,
            detail={"endpoint": request.endpoint},
        )
        return connection
    abort(404)


def _plausible_id(connection_id) -> bool:
    text = str(connection_id)
    return 0 < len(text) <= 64 and text.isalnum()


def init_app(app) -> None:
    from portal.guests import session as guest_session

    login_manager.init_app(app)
    app.before_request(enforce_session_lifetime)
    app.before_request(guest_session.check_request)
