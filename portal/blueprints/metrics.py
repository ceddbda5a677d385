"""``GET /metrics``: the Prometheus exposition, for a scraper holding the metrics token.

Without ``METRICS_TOKEN`` the route does not exist to anyone (404). With it, the request must
carry ``Authorization: Bearer <token>`` (RFC 6750 section 2.1), compared in constant time; any
other request gets 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 section 3). No answer of this
route ever sets a cookie: a scraper has no session, and a browser that happens to send one must
not have it refreshed or cleared here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import NotFound

from portal import logs, metrics
from portal.security import csrf

bp = Blueprint("metrics", __name__)
log = logging.getLogger("portal.metrics")
csrf.exempt(bp)  # GET only; a scraper has neither a session nor a CSRF token

REALM = 'Bearer realm="metrics"'


@bp.record_once
def _observe_outbound_calls(state) -> None:
    """Registering this blueprint (in ``create_app``) starts counting calls to Microsoft."""
    metrics.init_app(state.app)


class CookielessResponse(Response):
    """A response on which setting or deleting a cookie does nothing: the session interface
    and flask-login both go through these two methods."""

    def set_cookie(self, *args, **kwargs) -> None:
        return None

    def delete_cookie(self, *args, **kwargs) -> None:
        return None


def _cookieless(response: Response) -> CookielessResponse:
    return CookielessResponse(
        response.get_data(), status=response.status_code, headers=response.headers
    )


def presented_token() -> str | None:
    """The bearer token of the Authorization header (the scheme is case-insensitive)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _same(presented: str, expected: str) -> bool:
    """Constant time, also in the length (both sides are hashed to 32 bytes first)."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


@bp.get("/metrics")
@logs.quiet
def scrape():
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        from portal.error_pages import http_error

        return _cookieless(current_app.make_response(http_error(NotFound())))
    token = presented_token()
    if token is None or not _same(token, str(expected)):
        log.info("metrics: request without the right token refused")
        response = _cookieless(Response("Unauthorized\n", 401, mimetype="text/plain"))
        response.headers["WWW-Authenticate"] = (
            REALM if token is None else f'{REALM}, error="invalid_token"'
        )
        return response
    body, content_type = metrics.exposition()
    response = CookielessResponse(body, 200, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
