"""Second factors of a sign-in: TOTP (RFC 6238) and single-use recovery codes. No Flask here.

The TOTP secret lives in the vault (``store``); this module only computes with it. A code is
accepted for the current 30-second step or one step either side (clock drift), and the caller
remembers the step it accepted so the same code cannot be replayed (ASVS V6.5.4). Recovery
codes are random, shown once, and stored only as password hashes.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time

import pyotp
import segno
from werkzeug.security import check_password_hash, generate_password_hash

STEP_SECONDS = 30
DIGITS = 6
#: Steps accepted either side of the current one (phones' clocks drift a little).
DRIFT_STEPS = 1
ISSUER = "Entra ID connections"
RECOVERY_CODE_COUNT = 10
#: No 0/o, 1/l/i: a code is read off paper and typed in.
_RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_RECOVERY_LENGTH = 10
_TOTP_RE = re.compile(r"^[0-9]{6}$")


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=ISSUER
    )


def qr_data_uri(uri: str) -> str:
    """The QR code of ``uri`` as an SVG ``data:`` URI: an ``<img>`` the CSP allows
    (``img-src 'self' data:``), no script and no inline style."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=4, dark="#000", light="#fff")


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def looks_like_totp(code: str) -> bool:
    return bool(_TOTP_RE.match(_compact(code)))


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code ``code`` is (within the drift), or None."""
    code = _compact(code)
    if not _TOTP_RE.match(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    step = current_step(now)
    for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Random codes shown as ``xxxxx-xxxxx`` (about 49 bits each)."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def normalize_recovery_code(code: str) -> str:
    return _compact(code).replace("-", "").lower()


def hash_recovery_code(code: str, method: str) -> str:
    """A slow hash (the password method): a stolen table does not give the codes away."""
    return generate_password_hash(normalize_recovery_code(code), method=method)


def recovery_code_matches(code_hash: str, code: str) -> bool:
    return check_password_hash(code_hash, normalize_recovery_code(code))


def _compact(code: str) -> str:
    return re.sub(r"\s+", "", code or "")
