"""Encryption at rest: AES-256-GCM with a keyring, a key id per ciphertext and row-binding AAD.

Every ciphertext is bound by its associated data to (format version, owner table, owner id,
purpose, key id), so a blob copied to another row or purpose fails to decrypt. The first key of
the keyring encrypts; the others still decrypt until ``flask --app portal vault rotate`` has
re-encrypted every blob under the primary. See
https://cryptography.io/en/latest/hazmat/primitives/aead/ (never reuse a nonce: 96 random bits
per encryption).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
_KID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class KeyringError(ValueError):
    """The keyring text cannot be used (bad line, wrong key length, duplicate id, empty)."""


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted: tampered, moved to another row, or its key is gone.

    ``our_config`` tells who can fix it. True (:class:`KeyringMismatch`): our keyring cannot
    open a ciphertext it should open — an operator fixes the keyring and the secret is readable
    again; the customer must not be asked to do anything. False: the stored row itself can
    never be read by any keyring (malformed), so the secret is gone for the customer."""

    our_config = False

    def __init__(self, reason: str, owner_table: str = "", owner_id: str = "", purpose: str = ""):
        super().__init__(f"{reason} ({owner_table}/{owner_id}/{purpose})")
        self.reason = reason
        self.owner_table = owner_table
        self.owner_id = str(owner_id)
        self.purpose = purpose


class KeyringMismatch(SecretUnreadable):
    """Our keyring cannot open the secret: our configuration, an operator alarm.

    Which failures are ours, and why:

    * the key id the ciphertext names is not in the keyring — ``flask vault rotate`` ran (new
      primary, blobs re-encrypted) before the web workers restarted with the new keyring, or a
      key was removed while blobs still used it. Restoring the key makes the blob readable.
    * the key of that id does not authenticate the ciphertext (GCM tag). The keyring holds
      other key material under the same id (a keyring file mis-edited or restored from another
      environment), or the row was altered in our own database. AES-GCM cannot tell these
      apart, and neither is the customer's to fix: treating it as "gone" would send every
      customer to re-link after one keyring mistake.
    * an unknown format version — written by a newer portal than the one running (a rollback).

    Subclass of :class:`SecretUnreadable`, so code that only needs "not readable now" (auth
    flows, rotation counts) keeps working unchanged."""

    our_config = True


@dataclass(frozen=True)
class Sealed:
    """One ciphertext as stored: key id, nonce, ciphertext with the GCM tag, format version."""

    key_id: str
    nonce: bytes
    ciphertext: bytes
    version: int = FORMAT_VERSION


def associated_data(version: int, owner_table: str, owner_id, purpose: str, key_id: str) -> bytes:
    """Canonical JSON of the values a ciphertext is bound to."""
    return json.dumps(
        [version, owner_table, str(owner_id), purpose, key_id], separators=(",", ":")
    ).encode()


def new_key_id() -> str:
    """A readable, unique key id such as ``k20261126-3f9a1c``."""
    return time.strftime("k%Y%m%d-", time.gmtime()) + secrets.token_hex(3)


class Keyring:
    """Named AES-256 keys; the first is the primary (encrypts), all decrypt."""

    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise KeyringError("no key")
        seen = set()
        for kid, key in keys:
            if not _KID_RE.match(kid):
                raise KeyringError(f"invalid key id {kid!r}")
            if kid in seen:
                raise KeyringError(f"duplicate key id {kid!r}")
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {kid!r} must be {KEY_BYTES} bytes, not {len(key)}")
            seen.add(kid)
        self._keys = dict(keys)
        self._order = [kid for kid, _ in keys]

    @classmethod
    def generate(cls, existing: Keyring | None = None) -> Keyring:
        """A keyring with a fresh primary key, followed by the keys of ``existing``."""
        kid = new_key_id()
        while existing is not None and kid in existing:
            kid = new_key_id()
        keys = [(kid, AESGCM.generate_key(bit_length=256))]
        if existing is not None:
            keys += [(k, existing._keys[k]) for k in existing._order]
        return cls(keys)

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Parse lines of ``kid:base64key`` (first line = primary; blank lines and # ignored)."""
        keys = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kid, sep, b64 = line.partition(":")
            if not sep:
                raise KeyringError(f"line {number}: expected kid:base64key")
            try:
                key = base64.b64decode(b64.strip(), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise KeyringError(f"line {number}: key is not base64") from exc
            keys.append((kid.strip(), key))
        return cls(keys)

    def dumps(self) -> str:
        """The keyring file text (primary first)."""
        return "".join(
            f"{kid}:{base64.b64encode(self._keys[kid]).decode()}\n" for kid in self._order
        )

    @property
    def primary_kid(self) -> str:
        return self._order[0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._order)

    def key(self, kid: str) -> bytes:
        """The raw key of ``kid`` (for rewriting the keyring file only)."""
        return self._keys[kid]

    def __contains__(self, kid: str) -> bool:
        return kid in self._keys

    def __repr__(self) -> str:  # never print key material
        return f"Keyring(primary={self.primary_kid!r}, keys={len(self._order)})"

    def seal(self, plaintext: bytes, *, owner_table: str, owner_id, purpose: str) -> Sealed:
        """Encrypt under the primary key, bound to the owner row and purpose."""
        if not isinstance(plaintext, bytes | bytearray):
            raise TypeError("plaintext must be bytes")
        kid = self.primary_kid
        nonce = os.urandom(NONCE_BYTES)
        aad = associated_data(FORMAT_VERSION, owner_table, owner_id, purpose, kid)
        ciphertext = AESGCM(self._keys[kid]).encrypt(nonce, bytes(plaintext), aad)
        return Sealed(kid, nonce, ciphertext, FORMAT_VERSION)

    def open(self, sealed: Sealed, *, owner_table: str, owner_id, purpose: str) -> bytes:
        """Decrypt; SecretUnreadable if the key is unknown or anything was altered or moved."""
        where = (owner_table, str(owner_id), purpose)
        if sealed.version != FORMAT_VERSION:
            raise KeyringMismatch(f"unknown format version {sealed.version}", *where)
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise KeyringMismatch(f"unknown key id {sealed.key_id!r}", *where)
        if len(sealed.nonce) != NONCE_BYTES:
            # No keyring can ever open a row with a nonce of the wrong size: the secret is gone.
            raise SecretUnreadable("malformed nonce", *where)
        aad = associated_data(sealed.version, owner_table, owner_id, purpose, sealed.key_id)
        try:
            return AESGCM(key).decrypt(bytes(sealed.nonce), bytes(sealed.ciphertext), aad)
        except InvalidTag:
            raise KeyringMismatch("authentication failed", *where) from None

    def reseal(self, sealed: Sealed, *, owner_table: str, owner_id, purpose: str) -> Sealed:
        """Re-encrypt under the primary key (rotation); the plaintext stays in memory only."""
        plaintext = self.open(sealed, owner_table=owner_table, owner_id=owner_id, purpose=purpose)
        return self.seal(plaintext, owner_table=owner_table, owner_id=owner_id, purpose=purpose)


def current_keyring() -> Keyring:
    """The keyring of the running Flask app."""
    from flask import current_app

    return current_app.config["VAULT_KEYS"]


def write_keyring_file(path, keyring: Keyring) -> None:
    """Replace the keyring file atomically with mode 0600."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(keyring.dumps())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
