"""Typed records in, typed records out: the only module that writes SQL.

Every function works on the database of the current app context (``portal.db.get_db``); the CLI
and background jobs run inside ``app.app_context()``. Read-then-write paths run in
``write_transaction()`` (``BEGIN IMMEDIATE``). Secrets never appear in a record: they live in
``vault_blobs``, encrypted by :mod:`portal.vault` and read with :func:`get_secret`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from portal import vault
from portal.db import get_db, write_transaction

ROLES = ("admin", "support")
KINDS = ("customer_owned", "service_provider")
STATES = ("draft", "waiting", "connected", "needs_attention", "needs_reconnect", "deleted")
#: The terminal state: set only by :func:`delete_connection_and_secrets`, never left.
DELETED = "deleted"
HEALTHS = ("unknown", "healthy", "degraded", "failing")
FLOW_KINDS = ("delegated", "admin_consent")
CERT_STATUSES = ("pending", "active", "retired")
FLOW_TTL_SECONDS = 600


def utcnow() -> str:
    """Now as ISO 8601 UTC text with seconds, e.g. ``2026-11-26T12:00:00+00:00``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rows(sql: str, params: Sequence | dict = ()) -> list[dict]:
    return list(get_db().query(sql, params))


def _row(sql: str, params: Sequence | dict = ()) -> dict | None:
    rows = _rows(sql, params)
    return rows[0] if rows else None


def _execute(sql: str, params: Sequence | dict = ()):
    return get_db().execute(sql, params)


# --- Records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Organization:
    id: int
    name: str
    created_at: str
    require_mfa: bool = False  # its admins must sign in with a second factor


@dataclass(frozen=True)
class User:
    """A portal account; also the flask-login user object."""

    id: int
    email: str
    org_id: int | None
    role: str
    password_hash: str = field(repr=False)
    session_epoch: int
    created_at: str
    last_login_at: str | None
    mfa_enrolled_at: str | None = None  # set while an authenticator app is enrolled
    totp_last_step: int | None = field(default=None, repr=False)

    # flask-login protocol: get_id() carries the session epoch, so "sign out" (which bumps the
    # epoch) invalidates every copy of the old session cookie.
    is_active = True
    is_anonymous = False
    is_authenticated = True

    def get_id(self) -> str:
        return f"{self.id}:{self.session_epoch}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_support(self) -> bool:
        return self.role == "support"

    @property
    def has_mfa(self) -> bool:
        return self.mfa_enrolled_at is not None


@dataclass(frozen=True)
class Connection:
    id: str
    org_id: int
    kind: str
    display_name: str | None
    cloud: str | None
    tenant_input: str | None
    tenant_id: str | None
    client_id: str | None
    exchange_enabled: bool
    state: str
    health: str
    wizard_step: int
    draft: dict
    tenant_name: str | None
    tenant_domain: str | None
    last_check: dict | None
    last_checked_at: str | None
    consented_by_oid: str | None
    consented_by_name: str | None
    granted_scopes: tuple[str, ...]
    consented_at: str | None
    refresh_last_ok_at: str | None
    refresh_failure_days: int
    refresh_last_failure_day: str | None
    created_at: str
    updated_at: str
    deleted_at: str | None = None

    @property
    def deleted(self) -> bool:
        return self.state == DELETED

    @property
    def label(self) -> str:
        """What people call this connection."""
        return self.display_name or self.tenant_name or self.tenant_domain or "New connection"


@dataclass(frozen=True)
class CertificateRecord:
    id: str
    connection_id: str
    thumbprint_sha1: str
    thumbprint_sha256: str
    subject: str
    not_before: str
    not_after: str
    cert_pem: str
    status: str
    created_at: str


@dataclass(frozen=True)
class HealthEvent:
    id: int
    connection_id: str
    at: str
    outcome: str
    health: str
    summary: dict


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: str
    actor_user_id: int | None
    org_id: int | None
    connection_id: str | None
    action: str
    detail: dict


@dataclass(frozen=True)
class AuthFlow:
    """A pending OAuth transaction; ``flow`` (the MSAL flow dict) is only set by consume."""

    state: str
    kind: str
    connection_id: str
    user_id: int | None
    browser_binding: str
    created_at: float
    expires_at: float
    consumed_at: float | None
    flow: dict | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Handoff:
    id: str
    connection_id: str
    user_id: int | None
    session_binding: str | None
    created_at: float
    expires_at: float
    consumed_at: float | None
    opened_at: float | None = None
    popup_binding: str | None = field(default=None, repr=False)
    confirm_hash: str | None = field(default=None, repr=False)


def _organization(row: dict | None) -> Organization | None:
    if not row:
        return None
    return Organization(**{**row, "require_mfa": bool(row.get("require_mfa", 0))})


def _user(row: dict | None) -> User | None:
    return User(**row) if row else None


def _connection(row: dict | None) -> Connection | None:
    if not row:
        return None
    row = dict(row)
    row["exchange_enabled"] = bool(row["exchange_enabled"])
    row["draft"] = json.loads(row["draft"] or "{}")
    row["last_check"] = json.loads(row["last_check"]) if row["last_check"] else None
    row["granted_scopes"] = tuple((row["granted_scopes"] or "").split())
    return Connection(**row)


# --- Organizations and users ------------------------------------------------------------------


def create_organization(name: str) -> Organization:
    name = name.strip()
    if not name:
        raise ValueError("organization name is empty")
    cursor = _execute(
        "INSERT INTO organizations (name, created_at) VALUES (?, ?)", [name, utcnow()]
    )
    return get_organization(cursor.lastrowid)


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
        [normalize_email(email), org_id if role == "admin" else None, role, password_hash,
         utcnow()],
    )
    return get_user(cursor.lastrowid)


