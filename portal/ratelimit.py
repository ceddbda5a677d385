"""Rate limits on the actions that cost real work or start something at Microsoft.

Failed sign-ins are counted in SQLite (``portal.store``), where every worker sees them. The limits
here guard our CPU (a certificate is a new RSA key) and Microsoft's endpoints (discovery, token
requests, consent flows) against a runaway script or a stuck browser tab, per signed-in user.
They use flask-limiter with the storage named by ``RATELIMIT_STORAGE_URI``: ``memory://`` by
default, which counts per worker process (N workers allow up to N times the limit); a shared store
such as ``redis://`` makes the count exact.
"""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_login import current_user

#: Endpoint → limit (flask-limiter syntax). Plenty for a person; a loop hits them quickly.
LIMITS = {
    "wizard.create": "30 per hour",
    "wizard.save_cloud": "120 per 10 minutes",  # a tenant already typed is looked up again
    "wizard.save_ids": "120 per 10 minutes",  # each change may run a tenant discovery
    "wizard.registered": "10 per 10 minutes",  # issues the first certificate
    "certificates.create": "10 per 10 minutes",
    "consent.start": "20 per 10 minutes",
    "certificates.rotate": "10 per 10 minutes",  # issues the next certificate
    "certificates.confirm": "60 per 10 minutes",  # a full verification
    "connection.check": "60 per 10 minutes",  # a full verification against Microsoft
    "link.start": "20 per 10 minutes",
    "link.create_handoff": "20 per 10 minutes",
}

_EXTENSION = "portal.limiter"


def _who() -> str:
    """The signed-in user (every limited route requires one); the address otherwise."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"address:{request.remote_addr}"


def limiter_of(app) -> Limiter:
    return app.extensions[_EXTENSION]


def init_app(app) -> None:
    """A limiter per app (so two apps, as in tests, never share counters), applied to the
    endpoints of ``LIMITS`` once every blueprint is registered."""
    limiter = Limiter(
        key_func=_who,
        app=app,
        storage_uri=app.config["RATELIMIT_STORAGE_URI"],
        headers_enabled=True,
    )
    app.extensions[_EXTENSION] = limiter
    for endpoint, limit in LIMITS.items():
        view = app.view_functions.get(endpoint)
        if view is not None:
            app.view_functions[endpoint] = limiter.limit(limit)(view)
