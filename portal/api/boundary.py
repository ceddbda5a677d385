"""What every request under /api gets before a view runs: its request id, no session, and
routing errors (unknown path, wrong method) answered as problems.

No cookie session: the API authenticates by key only. Flask opens the cookie session of every
request before any hook runs, so the session interface is wrapped to open none (a null session,
which refuses writes) for /api paths: a portal session cookie sent to the API is never read,
never refreshed, and no ``Set-Cookie`` is ever sent back. Without a cookie there is no ambient
authority for another site to ride on, which is why the API blueprint is exempt from CSRF
tokens (a cross-site page cannot add the ``Authorization`` header, and with no CORS headers
the browser will not send a cross-origin request that carries one). A request that brings the
portal's cookie and no key is answered like any request without a key (401, with a detail that
says the cookie is not used here); with a key the cookie is simply ignored: refusing it would
protect nothing, since the cookie is never read.
"""

from __future__ import annotations

import re
from typing import Any

from flask import g, request
from flask.sessions import SessionInterface

from portal.api import problems

PREFIX = "/api/"
#: An incoming X-Request-Id is echoed only when it is this safe: letters, digits and ``._-``,
#: at most 128 characters. Anything else (a header injection, a log forgery, a huge value) is
#: replaced by our own id.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def is_api_path(path: str) -> bool:
    return path.startswith(PREFIX)


class _NoSessionForApi(SessionInterface):
    """The app's session interface, except that /api requests get a null session."""

    def __init__(self, inner: SessionInterface) -> None:
        self._inner = inner

    def open_session(self, app, request):
        if is_api_path(request.path):
            return None  # Flask then makes a null session, which is never saved
        return self._inner.open_session(app, request)

    def save_session(self, app, session, response) -> None:
        self._inner.save_session(app, session, response)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


# The cookie settings are methods of the base class, so __getattr__ never sees them: forward
# them too, so anything asking the app's interface gets the portal's answers (Secure, ...).
for _name in (
    "get_cookie_name",
    "get_cookie_domain",
    "get_cookie_path",
    "get_cookie_httponly",
    "get_cookie_secure",
    "get_cookie_samesite",
    "get_cookie_partitioned",
    "get_expiration_time",
    "should_set_cookie",
):
    setattr(
        _NoSessionForApi,
        _name,
        lambda self, *args, _name=_name: getattr(self._inner, _name)(*args),
    )


def adopt_request_id() -> None:
    incoming = request.headers.get("X-Request-Id", "")
    if _SAFE_REQUEST_ID.match(incoming):
        g.request_id = incoming


def before_api_request():
    """before_app_request: the request id, then routing errors as problems."""
    if not is_api_path(request.path):
        return None
    adopt_request_id()
    error = request.routing_exception
    if error is not None and getattr(error, "code", None) in (404, 405):
        return problems.handle_http_error(error)
    return None


def install(app: Any) -> None:
    """Wrap the app's session interface (``app`` is the Flask app the blueprint joined)."""
    if not isinstance(app.session_interface, _NoSessionForApi):
        app.session_interface = _NoSessionForApi(app.session_interface)