def get_user(user_id: int) -> User | None:
    return _user(_row("SELECT * FROM users WHERE id = ?", [user_id]))


def get_user_by_email(email: str) -> User | None:
    return _user(_row("SELECT * FROM users WHERE email = ?", [normalize_email(email)]))


def list_users(org_id: int | None = None) -> list[User]:
    if org_id is None:
        return [User(**r) for r in _rows("SELECT * FROM users ORDER BY email")]
    return [User(**r) for r in _rows("SELECT * FROM users WHERE org_id = ? ORDER BY email",
                                     [org_id])]


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


# --- Login attempts (counted in SQLite so every gunicorn worker sees them) ----------------------


def record_login_attempt(account: str, address: str, succeeded: bool,
                         now: float | None = None) -> None:
    now = time.time() if now is None else now
    with write_transaction():
        _execute(
            "INSERT INTO login_attempts (account, address, at, succeeded) VALUES (?, ?, ?, ?)",
            [normalize_email(account), address, now, int(succeeded)],
        )
        _execute("DELETE FROM login_attempts WHERE at < ?", [now - 86400])


#: Failures of one account from one address are remembered this long (the table's horizon).
PAIR_MEMORY_SECONDS = 86400


def recent_failures(*, account: str | None = None, address: str | None = None,
                    window: float, now: float | None = None) -> list[float]:
    """Times of failed attempts in the window, oldest first: of an account, of an address, or
    of one account from one address (both given). Counting for an account stops at its last
    success (from that address, for a pair)."""
    now = time.time() if now is None else now
    if account is None and address is None:
        raise ValueError("account or address")
    where, params = [], []
    if account is not None:
        where.append("account = ?")
        params.append(normalize_email(account))
    if address is not None:
        where.append("address = ?")
        params.append(address)
    since = now - window
    if account is not None:
        last_ok = _row(f"SELECT MAX(at) AS at FROM login_attempts WHERE {' AND '.join(where)} "
                       "AND succeeded = 1", params)
        if last_ok and last_ok["at"] is not None:
            since = max(since, last_ok["at"])
    rows = _rows(f"SELECT at FROM login_attempts WHERE {' AND '.join(where)} AND succeeded = 0 "
                 "AND at > ? ORDER BY at", [*params, since])
    return [r["at"] for r in rows]


def pair_delay_seconds(failures: int, *, free_failures: int, first_delay: float,
                       max_delay: float) -> float:
    """The pause owed after ``failures`` failures of one account from one address: none for
    the first ``free_failures``, then ``first_delay`` doubling with each further one, capped."""
    if failures < free_failures:
        return 0.0
    return min(first_delay * 2 ** min(failures - free_failures, 32), max_delay)


def login_lockout_seconds(account: str, address: str, *, free_failures: int, first_delay: float,
                          max_delay: float, max_per_address: int, window: float,
                          now: float | None = None) -> float:
    """Seconds until a sign-in may be tried again for this account from this address (0: now).

    Failures slow down only the (account, address) pair they came from, so a stranger who knows
    an email address cannot keep its owner out from elsewhere (ASVS V6.1); an address that
    fails too often in the window, whatever the accounts, is stopped altogether.
    """
    now = time.time() if now is None else now
    pair = recent_failures(account=account, address=address, window=PAIR_MEMORY_SECONDS, now=now)
    wait = 0.0
    if pair:
        delay = pair_delay_seconds(len(pair), free_failures=free_failures,
                                   first_delay=first_delay, max_delay=max_delay)
        wait = pair[-1] + delay - now
    from_address = recent_failures(address=address, window=window, now=now)
    if len(from_address) >= max_per_address:
        # Allowed again when fewer than the limit remain inside the window.
        wait = max(wait, from_address[len(from_address) - max_per_address] + window - now)
    return max(wait, 0.0)


# --- Connections ------------------------------------------------------------------------------

_CONNECTION_COLUMNS = (
    "display_name", "cloud", "tenant_input", "tenant_id", "client_id", "exchange_enabled",
    "state", "health", "wizard_step", "draft", "tenant_name", "tenant_domain", "last_check",
    "last_checked_at", "consented_by_oid", "consented_by_name", "granted_scopes",
    "consented_at", "refresh_last_ok_at", "refresh_failure_days", "refresh_last_failure_day",
)
UPDATABLE_CONNECTION_FIELDS = frozenset(_CONNECTION_COLUMNS)


def _connection_value(name: str, value):
    if name == "state" and value not in STATES:
        raise ValueError(f"state must be one of {STATES}")
    if name == "state" and value == DELETED:
        raise ValueError("only delete_connection_and_secrets deletes a connection")
    if name == "health" and value not in HEALTHS:
        raise ValueError(f"health must be one of {HEALTHS}")
    if name == "draft":
        return json.dumps(value or {}, sort_keys=True)
    if name == "last_check":
        return None if value is None else json.dumps(value, sort_keys=True)
    if name == "exchange_enabled":
        return int(bool(value))
    if name == "granted_scopes":
        if value is None:
            return None
        return value if isinstance(value, str) else " ".join(value)
    return value


def create_connection(org_id: int, kind: str, display_name: str | None = None) -> Connection:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    connection_id = secrets.token_hex(16)
    now = utcnow()
    _execute(
        "INSERT INTO connections (id, org_id, kind, display_name, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [connection_id, org_id, kind, display_name, now, now],
    )
    return get_connection(connection_id)


def get_connection(connection_id: str) -> Connection | None:
    """Unscoped lookup: views go through ``portal.access.load_connection_or_404`` instead."""
    return _connection(_row("SELECT * FROM connections WHERE id = ?", [str(connection_id)]))


def list_connections(org_id: int) -> list[Connection]:
    """The organization's connections (a deleted one is no longer the customer's to see)."""
    return [_connection(r) for r in _rows(
        "SELECT * FROM connections WHERE org_id = ? AND state != 'deleted' "
        "ORDER BY created_at, id", [org_id])]


