"""API keys: their format, how they are stored and checked, and issuing and revoking them.

A key reads ``pk_live_<id>_<secret>``: ``id`` is 8 characters of ``[a-z0-9]``, public, stored in
the clear and shown by ``api-key list`` (the key's *prefix* is ``pk_live_<id>``: what an operator
sees in the list and revokes by); ``secret`` is 32 random bytes (256 bits, ``secrets``) in
base64url. Only the SHA-256 of the whole key is stored. A slow password hash (scrypt) protects
guessable secrets; these are not guessable: with 256 bits of entropy a stolen hash cannot be
reversed by trying keys, so one fast hash is enough and keeps a request from paying for a
key-derivation function (OWASP Password Storage Cheat Sheet: slow hashes are for passwords).
The presented key's hash is compared with ``hmac.compare_digest`` so the comparison's time
tells nothing about how much of it matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from portal import storage
from portal.api.scopes import SCOPES, unknown

PREFIX = "pk_live_"
ID_LENGTH = 8
_ID_ALPHABET = string.ascii_lowercase + string.digits
#: 32 bytes in unpadded base64url are 43 characters.
_KEY_RE = re.compile(r"^pk_live_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")
_PREFIX_RE = re.compile(r"^(?:pk_live_)?([a-z0-9]{8})$")


@dataclass(frozen=True)
class IssuedKey:
    """A key just made: the only moment the full key exists outside its holder."""

    key: str
    record: storage.ApiKey


def key_hash(key: str) -> str:
    # UTF-8, not ASCII: a presented value may be anything a header can carry (keys we make are
    # ASCII, so their hashes are the same either way).
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def parse_key_id(key: str) -> str | None:
    """The id of a well-formed key (None otherwise: nothing malformed reaches SQL)."""
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


def parse_prefix(text: str) -> str | None:
    """The id in ``pk_live_<id>`` or ``<id>`` as an operator types it."""
    match = _PREFIX_RE.match(text.strip())
    return match.group(1) if match else None


def prefix_of(record: storage.ApiKey) -> str:
    return PREFIX + record.key_id


def matches(record: storage.ApiKey, key: str) -> bool:
    """The presented ``key`` is this record's (constant-time comparison of the hashes)."""
    return hmac.compare_digest(record.secret_hash, key_hash(key))


def issue(name: str, scopes: list[str]) -> IssuedKey:
    """Make a key with ``scopes`` and store its hash; audited (``api_key.create``)."""
    bad = unknown(scopes)
    if bad:
        raise ValueError(f"unknown scope(s) {', '.join(bad)}; known: {', '.join(SCOPES)}")
    with storage.write_transaction():
        key_id = _free_key_id()
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = storage.create_api_key(key_id, name, key_hash(key), scopes)
        storage.record_audit(
            "api_key.create",
            detail={"key_id": key_id, "name": record.name, "scopes": list(record.scopes)},
        )
    return IssuedKey(key, record)


def _free_key_id() -> str:
    # 36^8 ids: a clash is rare, but the id is unique in the table, so look before using one.
    while True:
        key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
        if storage.get_api_key(key_id) is None:
            return key_id


def revoke(prefix: str) -> storage.ApiKey | None:
    """Revoke the live key with this prefix (or id); audited (``api_key.revoke``)."""
    key_id = parse_prefix(prefix)
    if key_id is None:
        return None
    with storage.write_transaction():
        record = storage.revoke_api_key(key_id)
        if record is not None:
            storage.record_audit("api_key.revoke", detail={"key_id": key_id, "name": record.name})
    return record
