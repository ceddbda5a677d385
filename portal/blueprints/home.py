"""The start page (a customer's connections) and the health check."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, redirect, render_template, url_for
from flask_login import current_user

from portal import storage
from portal.access import login_required
from portal.security import embeddable

bp = Blueprint("home", __name__)
log = logging.getLogger("portal.home")


@bp.get("/")
@login_required
@embeddable
def index():
    if current_user.is_support:
        return redirect(url_for("support.dashboard"))
    connections = storage.list_connections(current_user.org_id)
    return render_template("home/index.html", connections=connections)


@bp.get("/healthz")
def healthz():
    """JSON: is the database reachable, is the vault key loaded (never a secret)."""
    try:
        database = storage.ping()
    except Exception:  # noqa: BLE001 - report, do not crash the probe
        log.exception("health check: database unreachable")
        database = False
    keyring = current_app.config.get("VAULT_KEYS")
    vault_ok = keyring is not None and bool(keyring.primary_kid)
    ok = database and vault_ok
    return jsonify(ok=ok, database=database, vault_key_loaded=vault_ok), 200 if ok else 503