def list_all_connections(include_deleted: bool = False) -> list[Connection]:
    """Every organization's connections; deleted ones only when asked (support's history):
    the jobs that act on connections (keep-alive, health sweep) never see them."""
    where = "" if include_deleted else "WHERE state != 'deleted' "
    return [_connection(r) for r in _rows(
        f"SELECT * FROM connections {where}ORDER BY org_id, created_at, id")]


class ConnectionDeleted(LookupError):
    """A write to a deleted connection (one that started before the deletion finished)."""


def update_connection(connection_id: str, **fields) -> Connection:
    """Set whitelisted columns (``updated_at`` follows); raises KeyError for unknown rows/fields
    and :class:`ConnectionDeleted` for a deleted connection (nothing may change it again)."""
    unknown = set(fields) - UPDATABLE_CONNECTION_FIELDS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    values = {name: _connection_value(name, value) for name, value in fields.items()}
    values["updated_at"] = utcnow()
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    values["_id"] = str(connection_id)
    with write_transaction():
        cursor = _execute(f"UPDATE connections SET {assignments} "
                          "WHERE id = :_id AND state != 'deleted'", values)
        if cursor.rowcount != 1:
            if get_connection(connection_id) is not None:
                raise ConnectionDeleted(connection_id)
            raise KeyError(connection_id)
        return get_connection(connection_id)


def save_draft(connection_id: str, changes: dict, wizard_step: int | None = None) -> Connection:
    """Merge ``changes`` into the connection's JSON draft atomically (nothing typed is lost)."""
    with write_transaction():
        row = _row("SELECT draft FROM connections WHERE id = ?", [str(connection_id)])
        if row is None:
            raise KeyError(connection_id)
        draft = json.loads(row["draft"] or "{}")
        draft.update(changes)
        fields = {"draft": draft}
        if wizard_step is not None:
            fields["wizard_step"] = wizard_step
        return update_connection(connection_id, **fields)


def mark_needs_reconnect(connection_id: str, reason: str) -> Connection | None:
    """Move a connection to ``needs_reconnect`` (e.g. its stored secret is unreadable)."""
    with write_transaction():
        connection = get_connection(connection_id)
        if connection is None or connection.deleted:
            return connection
        if connection.state != "needs_reconnect":
            connection = update_connection(connection_id, state="needs_reconnect",
                                           health="failing")
            add_health_event(connection_id, "needs_reconnect", "failing", {"reason": reason})
            record_audit("connection.needs_reconnect", org_id=connection.org_id,
                         connection_id=connection_id, detail={"reason": reason})
        return connection


def delete_connection(connection_id: str) -> None:
    """Delete a connection with its certificates, flows, events and every secret it owns."""
    connection_id = str(connection_id)
    with write_transaction():
        cert_ids = [r["id"] for r in _rows(
            "SELECT id FROM certificates WHERE connection_id = ?", [connection_id])]
        flow_ids = [r["state"] for r in _rows(
            "SELECT state FROM auth_flows WHERE connection_id = ?", [connection_id])]
        for table, ids in (("connections", [connection_id]), ("certificates", cert_ids),
                           ("auth_flows", flow_ids)):
            for owner_id in ids:
                _execute("DELETE FROM vault_blobs WHERE owner_table = ? AND owner_id = ?",
                         [table, owner_id])
        _execute("DELETE FROM connections WHERE id = ?", [connection_id])


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


# --- Secrets (through the vault) --------------------------------------------------------------


def put_secret(owner_table: str, owner_id, purpose: str, plaintext: bytes,
               keyring: vault.Keyring | None = None) -> None:
    """Encrypt and store (insert or replace) the secret of (owner_table, owner_id, purpose)."""
    keyring = keyring or vault.current_keyring()
    sealed = keyring.seal(plaintext, owner_table=owner_table, owner_id=owner_id, purpose=purpose)
    _execute(
        "INSERT INTO vault_blobs (owner_table, owner_id, purpose, version, key_id, nonce, "
        "ciphertext, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (owner_table, owner_id, purpose) DO UPDATE SET version = excluded.version, "
        "key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, "
        "updated_at = excluded.updated_at",
        [owner_table, str(owner_id), purpose, sealed.version, sealed.key_id, sealed.nonce,
         sealed.ciphertext, utcnow()],
    )


def get_secret(owner_table: str, owner_id, purpose: str,
               keyring: vault.Keyring | None = None) -> bytes | None:
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


def get_connection_secret(connection_id: str, purpose: str) -> bytes | None:
    """A connection's secret; an unreadable one moves the connection to ``needs_reconnect``
    and re-raises ``vault.SecretUnreadable`` (the app's error handler renders that state)."""
    try:
        return get_secret("connections", connection_id, purpose)
    except vault.SecretUnreadable as exc:
        mark_needs_reconnect(connection_id, f"stored {purpose} unreadable: {exc.reason}")
        raise


def vault_key_usage() -> dict[str, int]:
    """Number of blobs per key id."""
    return {r["key_id"]: r["n"] for r in _rows(
        "SELECT key_id, COUNT(*) AS n FROM vault_blobs GROUP BY key_id ORDER BY key_id")}


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
            where = {"owner_table": row["owner_table"], "owner_id": row["owner_id"],
                     "purpose": row["purpose"]}
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


# --- Certificates -----------------------------------------------------------------------------


