"""The host API under ``/api/v1``: JSON for the host product, authenticated by API keys.

``bp`` is the one blueprint; its views live in ``organizations`` and ``connections`` (and the
document in ``meta``). ``boundary`` gives every /api request its request id and no cookie
session, ``auth`` the key and its scopes, ``problems`` the errors (RFC 9457), ``openapi`` the
document generated from ``models``.
"""

from __future__ import annotations

from flask import Blueprint
from werkzeug.exceptions import HTTPException

from portal.api import boundary, problems
from portal.security import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# No cookies are read or set here (boundary.py), so there is nothing for a forged cross-site
# request to ride on: the key in the Authorization header is the only credential.
csrf.exempt(bp)
bp.register_error_handler(problems.ApiProblem, problems.handle_problem)
bp.register_error_handler(HTTPException, problems.handle_http_error)
bp.register_error_handler(Exception, problems.handle_unexpected)
bp.before_app_request(boundary.before_api_request)
bp.record_once(lambda state: boundary.install(state.app))

from portal.api import (  # noqa: E402, F401  (the routes)
    connect_sessions,
    connections,
    meta,
    organizations,
    setup_links,
)
