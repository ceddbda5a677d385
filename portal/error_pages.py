"""What a request that fails shows: a page, an alert for htmx (retargeted to ``#alerts``), or
JSON; the status stays the real one. A secret that is gone for the customer moves its
connection to needs_reconnect on the way; one our own keyring cannot read is an operator alarm
(the customer reads that it is a problem on our side being fixed)."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal import htmx, storage
from portal.connections import credentials, lifecycle
from portal.storage import vault

log = logging.getLogger("portal")

#: (title, message) by status: plain words, nothing of the request echoed back.
_HTTP_ERRORS = {
    400: ("Something is wrong with this request", "Please go back and try again."),
    403: ("Not allowed", "Your account cannot do this."),
    404: ("Not found", "There is nothing here, or you cannot see it."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "What you sent is too large."),
    429: ("Too many requests", "Please wait a moment and try again."),
}


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, csrf_error)
    app.register_error_handler(vault.SecretUnreadable, secret_unreadable)
    app.register_error_handler(credentials.KeyringAlarm, keyring_alarm)
    app.register_error_handler(storage.ConnectionDeleted, connection_deleted)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


def render_error(status: int, title: str, message: str):
    if request.blueprint == "api" or request.accept_mimetypes.best == "application/json":
        return jsonify(error=title, message=message), status
    if htmx.is_htmx():
        body = render_template("_alert.html", level="error", title=title, message=message)
        return htmx.retarget_to_alerts(current_app.make_response((body, status)))
    return render_template("error.html", status=status, title=title, message=message), status


def csrf_error(error: CSRFError):
    log.warning("CSRF check failed on %s %s: %s", request.method, request.path, error.description)
    return render_error(
        400,
        "This form has expired",
        "The page was open too long or came from another site. Reload the page and try again.",
    )


def our_side():
    """Our keyring cannot read a secret: 503 (we are fixing it), the connection unchanged."""
    return render_error(503, credentials.OUR_SIDE_TITLE, credentials.OUR_SIDE_MESSAGE)


def keyring_alarm(error: credentials.KeyringAlarm):
    # credentials has logged the ERROR line (and recorded the alarm where it belongs).
    return our_side()


def secret_unreadable(error: vault.SecretUnreadable):
    if error.our_config:
        log.error(
            "operator alarm: the vault keyring cannot read a stored secret (%s); nothing was "
            "changed",
            error,
        )
        return our_side()
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
        "connection/needs_reconnect.html", connection_id=connection_id, message=message
    ), 409


def connection_deleted(error: storage.ConnectionDeleted):
    # A request that loaded the connection just before another one deleted it: its write
    # was refused (and rolled back); to this browser the connection is simply gone.
    log.info("write to deleted connection %s refused", error)
    return render_error(404, "Not found", "This connection was deleted.")


def http_error(error: HTTPException):
    if error.code is not None and error.code < 400:
        return error
    code = error.code or 500
    title, message = _HTTP_ERRORS.get(code, (error.name, "Please try again later."))
    return render_error(code, title, message)


def unexpected_error(error: Exception):
    if isinstance(error, HTTPException):
        return http_error(error)
    if current_app.testing:
        raise error
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_error(
        500, "Something went wrong", "We have been told. Please try again in a moment."
    )
