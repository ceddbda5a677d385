"""The customer portal: ``create_app`` builds the app (config, extensions, blueprints, errors).

No database connection and no network I/O happen here: gunicorn forks workers after this runs.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
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
    _register_error_handlers(app)
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
        from flask import url_for
        from flask_login import current_user

        from portal import storage

        def url_for_if(endpoint: str, **values):
            """url_for, or None while the endpoint does not exist yet (later blueprints)."""
            return url_for(endpoint, **values) if endpoint in app.view_functions else None

        def current_org():
            if current_user.is_authenticated and current_user.org_id is not None:
                return storage.get_organization(current_user.org_id)
            return None

        return {"url_for_if": url_for_if, "current_org": _Lazy(current_org)}


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


def _register_error_handlers(app: Flask) -> None:
    from flask_wtf.csrf import CSRFError

    from portal import htmx, storage
    from portal.connections import lifecycle
    from portal.storage import vault

    def render_error(status: int, title: str, message: str):
        if request.blueprint == "api" or request.accept_mimetypes.best == "application/json":
            return jsonify(error=title, message=message), status
        if htmx.is_htmx():
            body = render_template(
                "fragments/_alert.html", level="error", title=title, message=message
            )
            return htmx.retarget_to_alerts(app.make_response((body, status)))
        return render_template(
            "pages/error.html", status=status, title=title, message=message
        ), status

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        log.warning(
            "CSRF check failed on %s %s: %s", request.method, request.path, error.description
        )
        return render_error(
            400,
            "This form has expired",
            "The page was open too long or came from another site. Reload the page and try again.",
        )

    @app.errorhandler(vault.SecretUnreadable)
    def secret_unreadable(error):
        log.error("stored secret unreadable: %s", error)
        connection_id = storage.connection_id_for_secret(error.owner_table, error.owner_id)
        if connection_id:
            lifecycle.needs_reconnect(connection_id, f"stored secret unreadable: {error.reason}")
        message = (
            "We could not read the stored credentials of this connection. Please "
            "reconnect it: run Link Account again."
        )
        if htmx.is_htmx():
            return render_error(409, "Needs reconnect", message)
        return render_template(
            "pages/needs_reconnect.html", connection_id=connection_id, message=message
        ), 409

    @app.errorhandler(storage.ConnectionDeleted)
    def connection_deleted(error):
        # A request that loaded the connection just before another one deleted it: its write
        # was refused (and rolled back); to this browser the connection is simply gone.
        log.info("write to deleted connection %s refused", error)
        return render_error(404, "Not found", "This connection was deleted.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is not None and error.code < 400:
            return error
        titles = {
            400: ("Something is wrong with this request", "Please go back and try again."),
            403: ("Not allowed", "Your account cannot do this."),
            404: ("Not found", "There is nothing here, or you cannot see it."),
            405: ("Not allowed", "This address does not accept that kind of request."),
            413: ("Too large", "What you sent is too large."),
            429: ("Too many requests", "Please wait a moment and try again."),
        }
        code = error.code or 500
        title, message = titles.get(code, (error.name, "Please try again later."))
        return render_error(code, title, message)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        if app.testing:
            raise error
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(
            500, "Something went wrong", "We have been told. Please try again in a moment."
        )
