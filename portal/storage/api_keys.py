"""Keys of the host API: one row per key, the key itself never stored (only its SHA-256)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from portal.storage.sql import _execute, _one, _row, _rows, utcnow


@dataclass(frozen=True)
class ApiKey:
    """A key of the host API as stored: its public id, name, scopes and times, and the hash
    the presented key is compared with (never the key)."""

    id: int
    key_id: str
    name: str
    secret_hash: str = field(repr=False)
    scopes: tuple[str, ...]
    created_at: str
    last_used_at: str | None
    revoked_at: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _api_key(row: dict) -> ApiKey:
    return ApiKey(**{**row, "scopes": tuple(row["scopes"].split())})


def create_api_key(key_id: str, name: str, secret_hash: str, scopes: Sequence[str]) -> ApiKey:
    """Store a new key (``key_id`` unique; the caller made it and the hash)."""
    name = name.strip()
    if not name:
        raise ValueError("an API key needs a name")
    if not scopes:
        raise ValueError("an API key needs at least one scope")
    cursor = _execute(
        "INSERT INTO api_keys (key_id, name, secret_hash, scopes, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [key_id, name, secret_hash, " ".join(sorted(set(scopes))), utcnow()],
    )
    return _api_key(_one("SELECT * FROM api_keys WHERE id = ?", [cursor.lastrowid]))


def get_api_key(key_id: str) -> ApiKey | None:
    row = _row("SELECT * FROM api_keys WHERE key_id = ?", [str(key_id)])
    return _api_key(row) if row else None


def list_api_keys() -> list[ApiKey]:
    """Every key, revoked ones too (oldest first)."""
    return [_api_key(r) for r in _rows("SELECT * FROM api_keys ORDER BY id")]


def revoke_api_key(key_id: str) -> ApiKey | None:
    """Revoke a live key; None when there is no such key or it was revoked already."""
    cursor = _execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        [utcnow(), str(key_id)],
    )
    return get_api_key(key_id) if cursor.rowcount == 1 else None


def touch_api_key(key_id: str, now: str, stale_before: str) -> bool:
    """Set ``last_used_at`` to ``now`` unless it is already at or after ``stale_before``: the
    caller skips the call when its copy of the row is recent, and the condition keeps two
    workers that both thought it stale from writing twice. True when this call wrote."""
    cursor = _execute(
        "UPDATE api_keys SET last_used_at = ? WHERE key_id = ? "
        "AND (last_used_at IS NULL OR last_used_at < ?)",
        [now, str(key_id), stale_before],
    )
    return cursor.rowcount == 1