def add_certificate(connection_id: str, *, cert_pem: str, thumbprint_sha1: str,
                    thumbprint_sha256: str, subject: str, not_before: str, not_after: str,
                    private_key_pem: bytes | None = None, status: str = "active"
                    ) -> CertificateRecord:
    """Store a certificate; its private key goes into the vault in the same transaction."""
    if status not in CERT_STATUSES:
        raise ValueError(f"status must be one of {CERT_STATUSES}")
    cert_id = secrets.token_hex(16)
    with write_transaction():
        _execute(
            "INSERT INTO certificates (id, connection_id, thumbprint_sha1, thumbprint_sha256, "
            "subject, not_before, not_after, cert_pem, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [cert_id, str(connection_id), thumbprint_sha1, thumbprint_sha256, subject,
             not_before, not_after, cert_pem, status, utcnow()],
        )
        if private_key_pem is not None:
            put_secret("certificates", cert_id, "private_key", private_key_pem)
    return get_certificate(cert_id)


def get_certificate(cert_id: str) -> CertificateRecord | None:
    row = _row("SELECT * FROM certificates WHERE id = ?", [str(cert_id)])
    return CertificateRecord(**row) if row else None


def list_certificates(connection_id: str) -> list[CertificateRecord]:
    return [CertificateRecord(**r) for r in _rows(
        "SELECT * FROM certificates WHERE connection_id = ? ORDER BY created_at DESC, rowid DESC",
        [str(connection_id)])]


def active_certificate(connection_id: str) -> CertificateRecord | None:
    for cert in list_certificates(connection_id):
        if cert.status == "active":
            return cert
    return None


def pending_certificate(connection_id: str) -> CertificateRecord | None:
    """The certificate issued for a rotation and not yet proven (at most one is kept)."""
    for cert in list_certificates(connection_id):
        if cert.status == "pending":
            return cert
    return None


def promote_certificate(connection_id: str, cert_id: str) -> None:
    """Make a proven pending certificate the active one and retire the previous, atomically."""
    with write_transaction():
        row = _row("SELECT status FROM certificates WHERE id = ? AND connection_id = ?",
                   [str(cert_id), str(connection_id)])
        if row is None or row["status"] != "pending":
            raise ValueError("only a pending certificate of this connection can be promoted")
        previous = [r["id"] for r in _rows(
            "SELECT id FROM certificates WHERE connection_id = ? AND status = 'active'",
            [str(connection_id)])]
        for old_id in previous:
            set_certificate_status(old_id, "retired")
        _execute("UPDATE certificates SET status = 'active' WHERE id = ?", [str(cert_id)])


def set_certificate_status(cert_id: str, status: str) -> None:
    """Set the status; retiring destroys the private key (a retired certificate never signs
    again, and a key we no longer need is one less to lose). The public part stays."""
    if status not in CERT_STATUSES:
        raise ValueError(f"status must be one of {CERT_STATUSES}")
    with write_transaction():
        _execute("UPDATE certificates SET status = ? WHERE id = ?", [status, str(cert_id)])
        if status == "retired":
            delete_secret("certificates", cert_id, "private_key")


def get_certificate_private_key(cert_id: str) -> bytes | None:
    """The PEM private key; unreadable → connection ``needs_reconnect`` and re-raise."""
    try:
        return get_secret("certificates", cert_id, "private_key")
    except vault.SecretUnreadable as exc:
        connection_id = connection_id_for_secret("certificates", cert_id)
        if connection_id:
            mark_needs_reconnect(connection_id, f"certificate key unreadable: {exc.reason}")
        raise


# --- Health and audit -------------------------------------------------------------------------


def add_health_event(connection_id: str, outcome: str, health: str, summary: dict | None = None,
                     at: str | None = None) -> HealthEvent:
    if health not in HEALTHS:
        raise ValueError(f"health must be one of {HEALTHS}")
    cursor = _execute(
        "INSERT INTO health_events (connection_id, at, outcome, health, summary) "
        "VALUES (?, ?, ?, ?, ?)",
        [str(connection_id), at or utcnow(), outcome, health,
         json.dumps(summary or {}, sort_keys=True)],
    )
    row = _row("SELECT * FROM health_events WHERE id = ?", [cursor.lastrowid])
    return _health_event(row)


def _health_event(row: dict) -> HealthEvent:
    row = dict(row)
    row["summary"] = json.loads(row["summary"] or "{}")
    return HealthEvent(**row)


def list_health_events(connection_id: str, limit: int = 20) -> list[HealthEvent]:
    """Newest first."""
    return [_health_event(r) for r in _rows(
        "SELECT * FROM health_events WHERE connection_id = ? ORDER BY at DESC, id DESC LIMIT ?",
        [str(connection_id), int(limit)])]


def record_audit(action: str, actor: User | int | None = None, org_id: int | None = None,
                 connection_id: str | None = None, detail: dict | None = None) -> AuditEvent:
    """Append an audit event (append-only: triggers refuse UPDATE and DELETE). No secrets."""
    actor_id = actor.id if isinstance(actor, User) else actor
    cursor = _execute(
        "INSERT INTO audit_events (at, actor_user_id, org_id, connection_id, action, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [utcnow(), actor_id, org_id, connection_id, action, json.dumps(detail or {},
                                                                        sort_keys=True)],
    )
    return _audit(_row("SELECT * FROM audit_events WHERE id = ?", [cursor.lastrowid]))


def _audit(row: dict) -> AuditEvent:
    row = dict(row)
    row["detail"] = json.loads(row["detail"] or "{}")
    return AuditEvent(**row)


