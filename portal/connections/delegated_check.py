"""Checking a service-provider (delegated) connection now: *Check* on its page.

The check is a keep-alive refresh run at once (``keepalive.refresh_connection`` with no idle
time): the same lease (never two redemptions of one refresh token at once), the rotated refresh
token saved, the report recorded as the connection's last check. It answers in the shape of
``verification.run_check``: ``{"ok": bool}``, with ``"message"`` when there is something to
say, ``"transient": True`` when Microsoft did not let it finish (the last report stands) and
``"reconnect": True`` when the customer has to run Link Account again.

Needs an app context (the store, the cloud table, the settings), not a request.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from flask import current_app

from portal import storage
from portal.connections import credentials, keepalive
from portal.connections.verification import INTERRUPTED_MESSAGE
from portal.services import cloud_table

log = logging.getLogger("portal.delegated_check")

RECONNECT_MESSAGE = (
    "Microsoft no longer accepts the stored sign-in of this connection. Run Link Account again "
    "to reconnect it."
)
NOT_CONFIGURED_MESSAGE = (
    "We cannot check this connection right now: our service provider application is not "
    "configured on our side. We have been alerted."
)
BUSY_MESSAGE = (
    "This connection is being checked right now (its daily renewal). Nothing changed; look "
    "again in a minute."
)


def run_delegated_check(item: storage.Connection, trigger: str, actor: int | None = None) -> dict:
    """Redeem the connection's refresh token now and record the check; see the module's
    docstring for the answer."""
    if item.deleted:
        return {"ok": False, "message": "This connection was deleted."}
    if item.kind != "service_provider":
        return {"ok": False, "message": "This connection is not a service provider connection."}
    if item.state == "needs_reconnect":
        return {"ok": False, "reconnect": True, "message": RECONNECT_MESSAGE}
    if not keepalive.is_linked(item):
        return {"ok": False, "message": "Run Link Account first: nobody has signed in yet."}
    try:
        settings = keepalive.settings_from_config(current_app.config, current_app.instance_path)
    except keepalive.KeepAliveConfigError as exc:
        log.error("check of connection %s: operator problem: %s", item.id, exc)
        return {"ok": False, "message": NOT_CONFIGURED_MESSAGE}
    result = keepalive.refresh_connection(
        item.id,
        # Due at once: a person asked for the check (the lease still keeps runs apart).
        settings=replace(settings, idle=timedelta(0)),
        cloud_table=cloud_table(),
        now=datetime.now(UTC),
        trigger=trigger,
        actor=actor,
    )
    return _answer(result)


def _answer(result: keepalive.ConnectionResult) -> dict:
    """The keep-alive's outcome in ``run_check``'s shape."""
    if result.outcome == "refreshed":
        if result.check_ok is None:  # the token worked, Graph did not let the check finish
            return {"ok": False, "message": INTERRUPTED_MESSAGE, "transient": True}
        return {"ok": result.check_ok}
    if result.outcome in ("relink", "exhausted"):
        return {"ok": False, "reconnect": True, "message": RECONNECT_MESSAGE}
    if result.outcome == "transient":
        return {"ok": False, "message": INTERRUPTED_MESSAGE, "transient": True}
    if result.outcome == "skipped":
        return {"ok": False, "message": BUSY_MESSAGE, "transient": True}
    # Operator problems (our keyring included) are logged and alarmed; the customer only
    # learns that it is ours to fix.
    return {"ok": False, "message": credentials.OUR_SIDE_MESSAGE}
