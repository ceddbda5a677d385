"""Guest access: connect sessions (the host's embedded users) and setup links, and the
passwordless users they sign in. Only a SHA-256 of each token is stored; the token itself is
shown once (to the host's backend, or in the link the customer sends)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from portal.storage.db import write_transaction
from portal.storage.records import User, _user
from portal.storage.sql import _execute, _one, _row, _rows, utcnow

#: A user's unusable password hash: no password hash method produces it.
NO_PASSWORD = "!guest"


@dataclass(frozen=True)
class ConnectSession:
    id: str
    token_hash: str = field(repr=False)
    org_id: int
    user_id: int
    allowed_origins: tuple[str, ...]
    kind: str | None
    connection_id: str | None
    return_url: str | None
    api_key_id: str | None
    created_at: str
    expires_at: str
    used_at: str | None
    used_origin: str | None


@dataclass(frozen=True)
class SetupLink:
    id: str
    token_hash: str = field(repr=False)
    org_id: int
    connection_id: str
    user_id: int | None
    created_by: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    spent_at: str | None
    last_used_at: str | None
    uses: int
    microsoft_account: str | None

    def usable(self, now: str) -> bool:
        return self.revoked_at is None and self.spent_at is None and self.expires_at > now


def _connect_session(row: dict | None) -> ConnectSession | None:
    if row is None:
        return None
    return ConnectSession(**{**row, "allowed_origins": tuple(json.loads(row["allowed_origins"]))})


def _setup_link(row: dict | None) -> SetupLink | None:
    return SetupLink(**row) if row else None


def guest_user(
    sign_in: str,
    key: str,
    org_id: int,
    *,
    external_user_id: str | None = None,
    display_name: str | None = None,
    contact_email: str | None = None,
    only_connection_id: str | None = None,
) -> User:
    """The passwordless user ``key`` (made on first use; its names updated on each)."""
    with write_transaction():
        row = _row("SELECT * FROM users WHERE email = ?", [key])
        if row is None:
            cursor = _execute(
                "INSERT INTO users (email, org_id, role, password_hash, created_at, sign_in,"
                " external_user_id, display_name, contact_email, only_connection_id)"
                " VALUES (?, ?, 'admin', ?, ?, ?, ?, ?, ?, ?)",
                [
                    key,
                    org_id,
                    NO_PASSWORD,
                    utcnow(),
                    sign_in,
                    external_user_id,
                    display_name,
                    contact_email,
                    only_connection_id,
                ],
            )
            return _user(_one("SELECT * FROM users WHERE id = ?", [cursor.lastrowid]))
        if row["sign_in"] != sign_in or row["org_id"] != org_id:
            raise ValueError("a guest key names another kind of user")
        _execute(
            "UPDATE users SET display_name = ?, contact_email = ?, last_login_at = ? WHERE id = ?",
            [display_name, contact_email, utcnow(), row["id"]],
        )
        return _user(_one("SELECT * FROM users WHERE id = ?", [row["id"]]))


def create_connect_session(
    session_id: str,
    token_hash: str,
    *,
    org_id: int,
    user_id: int,
    allowed_origins: list[str],
    kind: str | None,
    connection_id: str | None,
    return_url: str | None,
    api_key_id: str | None,
    expires_at: str,
) -> ConnectSession:
    _execute(
        "INSERT INTO connect_sessions (id, token_hash, org_id, user_id, allowed_origins, kind,"
        " connection_id, return_url, api_key_id, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            session_id,
            token_hash,
            org_id,
            user_id,
            json.dumps(list(allowed_origins)),
            kind,
            connection_id,
            return_url,
            api_key_id,
            utcnow(),
            expires_at,
        ],
    )
    return get_connect_session(session_id)  # type: ignore[return-value]


def get_connect_session(session_id: str) -> ConnectSession | None:
    return _connect_session(_row("SELECT * FROM connect_sessions WHERE id = ?", [session_id]))


def spend_connect_session(token_hash: str, origin: str) -> tuple[ConnectSession | None, bool]:
    """Mark the session of this token used (whatever comes of it: a token is presented once).
    Returns the session (None: no such token) and whether this call was its first use."""
    with write_transaction():
        found = _connect_session(
            _row("SELECT * FROM connect_sessions WHERE token_hash = ?", [token_hash])
        )
        if found is None:
            return None, False
        cursor = _execute(
            "UPDATE connect_sessions SET used_at = ?, used_origin = ?"
            " WHERE id = ? AND used_at IS NULL",
            [utcnow(), origin[:200], found.id],
        )
        return found, cursor.rowcount == 1


def create_setup_link(
    link_id: str,
    token_hash: str,
    *,
    org_id: int,
    connection_id: str,
    created_by: str,
    expires_at: str,
) -> SetupLink:
    _execute(
        "INSERT INTO setup_links (id, token_hash, org_id, connection_id, created_by, created_at,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [link_id, token_hash, org_id, connection_id, created_by, utcnow(), expires_at],
    )
    return get_setup_link(link_id)  # type: ignore[return-value]


def get_setup_link(link_id: str) -> SetupLink | None:
    return _setup_link(_row("SELECT * FROM setup_links WHERE id = ?", [link_id]))


def find_setup_link(token_hash: str) -> SetupLink | None:
    return _setup_link(_row("SELECT * FROM setup_links WHERE token_hash = ?", [token_hash]))


def list_setup_links(connection_id: str) -> list[SetupLink]:
    """A connection's links, newest first."""
    rows = _rows(
        "SELECT * FROM setup_links WHERE connection_id = ? ORDER BY created_at DESC, id",
        [connection_id],
    )
    return [_setup_link(r) for r in rows]  # type: ignore[misc]


def note_setup_link_use(link_id: str, user_id: int) -> None:
    _execute(
        "UPDATE setup_links SET uses = uses + 1, last_used_at = ?, user_id = ? WHERE id = ?",
        [utcnow(), user_id, link_id],
    )


def revoke_setup_link(link_id: str) -> bool:
    """Revoke a link not revoked yet; False when it was already."""
    cursor = _execute(
        "UPDATE setup_links SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        [utcnow(), link_id],
    )
    return cursor.rowcount == 1


def spend_setup_links(connection_id: str) -> int:
    """The connection is linked: its live links have done their work."""
    cursor = _execute(
        "UPDATE setup_links SET spent_at = ? WHERE connection_id = ? AND spent_at IS NULL"
        " AND revoked_at IS NULL",
        [utcnow(), connection_id],
    )
    return cursor.rowcount


def note_setup_link_account(link_id: str, account: str) -> None:
    """The Microsoft account the link's visitor signed in with, once known."""
    _execute("UPDATE setup_links SET microsoft_account = ? WHERE id = ?", [account[:320], link_id])
