"""The simulator's Flask app factory and the per-listener WSGI wrapper.

One Flask app serves every national-cloud listener; `Listener` tells it which cloud (and which base
URL) a request arrived on, so a tenant of one cloud is not found in another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import Flask, Response, g, jsonify, request

from . import catalog
from .errors import aadsts_body, graph_error
from .faults import DroppedConnection, Faults, drop_connection
from .state import Store
from .tokens import Signer


@dataclass
class Sim:
    """Everything a running simulator holds in memory."""

    store: Store = field(default_factory=Store)
    signer: Signer = field(default_factory=Signer)
    faults: Faults = field(default_factory=Faults)
    # `serve --latency-ms`: added to every named endpoint; survives reset.
    base_latency_ms: int = 0
    # Pending sign-in / consent pages ("page" interaction mode), by id; memory only.
    pending: dict = field(default_factory=dict)

    def reset(self) -> None:
        self.store.clear()
        self.faults.reset()
        self.pending.clear()


# Flask endpoint -> public endpoint name (for faults and the request log; see README).
ENDPOINT_NAMES = {
    "identity.openid_configuration": "openid-configuration",
    "identity.keys": "keys",
    "identity.authorize": "authorize",
    "identity.token": "token",
    "identity.adminconsent_v1": "adminconsent",
    "identity.adminconsent_v2": "adminconsent",
    "graph.organization": "graph.organization",
    "graph.service_principal_by_app_id": "graph.serviceprincipal",
    "graph.service_principal": "graph.serviceprincipal",
    "graph.app_role_assignments": "graph.approleassignments",
    "graph.role_assignments": "graph.roleassignments",
    "graph.me": "graph.me",
    "graph.users": "graph.users",
}


def current_sim() -> Sim:
    from flask import current_app

    return current_app.extensions["entrasim"]


def cloud_key() -> str:
    return request.environ.get("entrasim.cloud", "global")


def base_url() -> str:
    return request.environ.get("entrasim.base") or request.host_url.rstrip("/")


def create_app(sim: Sim | None = None) -> Flask:
    app = Flask(__name__)
    app.extensions["entrasim"] = sim or Sim()
    # The simulator is a test and demo tool: sessions are not used; CSRF tokens are HMACs over
    # this per-process key (admin_center.py).
    app.config["SECRET_KEY"] = __import__("secrets").token_hex(32)
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # forms and certificate uploads are small

    @app.template_filter("timestamp")
    def _timestamp(value):
        from .errors import utc_stamp

        return utc_stamp(float(value))

    from .admin import bp as admin_bp
    from .admin_center import bp as admin_center_bp
    from .graph import bp as graph_bp
    from .identity import bp as identity_bp
    from .interaction import bp as interaction_bp

    app.register_blueprint(identity_bp)
    app.register_blueprint(interaction_bp)
    app.register_blueprint(graph_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(admin_center_bp)

    @app.before_request
    def apply_faults():
        g.sim_endpoint = name = ENDPOINT_NAMES.get(request.endpoint or "")
        if not name:
            return None
        s = current_sim()
        if s.base_latency_ms:
            time.sleep(s.base_latency_ms / 1000)
        fault = s.faults.take(name, cloud_key())
        if fault is None:
            return None
        if fault.kind == "latency":
            time.sleep((fault.ms or 0) / 1000)
            return None
        if fault.kind == "status":
            return _status_fault(name, fault.status, fault.retry_after)
        if fault.kind == "hang":
            s.faults.wait(fault.seconds if fault.seconds is not None else 60)
        request.environ["entrasim.drop"] = True  # hang ends in a dropped connection too
        return Response(b"")

    @app.after_request
    def default_csp(response):
        # The simulator's own pages (sign-in, form_post, errors) load scripts only from its origin
        # and are never framed. No form-action: the form_post page posts to the client's origin.
        if response.mimetype == "text/html":
            response.headers.setdefault(
                "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"
            )
        return response

    @app.after_request
    def log_request(response):
        name = getattr(g, "sim_endpoint", None)
        if name:
            s = current_sim()
            dropped = request.environ.get("entrasim.drop")
            s.faults.record(
                {
                    "endpoint": name,
                    "method": request.method,
                    "path": request.path,
                    "cloud": cloud_key(),
                    "status": None if dropped else response.status_code,
                    "at": s.store.now(),
                }
            )
        return response

    return app


#: Retry-After of a 429 when the fault names none. Entra: for client credentials "429 Too Many
#: Requests, with a Retry-After: 60 header"
#: (https://learn.microsoft.com/entra/msal/dotnet/advanced/client-and-server-throttling); the
#: other identity endpoints get the same (simulator choice). Graph: a throttled request's
#: "suggested wait time is returned in the response header"
#: (https://learn.microsoft.com/graph/throttling); its value is not documented (simulator
#: choice: 10).
IDENTITY_429_RETRY_AFTER = 60
GRAPH_429_RETRY_AFTER = 10


def _status_fault(name: str, status: int, retry_after: int | None):
    s = current_sim()
    now = s.store.now()
    if status == 429 and retry_after is None:
        graph = name.startswith("graph.")
        retry_after = GRAPH_429_RETRY_AFTER if graph else IDENTITY_429_RETRY_AFTER
    if name.startswith("graph."):
        # Graph's error shape {"error": {"code", "message", "innerError"}} and its codes:
        # https://learn.microsoft.com/graph/errors (serviceNotAvailable: "Try the request again
        # after a delay. There may be a Retry-After header"); 429's TooManyRequests as Graph
        # answers it (https://learn.microsoft.com/graph/throttling). gatewayTimeout is a
        # simulator choice (no code for 504 is documented).
        code = {429: "TooManyRequests", 503: "serviceNotAvailable", 504: "gatewayTimeout"}.get(
            status, "generalException"
        )
        resp = graph_error(
            status,
            code,
            "The service is temporarily unavailable." if status != 429 else "Too many requests.",
            now,
        )
    else:
        # `temporarily_unavailable`: "The server is temporarily too busy to handle the request.
        # Retry the request." (https://learn.microsoft.com/entra/identity-platform/
        # reference-error-codes#handling-error-codes-in-your-application); the code 90033 is a
        # simulator choice (Entra documents no AADSTS code for a throttled token request).
        body = aadsts_body(
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
            now,
            base_url(),
        )
        resp = jsonify(body)
        resp.status_code = status
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


class Listener:
    """WSGI wrapper: marks each request with the listener's cloud and base URL; performs drops."""

    def __init__(self, app: Flask, cloud: str, base: str) -> None:
        assert cloud in catalog.CLOUDS
        self.app, self.cloud, self.base = app, cloud, base

    def __call__(self, environ, start_response):
        environ["entrasim.cloud"] = self.cloud
        environ["entrasim.base"] = self.base
        result = self.app(environ, start_response)
        if environ.get("entrasim.drop"):
            if hasattr(result, "close"):
                result.close()
            drop_connection(environ)
        return result


__all__ = [
    "Sim",
    "create_app",
    "Listener",
    "DroppedConnection",
    "current_sim",
    "cloud_key",
    "base_url",
]
