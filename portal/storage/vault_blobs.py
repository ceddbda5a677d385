"""Secrets at rest: vault blobs owned by a row, encrypted by the vault, and key rotation."""

from __future__ import annotations

from portal.storage import vault
from portal.storage.db import write_transaction
from portal.storage.sql import _execute, _row, _rows, utcnow


def put_secret(
    owner_table: str, owner_id, purpose: str, plaintext: bytes, keyring: vault.Keyring | None = None
) -> None:
    """Encrypt and store (insert or replace) the secret of (owner_table, owner_id, purpose)."""
    keyring = keyring or vault.current_keyring()
    sealed = keyring.seal(plaintext, owner_table=owner_table, owner_id=owner_id, purpose=purpose)
    _execute(
        "INSERT INTO vault_blobs (owner_table, owner_id, purpose, version, key_id, nonce, "
        "ciphertext, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (owner_table, owner_id, purpose) DO UPDATE SET version = excluded.version, "
        "key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, "
        "updated_at = excluded.updated_at",
        [
            owner_table,
            str(owner_id),
            purpose,
            sealed.version,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
            utcnow(),
        ],
    )


def get_secret(
    owner_table: str, owner_id, purpose: str, keyring: vault.Keyring | None = None
) -> bytes | None:
    """The plaintext, None if nothing is stored; raises ``vault.SecretUnreadable``."""
    keyring = keyring or vault.current_keyring()
    row = _row(
        "SELECT version, key_id, nonce, ciphertext FROM vault_blobs "
        "WHERE owner_table = ? AND owner_id = ? AND purpose = ?",
        [owner_table, str(owner_id), purpose],
    )
    if row is None:
        return None
    sealed = vault.Sealed(row["key_id"], row["nonce"], row["ciphertext"], row["version"])
    return keyring.open(sealed, owner_table=owner_table, owner_id=owner_id, purpose=purpose)


def delete_secret(owner_table: str, owner_id, purpose: str) -> bool:
    cursor = _execute(
        "DELETE FROM vault_blobs WHERE owner_table = ? AND owner_id = ? AND purpose = ?",
        [owner_table, str(owner_id), purpose],
    )
    return cursor.rowcount > 0


def vault_key_usage() -> dict[str, int]:
    """Number of blobs per key id."""
    return {
        r["key_id"]: r["n"]
        for r in _rows(
            "SELECT key_id, COUNT(*) AS n FROM vault_blobs GROUP BY key_id ORDER BY key_id"
        )
    }


def rotate_secrets(keyring: vault.Keyring | None = None) -> dict[str, int]:
    """Re-encrypt every blob not under the primary key; returns counts (rotated/unreadable)."""
    keyring = keyring or vault.current_keyring()
    counts = {"rotated": 0, "unreadable": 0, "current": 0}
    ids = [r["id"] for r in _rows("SELECT id FROM vault_blobs ORDER BY id")]
    for blob_id in ids:
        with write_transaction():
            row = _row("SELECT * FROM vault_blobs WHERE id = ?", [blob_id])
            if row is None:
                continue
            if row["key_id"] == keyring.primary_kid:
                counts["current"] += 1
                continue
            sealed = vault.Sealed(row["key_id"], row["nonce"], row["ciphertext"], row["version"])
            where = {
                "owner_table": row["owner_table"],
                "owner_id": row["owner_id"],
                "purpose": row["purpose"],
            }
            try:
                new = keyring.reseal(sealed, **where)
            except vault.SecretUnreadable:
                counts["unreadable"] += 1
                continue
            _execute(
                "UPDATE vault_blobs SET version = ?, key_id = ?, nonce = ?, ciphertext = ?, "
                "updated_at = ? WHERE id = ?",
                [new.version, new.key_id, new.nonce, new.ciphertext, utcnow(), blob_id],
            )
            counts["rotated"] += 1
    return counts


def connection_id_for_secret(owner_table: str, owner_id: str) -> str | None:
    """The connection a vault blob belongs to, if any."""
    if owner_table == "connections":
        return str(owner_id)
    if owner_table == "certificates":
        row = _row("SELECT connection_id FROM certificates WHERE id = ?", [str(owner_id)])
        return row["connection_id"] if row else None
    if owner_table == "auth_flows":
        row = _row("SELECT connection_id FROM auth_flows WHERE state = ?", [str(owner_id)])
        return row["connection_id"] if row else None
    if owner_table == "handoffs":
        row = _row("SELECT connection_id FROM handoffs WHERE id = ?", [str(owner_id)])
        return row["connection_id"] if row else None
    if owner_table == "link_reviews":
        row = _row("SELECT connection_id FROM link_reviews WHERE id = ?", [str(owner_id)])
        return row["connection_id"] if row else None
    return None