def list_audit_events(*, org_id: int | None = None, connection_id: str | None = None,
                      action: str | None = None, limit: int = 100) -> list[AuditEvent]:
    """Newest first, optionally filtered."""
    clauses, params = [], []
    for column, value in (("org_id", org_id), ("connection_id", connection_id),
                          ("action", action)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return [_audit(r) for r in _rows(
        f"SELECT * FROM audit_events {where} ORDER BY id DESC LIMIT ?", [*params, int(limit)])]


# --- OAuth flows and handoffs (single use, in one BEGIN IMMEDIATE transaction) ----------------


def browser_binding(browser_cookie: str) -> str:
    """What is stored of the secret a browser holds in its flow cookie: its SHA-256, so the
    database alone never holds a value that could be replayed as that cookie."""
    return hashlib.sha256(browser_cookie.encode()).hexdigest()


def create_auth_flow(*, state: str, kind: str, connection_id: str, user_id: int | None,
                     browser_cookie: str, flow: dict, ttl: float = FLOW_TTL_SECONDS,
                     now: float | None = None) -> AuthFlow:
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
    return AuthFlow(state, kind, str(connection_id), user_id, binding, now, now + ttl,
                    None)


def consume_auth_flow(state: str, browser_cookie: str, kind: str, now: float | None = None,
                      user_id: int | None = None) -> AuthFlow | None:
    """Burn the flow of ``state`` and return it with its MSAL flow dict, or None when missing,
    expired, already used, of another ``kind``, bound to another browser or unreadable. A flow
    of another kind is left untouched: a delegated state posted to the admin-consent return
    (or the reverse) must not burn the flow the browser is really running."""
    now = time.time() if now is None else now
    with write_transaction():
        row = _row("SELECT * FROM auth_flows WHERE state = ?", [state])
        if row is None or row["consumed_at"] is not None or row["expires_at"] <= now \
                or row["kind"] != kind:
            return None
        if user_id is not None and row["user_id"] != user_id:
            return None  # another user's flow: neither theirs to finish nor to burn
        if not hmac.compare_digest(str(row["browser_binding"]), browser_binding(browser_cookie)):
            return None
        _execute("UPDATE auth_flows SET consumed_at = ? WHERE state = ? AND consumed_at IS NULL",
                 [now, state])
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
        states = [r["state"] for r in _rows(
            "SELECT state FROM auth_flows WHERE expires_at <= ? OR consumed_at IS NOT NULL",
            [now])]
        for state in states:
            delete_secret("auth_flows", state, "msal_flow")
            _execute("DELETE FROM auth_flows WHERE state = ?", [state])
    return len(states)


def create_handoff(*, connection_id: str, user_id: int | None, session_binding: str | None = None,
                   ttl: float = FLOW_TTL_SECONDS, now: float | None = None) -> Handoff:
    """A one-time id (256 random bits) that lets a popup continue what the iframe started."""
    now = time.time() if now is None else now
    handoff_id = secrets.token_urlsafe(32)
    _execute(
        "INSERT INTO handoffs (id, connection_id, user_id, session_binding, created_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        [handoff_id, str(connection_id), user_id, session_binding, now, now + ttl],
    )
    return Handoff(handoff_id, str(connection_id), user_id, session_binding, now, now + ttl, None)


def table_counts(tables: Iterable[str] | None = None) -> dict[str, int]:
    """Row counts per table (tests and the health check)."""
    db = get_db()
    names = list(tables) if tables is not None else [
        t for t in db.table_names() if not t.startswith("_")]
    return {name: db[name].count for name in names}


def ping() -> bool:
    """True when the database answers."""
    return _row("SELECT 1 AS ok") == {"ok": 1}


# --- Refresh leases (portal.keepalive: one refresher per connection at a time) ----------------


def claim_refresh_lease(connection_id: str, owner: str, *, now: float, ttl: float) -> bool:
    """Take the refresh lease of a connection for ``ttl`` seconds; False while another owner
    holds an unexpired one. Call it inside the caller's ``write_transaction`` together with the
    check that the connection still needs a refresh."""
    with write_transaction():
        row = _row("SELECT owner, lease_until FROM refresh_leases WHERE connection_id = ?",
                   [str(connection_id)])
        if row is not None and row["owner"] != owner and row["lease_until"] > now:
            return False
        _execute(
            "INSERT INTO refresh_leases (connection_id, owner, lease_until) VALUES (?, ?, ?) "
            "ON CONFLICT (connection_id) DO UPDATE SET owner = excluded.owner, "
            "lease_until = excluded.lease_until",
            [str(connection_id), owner, now + ttl],
        )
        return True


def holds_refresh_lease(connection_id: str, owner: str) -> bool:
    """True when ``owner`` still holds the connection's refresh lease (expired or not: nobody
    else has taken it over)."""
    row = _row("SELECT owner FROM refresh_leases WHERE connection_id = ?", [str(connection_id)])
    return row is not None and row["owner"] == owner


def release_refresh_lease(connection_id: str, owner: str) -> None:
    """Give the lease back (only the owner's own lease is removed)."""
    _execute("DELETE FROM refresh_leases WHERE connection_id = ? AND owner = ?",
             [str(connection_id), owner])


# --- Delegated link (issue 6: Link Account for service-provider connections) ------------------


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


def record_link_outcome(handoff_id: str, connection_id: str, outcome: str,
                        detail: dict | None = None, now: float | None = None) -> None:
    """Store (or replace) what became of the link started from ``handoff_id``. No secrets."""
    now = time.time() if now is None else now
    _execute(
        "INSERT INTO link_outcomes (handoff_id, connection_id, outcome, detail, finished_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (handoff_id) DO UPDATE SET outcome = excluded.outcome,"
        " detail = excluded.detail, finished_at = excluded.finished_at",
        [str(handoff_id), str(connection_id), outcome, json.dumps(detail or {}, sort_keys=True),
         now],
    )


def save_delegated_link(connection_id: str, *, token_cache: bytes, fields: dict,
                        actor: int | None, audit_detail: dict, health_summary: dict,
                        handoff_id: str | None = None) -> Connection:
    """All effects of a successful delegated sign-in in one ``BEGIN IMMEDIATE`` transaction:
    the token cache into the vault, the connection's consent fields and state, a health event,
    an audit row and (when started from a handoff) the outcome the iframe polls for."""
    with write_transaction():
        put_secret("connections", connection_id, "token_cache", token_cache)
        connection = update_connection(connection_id, **fields)
        add_health_event(connection_id, "linked", connection.health, health_summary)
        record_audit("connection.linked", actor=actor, org_id=connection.org_id,
                     connection_id=connection_id, detail=audit_detail)
        if handoff_id is not None:
            record_link_outcome(handoff_id, connection_id, connection.state,
                                {"missing_scopes": health_summary.get("missing_scopes", [])})
    return connection


# --- Customer-owned checks (issue 5: Link Account / Check again) ------------------------------


def record_check_result(connection_id: str, fields: dict, *, outcome: str, health: str,
                        summary: dict, actor: int | None, detail: dict) -> Connection:
    """Store a verification report on the connection with its health event and audit row,
    in one transaction. ``fields`` are connection columns (the report holds no secrets)."""
    with write_transaction():
        connection = update_connection(connection_id, **fields)
        add_health_event(connection_id, outcome, health, summary)
        record_audit("connection.check", actor=actor, org_id=connection.org_id,
                     connection_id=connection_id, detail=detail)
    return connection


# --- Popup sign-ins: confirmation by the starting session, operator holds ----------------------
# docs/decisions/0004-handoff-bound-to-its-session.md

#: How long a redeemed popup sign-in waits for the starting session's confirmation.
CONFIRM_TTL_SECONDS = 600.0
PENDING_TOKEN_PURPOSE = "pending_token_cache"


def open_handoff(handoff_id: str, popup_cookie: str, confirm_token: str,
                 now: float | None = None) -> Handoff | None:
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
                str(row["popup_binding"]), popup):
            return None
        confirm = browser_binding(confirm_token)
        _execute("UPDATE handoffs SET opened_at = COALESCE(opened_at, ?), popup_binding = ?, "
                 "confirm_hash = ? WHERE id = ?", [now, popup, confirm, str(handoff_id)])
        row.update(opened_at=row["opened_at"] or now, popup_binding=popup, confirm_hash=confirm)
        return Handoff(**row)


