"""Flask-side access to ``portal.entra``: the app's cloud table and caches, made once per app.

``portal.entra`` knows nothing of Flask; this module is the one place that hands it the
configuration (the clouds file) and the caches it may use, so that blueprints ask for
``cloud_table()`` / ``caches()`` and never load or build cloud data themselves. The caches belong
to the app (``app.extensions``), not to the process: each app (each test) starts with empty ones,
and nothing has to clear globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from portal.config import retry_policy
from portal.entra.clouds import Cloud, CloudTable, load_cloud_table
from portal.entra.idtoken import JwksCache
from portal.entra.tenant import DiscoveryCache

_EXTENSION = "portal.clouds"
_CACHES = "portal.caches"


@dataclass
class Caches:
    """What the app remembers between requests. All of it is public data (tenant discovery
    answers, signing keys, OpenID metadata) or derived from no secret."""

    #: Tenant discovery answers (5 minutes; portal.entra.tenant).
    discovery: DiscoveryCache = field(default_factory=DiscoveryCache)
    #: Signing keys of the tenants' id tokens (an hour; portal.entra.idtoken).
    jwks: JwksCache = field(default_factory=JwksCache)
    #: MSAL's HTTP cache for the ``organizations`` OpenID document of our multi-tenant app (one
    #: discovery per app instead of one per Link Account click).
    msal_http: dict = field(default_factory=dict)
    #: A password hash per hash method, checked when an account does not exist (same timing).
    dummy_hashes: dict[str, str] = field(default_factory=dict)


def caches() -> Caches:
    """The current app's caches."""
    return current_app.extensions[_CACHES]


def cloud_table() -> CloudTable:
    """The built-in national clouds plus those of ``CLOUDS_FILE`` (the simulator in demo/tests)."""
    return current_app.extensions[_EXTENSION]


def find_cloud(key: str | None) -> Cloud | None:
    """The configured cloud with this key, or None (nothing chosen yet, or a cloud no longer
    configured): callers show a message, never an error page."""
    if not key:
        return None
    try:
        return cloud_table().get(key)
    except KeyError:
        return None


def init_app(app) -> None:
    """Load the cloud table (a local JSON file, no network) and allow its login hosts as form
    targets: a form POST that answers with a redirect to the authorize or admin-consent endpoint
    is checked against CSP ``form-action`` in Chromium."""
    table = load_cloud_table(app.config.get("CLOUDS_FILE")).with_retry(retry_policy(app.config))
    app.extensions[_EXTENSION] = table
    app.extensions[_CACHES] = Caches()
    login_origins = sorted({_origin(cloud.login_base) for cloud in table.all()})
    extra = list(app.config.get("CSP_FORM_ACTION_EXTRA") or [])
    app.config["CSP_FORM_ACTION_EXTRA"] = extra + [o for o in login_origins if o not in extra]


def _origin(base_url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"
