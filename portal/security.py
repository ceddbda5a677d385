"""Security baseline on every response: CSP and framing, headers, cookie policy, CSRF, Origin check.

Framing (https://www.w3.org/TR/CSP3/#frame-ancestors-and-frame-options): views marked
``@embeddable`` send ``frame-ancestors`` with the exact origins of ``FRAME_ANCESTORS`` and no
X-Frame-Options; every other response (and every error) sends ``frame-ancestors 'none'`` plus
``X-Frame-Options: DENY``. Nothing in these headers is ever built from request data.

CSRF: flask-wtf's token on every POST/PUT/PATCH/DELETE (htmx sends it as ``X-CSRFToken`` from
``hx-headers`` on ``<body>``), plus a Fetch-metadata/Origin check that refuses cross-site state
changes (OWASP CSRF cheat sheet). ``@cross_site_post`` exempts a view from both (only for the
OAuth ``form_post`` callback, which is protected by state, PKCE and nonce instead).
"""

from __future__ import annotations

import functools
import logging
import time

from flask import current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

log = logging.getLogger("portal.security")

csrf = CSRFProtect()

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
HSTS = "max-age=31536000; includeSubDomains"
NO_REFERRER_BLUEPRINTS = frozenset({"auth", "link"})
#: Static files other sites load: the host product's page includes the embedding script.
CROSS_ORIGIN_STATIC = frozenset({"embed.js"})

_EMBEDDABLE = "_portal_embeddable"
_NO_REFERRER = "_portal_no_referrer"
_CROSS_SITE_POST = "_portal_cross_site_post"


def embeddable(view):
    """Allow this view's pages to be framed by the configured ``FRAME_ANCESTORS``."""
    setattr(view, _EMBEDDABLE, True)
    return view


def no_referrer(view):
    """Send ``Referrer-Policy: no-referrer`` (auth pages do so automatically)."""
    setattr(view, _NO_REFERRER, True)
    return view


def cross_site_post(view):
    """Accept cross-site POSTs without a CSRF token (OAuth form_post callback only)."""
    setattr(view, _CROSS_SITE_POST, True)
    return csrf.exempt(view)


def _view_flag(name: str) -> bool:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    return bool(getattr(view, name, False))


def is_embeddable_response(response) -> bool:
    """Only successful pages of ``@embeddable`` views may be framed (never errors)."""
    return response.status_code < 400 and _view_flag(_EMBEDDABLE) and not g.get("no_embed")


@functools.lru_cache(maxsize=16)
def _csp(frame_ancestors: tuple[str, ...], form_action_extra: tuple[str, ...]) -> str:
    return _build_csp(list(frame_ancestors), list(form_action_extra))


def content_security_policy(frame_ancestors: list[str], form_action_extra: list[str]) -> str:
    """The CSP string for a response (built once per configuration: inputs come from it only)."""
    return _csp(tuple(frame_ancestors), tuple(form_action_extra))


def _build_csp(frame_ancestors: list[str], form_action_extra: list[str]) -> str:
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    form_action = " ".join(["'self'", *form_action_extra])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        f"form-action {form_action}; frame-ancestors {ancestors}"
    )


def set_security_headers(response):
    """after_request: the headers every response carries."""
    from portal.guests import session as guest_session

    config = current_app.config
    ancestors = guest_session.frame_ancestors(config["FRAME_ANCESTORS"])
    framed = is_embeddable_response(response) and bool(ancestors)
    response.headers["Content-Security-Policy"] = content_security_policy(
        ancestors if framed else [], config["CSP_FORM_ACTION_EXTRA"]
    )
    if framed:
        response.headers.pop("X-Frame-Options", None)
    else:
        response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if _view_flag(_NO_REFERRER) or request.blueprint in NO_REFERRER_BLUEPRINTS:
        response.headers["Referrer-Policy"] = "no-referrer"
    else:
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault(
        "Cross-Origin-Opener-Policy", "same-origin-allow-popups" if framed else "same-origin"
    )
    if request.endpoint == "static" and (request.view_args or {}).get("filename") in (
        CROSS_ORIGIN_STATIC
    ):
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = HSTS
    return response


def framed_navigation() -> bool:
    """True when the browser is navigating a frame (Fetch metadata ``Sec-Fetch-Dest``): a
    response that redirects to Microsoft's sign-in or consent page would be refused there."""
    return request.headers.get("Sec-Fetch-Dest") in ("iframe", "frame")


def own_origin() -> str:
    return f"{request.scheme}://{request.host}"


def check_origin():
    """before_request: refuse cross-site state changes (Sec-Fetch-Site, then Origin)."""
    if request.method not in UNSAFE_METHODS or _view_flag(_CROSS_SITE_POST):
        return None
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        # The browser's own verdict wins when it gives one. A same-origin form posted from a
        # page with ``Referrer-Policy: no-referrer`` (our sign-in page) carries ``Origin: null``,
        # so the Origin header is only consulted for browsers that send no fetch metadata.
        if site not in {"same-origin", "none"}:
            _reject(f"Sec-Fetch-Site {site}")
        return None
    origin = request.headers.get("Origin")
    if origin is not None:
        allowed = {own_origin(), *current_app.config["TRUSTED_ORIGINS"]}
        if origin not in allowed:
            _reject(f"Origin {origin}")
    return None


def _reject(reason: str):
    from flask_wtf.csrf import CSRFError

    raise CSRFError(f"Cross-site request refused ({reason}).")


#: A signed-in (permanent) session's cookie is re-issued — which slides its idle expiry — at most
#: this often rather than on every request: re-signing and re-sending it on each request was the
#: largest avoidable cost of a small fragment (bench/validate.py). Idle expiry stays within this
#: much of ``SESSION_HOURS``.
SESSION_REFRESH_SECONDS = 300
_REFRESHED_AT = "_refreshed_at"


class PortalSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session; ``Secure`` except plain http on loopback in development."""

    def should_set_cookie(self, app, session) -> bool:
        if session.modified:
            return True
        if not (session.permanent and app.config["SESSION_REFRESH_EACH_REQUEST"]):
            return False
        return time.time() - session.get(_REFRESHED_AT, 0) >= SESSION_REFRESH_SECONDS

    def save_session(self, app, session, response) -> None:
        if session and self.should_set_cookie(app, session):
            session[_REFRESHED_AT] = int(time.time())
        super().save_session(app, session, response)

    def get_cookie_secure(self, app) -> bool:
        if app.config.get("SESSION_COOKIE_PARTITIONED"):
            return True
        if app.config["ENV"] == "development" and request and not request.is_secure:
            return request.host.rsplit(":", 1)[0] not in LOOPBACK_HOSTS
        return True


def init_app(app) -> None:
    app.session_interface = PortalSessionInterface()
    app.before_request(check_origin)
    csrf.init_app(app)
    app.after_request(set_security_headers)