def consume_confirmed_handoff(handoff_id: str, popup_cookie: str, confirm_token: str,
                              now: float | None = None) -> Handoff | None:
    """Burn a handoff whose confirmation page was answered by the browser it was shown to, with
    the token it was shown; None otherwise."""
    now = time.time() if now is None else now
    with write_transaction():
        row = _row("SELECT * FROM handoffs WHERE id = ?", [str(handoff_id)])
        if row is None or row["consumed_at"] is not None or row["expires_at"] <= now \
                or row["popup_binding"] is None or row["confirm_hash"] is None:
            return None
        if not (hmac.compare_digest(str(row["popup_binding"]), browser_binding(popup_cookie))
                and hmac.compare_digest(str(row["confirm_hash"]),
                                        browser_binding(confirm_token))):
            return None
        _execute("UPDATE handoffs SET consumed_at = ?, confirm_hash = NULL WHERE id = ?",
                 [now, str(handoff_id)])
        row.update(consumed_at=now, confirm_hash=None)
        return Handoff(**row)


def hold_for_confirmation(handoff_id: str, connection_id: str, *, token_cache: bytes,
                          pending: dict, now: float | None = None) -> None:
    """A redeemed popup sign-in waits for its session: the token cache sealed under the handoff,
    what to show and store (no secrets) as the outcome ``confirm`` the iframe polls for."""
    with write_transaction():
        put_secret("handoffs", handoff_id, PENDING_TOKEN_PURPOSE, token_cache)
        record_link_outcome(handoff_id, connection_id, "confirm", pending, now=now)


def take_pending_link(handoff_id: str, connection_id: str, session_binding: str,
                      now: float | None = None) -> tuple[dict, bytes] | None:
    """Inside the caller's transaction: the pending result of ``handoff_id`` and its token cache,
    destroyed from the vault; None unless it waits for confirmation, in time, and was started by
    the session with ``session_binding``."""
    now = time.time() if now is None else now
    row = _row(
        "SELECT o.detail, o.finished_at, h.session_binding FROM link_outcomes o "
        "JOIN handoffs h ON h.id = o.handoff_id "
        "WHERE o.handoff_id = ? AND o.connection_id = ? AND o.outcome = 'confirm'",
        [str(handoff_id), str(connection_id)])
    if row is None or row["finished_at"] + CONFIRM_TTL_SECONDS <= now:
        return None
    if not hmac.compare_digest(str(row["session_binding"] or ""), str(session_binding)):
        return None
    token_cache = get_secret("handoffs", handoff_id, PENDING_TOKEN_PURPOSE)
    delete_secret("handoffs", handoff_id, PENDING_TOKEN_PURPOSE)
    if token_cache is None:
        return None
    return json.loads(row["detail"] or "{}"), token_cache


def discard_pending_link(handoff_id: str, connection_id: str, outcome: str,
                         detail: dict | None = None) -> None:
    """End a pending result without linking (``cancelled``, ``expired``): its tokens are
    destroyed."""
    with write_transaction():
        delete_secret("handoffs", handoff_id, PENDING_TOKEN_PURPOSE)
        record_link_outcome(handoff_id, connection_id, outcome, detail or {})


def purge_unconfirmed_links(now: float | None = None) -> int:
    """Destroy the tokens of every pending result that was not confirmed in time."""
    now = time.time() if now is None else now
    rows = _rows("SELECT handoff_id, connection_id FROM link_outcomes "
                 "WHERE outcome = 'confirm' AND finished_at <= ?", [now - CONFIRM_TTL_SECONDS])
    for row in rows:
        discard_pending_link(row["handoff_id"], row["connection_id"], "expired")
    return len(rows)


LINKED_STATES = ("connected", "needs_attention", "needs_reconnect")


