"""Flask-side access to ``portal.entra``: the app's cloud table, loaded once per process.

``portal.entra`` knows nothing of Flask; this module is the one place that hands it the
configuration (the clouds file) so that blueprints ask for ``cloud_table()`` and never load or
build cloud data themselves.
"""

from __future__ import annotations

from flask import current_app

from portal.entra.clouds import Cloud, CloudTable, load_cloud_table

_EXTENSION = "portal.clouds"


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
    table = load_cloud_table(app.config.get("CLOUDS_FILE"))
    app.extensions[_EXTENSION] = table
    login_origins = sorted({_origin(cloud.login_base) for cloud in table.all()})
    extra = list(app.config.get("CSP_FORM_ACTION_EXTRA") or [])
    app.config["CSP_FORM_ACTION_EXTRA"] = extra + [o for o in login_origins if o not in extra]


def _origin(base_url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"
