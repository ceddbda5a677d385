"""Organizations, portal users and their second factor (TOTP secret sealed, codes hashed)."""

from __future__ import annotations

from collections.abc import Sequence

from portal.storage.db import write_transaction
from portal.storage.records import ROLES, Organization, User, _organization, _user
from portal.storage.sql import _execute, _one, _row, _rows, utcnow
from portal.storage.vault_blobs import delete_secret, get_secret, put_secret


def create_organization(name: str) -> Organization:
    name = name.strip()
    if not name:
        raise ValueError("organization name is empty")
    cursor = _execute(
        "INSERT INTO organizations (name, created_at) VALUES (?, ?)", [name, utcnow()]
    )
    return _organization(_one("SELECT * FROM organizations WHERE id = ?", [cursor.lastrowid]))


def get_organization(org_id: int) -> Organization | None:
    return _organization(_row("SELECT * FROM organizations WHERE id = ?", [org_id]))


def get_organization_by_name(name: str) -> Organization | None:
    return _organization(_row("SELECT * FROM organizations WHERE name = ?", [name.strip()]))


def list_organizations() -> list[Organization]:
    return [_organization(r) for r in _rows("SELECT * FROM organizations ORDER BY name")]


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(email: str, role: str, password_hash: str, org_id: int | None = None) -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if role == "admin" and org_id is None:
        raise ValueError("an admin belongs to an organization")
    cursor = _execute(
        "INSERT INTO users (email, org_id, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        [
            normalize_email(email),
            org_id if role == "admin" else None,
            role,
            password_hash,
            utcnow(),
        ],
    )
    return _user(_one("SELECT * FROM users WHERE id = ?", [cursor.lastrowid]))


def get_user(user_id: int) -> User | None:
    return _user(_row("SELECT * FROM users WHERE id = ?", [user_id]))


def get_user_by_email(email: str) -> User | None:
    return _user(_row("SELECT * FROM users WHERE email = ?", [normalize_email(email)]))


def list_users(org_id: int | None = None) -> list[User]:
    if org_id is None:
        return [User(**r) for r in _rows("SELECT * FROM users ORDER BY email")]
    return [
        User(**r) for r in _rows("SELECT * FROM users WHERE org_id = ? ORDER BY email", [org_id])
    ]


def set_password_hash(user_id: int, password_hash: str) -> None:
    """Replace the hash and end every existing session of the user."""
    _execute(
        "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1 WHERE id = ?",
        [password_hash, user_id],
    )


def record_login(user_id: int) -> None:
    _execute("UPDATE users SET last_login_at = ? WHERE id = ?", [utcnow(), user_id])


def end_sessions(user_id: int) -> None:
    """Invalidate every session cookie of the user (sign-out everywhere)."""
    _execute("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?", [user_id])


TOTP_SECRET = "totp_secret"


#: A secret being enrolled: shown as a QR code until the user proves their app has it.
TOTP_PENDING = "totp_pending"


def set_organization_require_mfa(org_id: int, required: bool) -> None:
    _execute("UPDATE organizations SET require_mfa = ? WHERE id = ?", [int(required), org_id])


def put_pending_totp_secret(user_id: int, secret: str) -> None:
    put_secret("users", user_id, TOTP_PENDING, secret.encode("ascii"))


def get_pending_totp_secret(user_id: int) -> str | None:
    raw = get_secret("users", user_id, TOTP_PENDING)
    return raw.decode("ascii") if raw else None


def get_totp_secret(user_id: int) -> str | None:
    raw = get_secret("users", user_id, TOTP_SECRET)
    return raw.decode("ascii") if raw else None


def enrol_totp(
    user_id: int, secret: str, accepted_step: int, recovery_code_hashes: Sequence[str]
) -> None:
    """Make ``secret`` the user's TOTP secret (replacing the pending one) with a fresh set of
    recovery codes, all at once: a half-enrolled user could be locked out."""
    with write_transaction():
        put_secret("users", user_id, TOTP_SECRET, secret.encode("ascii"))
        delete_secret("users", user_id, TOTP_PENDING)
        _execute(
            "UPDATE users SET mfa_enrolled_at = ?, totp_last_step = ? WHERE id = ?",
            [utcnow(), accepted_step, user_id],
        )
        _replace_recovery_codes(user_id, recovery_code_hashes)


def _replace_recovery_codes(user_id: int, code_hashes: Sequence[str]) -> None:
    _execute("DELETE FROM recovery_codes WHERE user_id = ?", [user_id])
    now = utcnow()
    for code_hash in code_hashes:
        _execute(
            "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
            [user_id, code_hash, now],
        )


def accept_totp_step(user_id: int, step: int) -> bool:
    """Remember ``step`` as used; False when it (or a later one) was accepted already."""
    cursor = _execute(
        "UPDATE users SET totp_last_step = ? WHERE id = ? "
        "AND (totp_last_step IS NULL OR totp_last_step < ?)",
        [step, user_id, step],
    )
    return cursor.rowcount == 1


def unused_recovery_codes(user_id: int) -> list[tuple[int, str]]:
    """(id, hash) of the recovery codes not used yet."""
    return [
        (r["id"], r["code_hash"])
        for r in _rows(
            "SELECT id, code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL "
            "ORDER BY id",
            [user_id],
        )
    ]


def use_recovery_code(user_id: int, code_id: int) -> bool:
    """Spend one recovery code; False when it was spent already (two tabs at once)."""
    cursor = _execute(
        "UPDATE recovery_codes SET used_at = ? WHERE id = ? AND user_id = ? AND used_at IS NULL",
        [utcnow(), code_id, user_id],
    )
    return cursor.rowcount == 1


def remove_mfa(user_id: int) -> None:
    """Forget the user's authenticator app and recovery codes."""
    with write_transaction():
        for purpose in (TOTP_SECRET, TOTP_PENDING):
            delete_secret("users", user_id, purpose)
        _execute("DELETE FROM recovery_codes WHERE user_id = ?", [user_id])
        _execute(
            "UPDATE users SET mfa_enrolled_at = NULL, totp_last_step = NULL WHERE id = ?", [user_id]
        )


class OrganizationNameTaken(ValueError):
    """Another organization already has this name (names are unique)."""


def get_organization_by_external_id(external_id: str) -> Organization | None:
    """The organization the host product knows by ``external_id`` (validated by the caller)."""
    return _organization(
        _row("SELECT * FROM organizations WHERE external_id = ?", [str(external_id)])
    )


def put_organization_by_external_id(
    external_id: str, name: str
) -> tuple[Organization, Organization | None]:
    """Create the organization the host knows by ``external_id``, or rename it; returns it and
    what it was before (None: created now). Idempotent: the same name again changes nothing.
    Raises :class:`OrganizationNameTaken` when another organization has ``name``."""
    name = name.strip()
    if not name:
        raise ValueError("organization name is empty")
    with write_transaction():
        before = get_organization_by_external_id(external_id)
        other = get_organization_by_name(name)
        if other is not None and (before is None or other.id != before.id):
            raise OrganizationNameTaken(name)
        if before is None:
            cursor = _execute(
                "INSERT INTO organizations (name, created_at, external_id) VALUES (?, ?, ?)",
                [name, utcnow(), str(external_id)],
            )
            org_id = cursor.lastrowid
        else:
            org_id = before.id
            if before.name != name:
                _execute("UPDATE organizations SET name = ? WHERE id = ?", [name, org_id])
        return _organization(_one("SELECT * FROM organizations WHERE id = ?", [org_id])), before
