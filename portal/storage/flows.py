"""OAuth transactions (auth flows): single use, bound to the browser that started them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from portal.storage import vault
from portal.storage.db import write_transaction
from portal.storage.records import FLOW_KINDS, AuthFlow
from portal.storage.sql import _execute, _row, _rows
from portal.storage.vault_blobs import delete_secret, get_secret, put_secret

FLOW_TTL_SECONDS = 600


def browser_binding(browser_cookie: str) -> str:
    """What is stored of the secret a browser holds in its flow cookie: its SHA-256, so the
    database alone never holds a value that could be replayed as that cookie."""
    return hashlib.sha256(browser_cookie.encode()).hexdigest()


def create_auth_flow(
    *,
    state: str,
    kind: str,
    connection_id: str,
    user_id: int | None,
    browser_cookie: str,
    flow: dict,
    ttl: float = FLOW_TTL_SECONDS,
    now: float | None = None,
) -> AuthFlow:
    """Store a pending flow bound to the browser holding ``browser_cookie`` (only its hash is
    kept); the MSAL flow dict goes into the vault (purpose ``msal_flow``)."""
    binding = browser_binding(browser_cookie)
    if kind not in FLOW_KINDS:
        raise ValueError(f"kind must be one of {FLOW_KINDS}")
    now = time.time() if now is None else now
    with write_transaction():
        _execute(
            "INSERT INTO auth_flows (state, kind, connection_id, user_id, browser_binding, "
            "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [state, kind, str(connection_id), user_id, binding, now, now + ttl],
        )
        put_secret("auth_flows", state, "msal_flow", json.dumps(flow).encode())
    return AuthFlow(state, kind, str(connection_id), user_id, binding, now, now + ttl, None)


def consume_auth_flow(
    state: str, browser_cookie: str, kind: str, now: float | None = None, user_id: int | None = None
) -> AuthFlow | None:
    """Burn the flow of ``state`` and return it with its MSAL flow dict, or None when missing,
    expired, already used, of another ``kind``, bound to another browser or unreadable. A flow
    of another kind is left untouched: a delegated state posted to the admin-consent return
    (or the reverse) must not burn the flow the browser is really running."""
    now = time.time() if now is None else now
    with write_transaction():
        row = _row("SELECT * FROM auth_flows WHERE state = ?", [state])
        if (
            row is None
            or row["consumed_at"] is not None
            or row["expires_at"] <= now
            or row["kind"] != kind
        ):
            return None
        if user_id is not None and row["user_id"] != user_id:
            return None  # another user's flow: neither theirs to finish nor to burn
        if not hmac.compare_digest(str(row["browser_binding"]), browser_binding(browser_cookie)):
            return None
        _execute(
            "UPDATE auth_flows SET consumed_at = ? WHERE state = ? AND consumed_at IS NULL",
            [now, state],
        )
        try:
            blob = get_secret("auth_flows", state, "msal_flow")
        except vault.SecretUnreadable:
            blob = None
        delete_secret("auth_flows", state, "msal_flow")
        if blob is None:
            return None
        row["consumed_at"] = now
        return AuthFlow(**row, flow=json.loads(blob))


def purge_auth_flows(now: float | None = None) -> int:
    """Delete expired or consumed flows (and their secrets); returns how many."""
    now = time.time() if now is None else now
    with write_transaction():
        states = [
            r["state"]
            for r in _rows(
                "SELECT state FROM auth_flows WHERE expires_at <= ? OR consumed_at IS NOT NULL",
                [now],
            )
        ]
        for state in states:
            delete_secret("auth_flows", state, "msal_flow")
            _execute("DELETE FROM auth_flows WHERE state = ?", [state])
    return len(states)
