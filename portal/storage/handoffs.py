"""Popup handoffs and their outcomes: a sign-in started in an iframe, finished in a popup."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass

from portal.storage.db import write_transaction
from portal.storage.flows import FLOW_TTL_SECONDS, browser_binding
from portal.storage.records import Handoff
from portal.storage.sql import _execute, _row, _rows
from portal.storage.vault_blobs import delete_secret, get_secret, put_secret


def create_handoff(
    *,
    connection_id: str,
    user_id: int | None,
    session_binding: str | None = None,
    ttl: float = FLOW_TTL_SECONDS,
    now: float | None = None,
) -> Handoff:
    """A one-time id (256 random bits) that lets a popup continue what the iframe started."""
    now = time.time() if now is None else now
    handoff_id = secrets.token_urlsafe(32)
    _execute(
        "INSERT INTO handoffs (id, connection_id, user_id, session_binding, created_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        [handoff_id, str(connection_id), user_id, session_binding, now, now + ttl],
    )
    return Handoff(handoff_id, str(connection_id), user_id, session_binding, now, now + ttl, None)


@dataclass(frozen=True)
class LinkAttempt:
    """The newest handoff a browser session started for a connection, with its result if any."""

    handoff_id: str
    connection_id: str
    created_at: float
    expires_at: float
    consumed_at: float | None
    outcome: str | None
    detail: dict
    finished_at: float | None

    def pending(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.outcome is None and now < self.expires_at


def latest_link_attempt(connection_id: str, session_binding: str) -> LinkAttempt | None:
    """The newest handoff of this connection created by the session with ``session_binding``."""
    row = _row(
        "SELECT h.id AS handoff_id, h.connection_id, h.created_at, h.expires_at, h.consumed_at, "
        "o.outcome, o.detail, o.finished_at FROM handoffs h "
        "LEFT JOIN link_outcomes o ON o.handoff_id = h.id "
        "WHERE h.connection_id = ? AND h.session_binding = ? "
        "ORDER BY h.created_at DESC, h.rowid DESC LIMIT 1",
        [str(connection_id), str(session_binding)],
    )
    if row is None:
        return None
    row["detail"] = json.loads(row["detail"] or "{}")
    return LinkAttempt(**row)


def record_link_outcome(
    handoff_id: str,
    connection_id: str,
    outcome: str,
    detail: dict | None = None,
    now: float | None = None,
) -> None:
    """Store (or replace) what became of the link started from ``handoff_id``. No secrets."""
    now = time.time() if now is None else now
    _execute(
        "INSERT INTO link_outcomes (handoff_id, connection_id, outcome, detail, finished_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (handoff_id) DO UPDATE SET outcome = excluded.outcome,"
        " detail = excluded.detail, finished_at = excluded.finished_at",
        [
            str(handoff_id),
            str(connection_id),
            outcome,
            json.dumps(detail or {}, sort_keys=True),
            now,
        ],
    )


#: How long a redeemed popup sign-in waits for the starting session's confirmation.
CONFIRM_TTL_SECONDS = 600.0


PENDING_TOKEN_PURPOSE = "pending_token_cache"


def open_handoff(
    handoff_id: str, popup_cookie: str, confirm_token: str, now: float | None = None
) -> Handoff | None:
    """The popup shows the handoff's confirmation page: remember (hashed) the popup's cookie and
    a fresh one-time token. None when missing, expired, used, or already opened by another
    browser (the same popup may reload the page: its token is replaced)."""
    now = time.time() if now is None else now
    with write_transaction():
        row = _row("SELECT * FROM handoffs WHERE id = ?", [str(handoff_id)])
        if row is None or row["consumed_at"] is not None or row["expires_at"] <= now:
            return None
        popup = browser_binding(popup_cookie)
        if row["popup_binding"] is not None and not hmac.compare_digest(
            str(row["popup_binding"]), popup
        ):
            return None
        confirm = browser_binding(confirm_token)
        _execute(
            "UPDATE handoffs SET opened_at = COALESCE(opened_at, ?), popup_binding = ?, "
            "confirm_hash = ? WHERE id = ?",
            [now, popup, confirm, str(handoff_id)],
        )
        row.update(opened_at=row["opened_at"] or now, popup_binding=popup, confirm_hash=confirm)
        return Handoff(**row)


def consume_confirmed_handoff(
    handoff_id: str, popup_cookie: str, confirm_token: str, now: float | None = None
) -> Handoff | None:
    """Burn a handoff whose confirmation page was answered by the browser it was shown to, with
    the token it was shown; None otherwise."""
    now = time.time() if now is None else now
    with write_transaction():
        row = _row("SELECT * FROM handoffs WHERE id = ?", [str(handoff_id)])
        if (
            row is None
            or row["consumed_at"] is not None
            or row["expires_at"] <= now
            or row["popup_binding"] is None
            or row["confirm_hash"] is None
        ):
            return None
        if not (
            hmac.compare_digest(str(row["popup_binding"]), browser_binding(popup_cookie))
            and hmac.compare_digest(str(row["confirm_hash"]), browser_binding(confirm_token))
        ):
            return None
        _execute(
            "UPDATE handoffs SET consumed_at = ?, confirm_hash = NULL WHERE id = ?",
            [now, str(handoff_id)],
        )
        row.update(consumed_at=now, confirm_hash=None)
        return Handoff(**row)


def hold_for_confirmation(
    handoff_id: str,
    connection_id: str,
    *,
    token_cache: bytes,
    pending: dict,
    now: float | None = None,
) -> None:
    """A redeemed popup sign-in waits for its session: the token cache sealed under the handoff,
    what to show and store (no secrets) as the outcome ``confirm`` the iframe polls for."""
    with write_transaction():
        put_secret("handoffs", handoff_id, PENDING_TOKEN_PURPOSE, token_cache)
        record_link_outcome(handoff_id, connection_id, "confirm", pending, now=now)


def take_pending_link(
    handoff_id: str, connection_id: str, session_binding: str, now: float | None = None
) -> tuple[dict, bytes] | None:
    """Inside the caller's transaction: the pending result of ``handoff_id`` and its token cache,
    destroyed from the vault; None unless it waits for confirmation, in time, and was started by
    the session with ``session_binding``."""
    now = time.time() if now is None else now
    row = _row(
        "SELECT o.detail, o.finished_at, h.session_binding FROM link_outcomes o "
        "JOIN handoffs h ON h.id = o.handoff_id "
        "WHERE o.handoff_id = ? AND o.connection_id = ? AND o.outcome = 'confirm'",
        [str(handoff_id), str(connection_id)],
    )
    if row is None or row["finished_at"] + CONFIRM_TTL_SECONDS <= now:
        return None
    if not hmac.compare_digest(str(row["session_binding"] or ""), str(session_binding)):
        return None
    token_cache = get_secret("handoffs", handoff_id, PENDING_TOKEN_PURPOSE)
    delete_secret("handoffs", handoff_id, PENDING_TOKEN_PURPOSE)
    if token_cache is None:
        return None
    return json.loads(row["detail"] or "{}"), token_cache


def discard_pending_link(
    handoff_id: str, connection_id: str, outcome: str, detail: dict | None = None
) -> None:
    """End a pending result without linking (``cancelled``, ``expired``): its tokens are
    destroyed."""
    with write_transaction():
        delete_secret("handoffs", handoff_id, PENDING_TOKEN_PURPOSE)
        record_link_outcome(handoff_id, connection_id, outcome, detail or {})


def purge_unconfirmed_links(now: float | None = None) -> int:
    """Destroy the tokens of every pending result that was not confirmed in time."""
    now = time.time() if now is None else now
    rows = _rows(
        "SELECT handoff_id, connection_id FROM link_outcomes "
        "WHERE outcome = 'confirm' AND finished_at <= ?",
        [now - CONFIRM_TTL_SECONDS],
    )
    for row in rows:
        discard_pending_link(row["handoff_id"], row["connection_id"], "expired")
    return len(rows)