def organizations_linking_tenant(tenant_id: str, except_org_id: int) -> list[Organization]:
    """Other organizations with a connection proven against ``tenant_id`` (linked at least
    once: a typed-in tenant of a draft proves nothing)."""
    placeholders = ", ".join("?" for _ in LINKED_STATES)
    rows = _rows(
        "SELECT DISTINCT o.* FROM organizations o JOIN connections c ON c.org_id = o.id "
        f"WHERE lower(c.tenant_id) = lower(?) AND c.org_id != ? AND c.state IN ({placeholders})"
        " ORDER BY o.id", [str(tenant_id), int(except_org_id), *LINKED_STATES])
    return [Organization(**r) for r in rows]


@dataclass(frozen=True)
class LinkReview:
    """A delegated link held for the operator: its tenant is already linked elsewhere."""

    id: str
    connection_id: str
    org_id: int
    tenant_id: str
    other_org_ids: tuple[int, ...]
    requested_by: int | None
    detail: dict
    status: str
    created_at: str
    decided_at: str | None
    decided_by: str | None


def _link_review(row: dict | None) -> LinkReview | None:
    if row is None:
        return None
    row = dict(row)
    row["other_org_ids"] = tuple(json.loads(row["other_org_ids"]))
    row["detail"] = json.loads(row["detail"] or "{}")
    return LinkReview(**row)


def create_link_review(connection: Connection, *, tenant_id: str, other_org_ids: Sequence[int],
                       requested_by: int | None, detail: dict, token_cache: bytes) -> LinkReview:
    """Hold a link for the operator (inside the caller's transaction or its own)."""
    # Hex: an id typed on a command line must never start with "-" (read as an option).
    review_id = secrets.token_hex(12)
    now = utcnow()
    with write_transaction():
        _execute(
            "INSERT INTO link_reviews (id, connection_id, org_id, tenant_id, other_org_ids, "
            "requested_by, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [review_id, connection.id, connection.org_id, tenant_id,
             json.dumps(list(other_org_ids)), requested_by, json.dumps(detail, sort_keys=True),
             now])
        put_secret("link_reviews", review_id, "token_cache", token_cache)
    review = get_link_review(review_id)
    assert review is not None
    return review


def get_link_review(review_id: str) -> LinkReview | None:
    return _link_review(_row("SELECT * FROM link_reviews WHERE id = ?", [str(review_id)]))


def list_link_reviews(status: str | None = "held", connection_id: str | None = None
                      ) -> list[LinkReview]:
    """Reviews, oldest first (``status=None``: every status)."""
    clauses, params = [], []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if connection_id is not None:
        clauses.append("connection_id = ?")
        params.append(str(connection_id))
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = _rows(f"SELECT * FROM link_reviews {where} ORDER BY created_at, rowid", params)
    return [r for r in (_link_review(row) for row in rows) if r is not None]


def decide_link_review(review_id: str, *, approve: bool, decided_by: str
                       ) -> tuple[LinkReview, bytes | None] | None:
    """Inside the caller's transaction: mark a held review decided and take its token cache out
    of the vault (destroyed; returned only when approved). None unless it is still held."""
    row = _row("SELECT * FROM link_reviews WHERE id = ? AND status = 'held'", [str(review_id)])
    if row is None:
        return None
    token_cache = get_secret("link_reviews", review_id, "token_cache")
    delete_secret("link_reviews", review_id, "token_cache")
    _execute("UPDATE link_reviews SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?",
             ["approved" if approve else "rejected", utcnow(), decided_by, str(review_id)])
    review = get_link_review(review_id)
    assert review is not None
    return review, (token_cache if approve else None)

# --- Connection deletion ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionReceipt:
    """What deleting a connection destroyed and what is left for the customer to remove at
    Microsoft (identifiers and thumbprints only, never a secret)."""

    connection_id: str
    org_id: int
    kind: str
    cloud: str | None
    tenant_id: str | None
    client_id: str | None
    deleted_at: str
    thumbprints: tuple[str, ...]
    destroyed: dict


def delete_connection_and_secrets(connection_id: str, actor: int | None) -> DeletionReceipt:
    """Delete a connection, in one transaction: every secret it owns is destroyed (token cache,
    every certificate's private key, the MSAL flows of pending sign-ins), pending flows and
    handoffs are burnt, certificates retired, the raw typed inputs cleared, the state set to
    ``deleted``; a health event and an audit row record it. The row stays (history, audit,
    support). Raises KeyError for an unknown connection and ConnectionDeleted for a deleted one.
    """
    connection_id = str(connection_id)
    with write_transaction():
        connection = get_connection(connection_id)
        if connection is None:
            raise KeyError(connection_id)
        if connection.deleted:
            raise ConnectionDeleted(connection_id)
        certificates = list_certificates(connection_id)
        now, at = time.time(), utcnow()
        destroyed = {
            "token_cache": _destroy_secrets("connections", [connection_id]),
            "private_keys": _destroy_secrets("certificates", [c.id for c in certificates]),
            **_burn_pending_sign_ins(connection_id, now),
            **_drop_unlinked_results(connection_id, at),
        }
        retired = _execute("UPDATE certificates SET status = 'retired' "
                           "WHERE connection_id = ? AND status != 'retired'",
                           [connection_id]).rowcount
        _execute("DELETE FROM refresh_leases WHERE connection_id = ?", [connection_id])
        # The draft and tenant_input are free text as typed (anything pasted lands there);
        # the validated identifiers stay: support and the clean-up steps need them.
        _execute("UPDATE connections SET state = 'deleted', health = 'unknown', deleted_at = ?, "
                 "updated_at = ?, draft = '{}', tenant_input = NULL WHERE id = ?",
                 [at, at, connection_id])
        receipt = DeletionReceipt(
            connection_id, connection.org_id, connection.kind, connection.cloud,
            connection.tenant_id, connection.client_id, at,
            tuple(c.thumbprint_sha1 for c in certificates), destroyed)
        add_health_event(connection_id, "deleted", "unknown",
                         {"destroyed": destroyed, "certificates_retired": retired}, at=at)
        record_audit("connection.delete", actor=actor, org_id=connection.org_id,
                     connection_id=connection_id, detail=_deletion_detail(receipt, retired))
    return receipt


