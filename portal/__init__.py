"""The customer portal: ``create_app`` builds the app (config, extensions, blueprints, errors).

No database connection and no network I/O happen here: gunicorn forks workers after this runs.
"""

from __future__ import annotations

import logging
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger("portal")


def create_app(test_config: dict | None = None) -> Flask:
    """Build the portal. ``test_config`` replaces instance/config.py and PORTAL_* variables.

    The instance folder is ``instance/`` next to the package, or ``PORTAL_INSTANCE_PATH``
    (``INSTANCE_PATH`` in a test mapping).
    """
    from portal import config

    app = bare_app(test_config)
    config.make_private_dir(app.instance_path)
    config.load(app, test_config)

    from portal import access, cli, logs, security, services
    from portal.storage import db

    logs.init_app(app)
    db.init_app(app)
    services.init_app(app)
    security.init_app(app)
    access.init_app(app)
    cli.init_app(app)

    hops = int(app.config["TRUSTED_PROXY_HOPS"])
    if hops > 0:
        # Flask documents wrapping wsgi_app like this; its type hints declare a method here.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )

    from portal.blueprints import register

    register(app)

    from portal import ratelimit

    ratelimit.init_app(app)  # after the blueprints: it wraps their expensive endpoints
    _register_template_globals(app)

    from portal import error_pages

    error_pages.init_app(app)
    return app


def bare_app(test_config: dict | None = None) -> Flask:
    """The Flask object with its instance folder resolved and nothing else: no configuration,
    no keys, no extensions. ``vault init`` uses it to find ``instance/`` before the keys that
    ``create_app`` insists on exist."""
    if test_config is not None:
        instance_path = test_config.get("INSTANCE_PATH")
    else:
        instance_path = os.environ.get("PORTAL_INSTANCE_PATH")
    return Flask(
        __name__,
        instance_relative_config=True,
        instance_path=os.path.abspath(instance_path) if instance_path else None,
    )


def _register_template_globals(app: Flask) -> None:
    from portal import config

    app.jinja_env.globals.update(
        htmx_src=config.HTMX_PATH, htmx_sri=config.HTMX_SRI, portal_demo=app.config["DEMO"]
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.context_processor
    def portal_context():
        from flask_login import current_user

        from portal import storage

        def current_org():
            if current_user.is_authenticated and current_user.org_id is not None:
                return storage.get_organization(current_user.org_id)
            return None

        from portal.guests import session as guest_session

        return {
            "current_org": _Lazy(current_org),
            "embed_parent_origin": guest_session.parent_origin(),
            "embed_return_url": guest_session.return_url(),
        }


class _Lazy:
    """A template value computed on first use (no query for pages that do not show it)."""

    def __init__(self, fn):
        self._fn = fn
        self._done = False
        self._value = None

    def _get(self):
        if not self._done:
            self._value, self._done = self._fn(), True
        return self._value

    def __bool__(self):
        return self._get() is not None

    def __getattr__(self, name):
        return getattr(self._get(), name)
