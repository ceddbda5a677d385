"""Random tokens of guest access: made with ``secrets``, stored as SHA-256, recognised by a
prefix so a leaked one is identifiable in a log or a scanner's report (as the API keys are)."""

from __future__ import annotations

import hashlib
import re
import secrets

#: A connect session's token and a setup link's, then their public ids.
CONNECT_TOKEN = "cst_"
SETUP_TOKEN = "slt_"
CONNECT_ID = "cs_"
SETUP_ID = "sl_"

_TOKEN = re.compile(r"^(cst_|slt_)[A-Za-z0-9_-]{43}$")
_ID = re.compile(r"^(cs_|sl_)[0-9a-f]{24}$")


def new_token(prefix: str) -> str:
    """256 random bits, base64url (43 characters) after the prefix."""
    return prefix + secrets.token_urlsafe(32)


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def token_hash(token: str) -> str:
    """SHA-256 is enough: a 256-bit random token cannot be guessed from its hash, so no slow
    hash is needed (unlike a password)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def is_token(value: object, prefix: str) -> bool:
    return isinstance(value, str) and bool(_TOKEN.fullmatch(value)) and value.startswith(prefix)


def is_id(value: object, prefix: str) -> bool:
    return isinstance(value, str) and bool(_ID.fullmatch(value)) and value.startswith(prefix)