def _drop_unlinked_results(connection_id: str, at: str) -> dict[str, int]:
    """Sign-ins redeemed but never linked: a popup result waiting for its confirmation, a link
    held for the operator. Their token caches are destroyed; the holds are closed."""
    handoffs = [r["id"] for r in _rows("SELECT id FROM handoffs WHERE connection_id = ?",
                                       [connection_id])]
    reviews = [r["id"] for r in _rows(
        "SELECT id FROM link_reviews WHERE connection_id = ? AND status = 'held'",
        [connection_id])]
    _execute("UPDATE link_reviews SET status = 'rejected', decided_at = ?, "
             "decided_by = 'connection deleted' WHERE connection_id = ? AND status = 'held'",
             [at, connection_id])
    return {"unconfirmed_sign_ins": _destroy_secrets("handoffs", handoffs),
            "held_links": _destroy_secrets("link_reviews", reviews)}


def _destroy_secrets(owner_table: str, owner_ids: Sequence[str]) -> int:
    """Delete every vault blob of these owners (all purposes); returns how many."""
    count = 0
    for owner_id in owner_ids:
        count += _execute("DELETE FROM vault_blobs WHERE owner_table = ? AND owner_id = ?",
                          [owner_table, str(owner_id)]).rowcount
    return count


def _burn_pending_sign_ins(connection_id: str, now: float) -> dict[str, int]:
    """Consume every unused auth flow and handoff of the connection and destroy the flows'
    secrets, so a sign-in started before the deletion can never complete after it."""
    states = [r["state"] for r in _rows(
        "SELECT state FROM auth_flows WHERE connection_id = ?", [connection_id])]
    flows = _execute("UPDATE auth_flows SET consumed_at = ? "
                     "WHERE connection_id = ? AND consumed_at IS NULL",
                     [now, connection_id]).rowcount
    handoffs = _execute("UPDATE handoffs SET consumed_at = ? "
                        "WHERE connection_id = ? AND consumed_at IS NULL",
                        [now, connection_id]).rowcount
    return {"flow_secrets": _destroy_secrets("auth_flows", states), "auth_flows_burnt": flows,
            "handoffs_burnt": handoffs}


def _deletion_detail(receipt: DeletionReceipt, retired: int) -> dict:
    return {"kind": receipt.kind, "cloud": receipt.cloud, "tenant_id": receipt.tenant_id,
            "client_id": receipt.client_id, "thumbprints": list(receipt.thumbprints),
            "destroyed": receipt.destroyed, "certificates_retired": retired}


def deletion_audit(connection_id: str) -> AuditEvent | None:
    """The audit row of the connection's deletion (who deleted it, and what was destroyed)."""
    events = list_audit_events(connection_id=str(connection_id), action="connection.delete",
                               limit=1)
    return events[0] if events else None
# --- Multi-factor sign-in (TOTP secret in the vault, recovery codes as hashes) ----------------

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


def enrol_totp(user_id: int, secret: str, accepted_step: int,
               recovery_code_hashes: Sequence[str]) -> None:
    """Make ``secret`` the user's TOTP secret (replacing the pending one) with a fresh set of
    recovery codes, all at once: a half-enrolled user could be locked out."""
    with write_transaction():
        put_secret("users", user_id, TOTP_SECRET, secret.encode("ascii"))
        delete_secret("users", user_id, TOTP_PENDING)
        _execute("UPDATE users SET mfa_enrolled_at = ?, totp_last_step = ? WHERE id = ?",
                 [utcnow(), accepted_step, user_id])
        _replace_recovery_codes(user_id, recovery_code_hashes)


def _replace_recovery_codes(user_id: int, code_hashes: Sequence[str]) -> None:
    _execute("DELETE FROM recovery_codes WHERE user_id = ?", [user_id])
    now = utcnow()
    for code_hash in code_hashes:
        _execute("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
                 [user_id, code_hash, now])


def accept_totp_step(user_id: int, step: int) -> bool:
    """Remember ``step`` as used; False when it (or a later one) was accepted already."""
    cursor = _execute(
        "UPDATE users SET totp_last_step = ? WHERE id = ? "
        "AND (totp_last_step IS NULL OR totp_last_step < ?)", [step, user_id, step])
    return cursor.rowcount == 1


def unused_recovery_codes(user_id: int) -> list[tuple[int, str]]:
    """(id, hash) of the recovery codes not used yet."""
    return [(r["id"], r["code_hash"]) for r in _rows(
        "SELECT id, code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL "
        "ORDER BY id", [user_id])]


def use_recovery_code(user_id: int, code_id: int) -> bool:
    """Spend one recovery code; False when it was spent already (two tabs at once)."""
    cursor = _execute(
        "UPDATE recovery_codes SET used_at = ? WHERE id = ? AND user_id = ? AND used_at IS NULL",
        [utcnow(), code_id, user_id])
    return cursor.rowcount == 1


def remove_mfa(user_id: int) -> None:
    """Forget the user's authenticator app and recovery codes."""
    with write_transaction():
        for purpose in (TOTP_SECRET, TOTP_PENDING):
            delete_secret("users", user_id, purpose)
        _execute("DELETE FROM recovery_codes WHERE user_id = ?", [user_id])
        _execute("UPDATE users SET mfa_enrolled_at = NULL, totp_last_step = NULL WHERE id = ?",
                 [user_id])
