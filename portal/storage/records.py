"""Typed records (frozen dataclasses) and the value lists of the schema; no SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import overload

ROLES = ("admin", "support")


KINDS = ("customer_owned", "service_provider")


STATES = ("draft", "waiting", "connected", "needs_attention", "needs_reconnect", "deleted")


#: The terminal state: set only by :func:`delete_connection_and_secrets`, never left.
DELETED = "deleted"


HEALTHS = ("unknown", "healthy", "degraded", "failing")


FLOW_KINDS = ("delegated", "admin_consent")


CERT_STATUSES = ("pending", "active", "retired")


@dataclass(frozen=True)
class Organization:
    id: int
    name: str
    created_at: str
    require_mfa: bool = False  # its admins must sign in with a second factor
    external_id: str | None = None  # the host product's own id for it (m011; the host API)


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
    # How the user gets in: ``password`` (with a second factor where required) or, for guests
    # with no password, ``connect_session`` (the host's embedded user) or ``setup_link``.
    sign_in: str = "password"
    external_user_id: str | None = None
    display_name: str | None = None
    contact_email: str | None = None
    only_connection_id: str | None = None  # a setup link's guest sees this connection only

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

    @property
    def is_guest(self) -> bool:
        """No password: a connect session's or a setup link's user."""
        return self.sign_in != "password"

    @property
    def label(self) -> str:
        """How pages name the user: a guest's ``email`` column is a key, not an address."""
        if not self.is_guest:
            return self.email
        if self.sign_in == "setup_link":
            return self.contact_email or "IT admin (setup link)"
        parts = [p for p in (self.display_name, self.contact_email) if p]
        return " · ".join(parts) or "Host user"


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
    # The health record (portal.connections.health), apart from the lifecycle state.
    last_attempt_at: str | None = None
    last_success_at: str | None = None
    last_failure_at: str | None = None
    failing_since: str | None = None
    error_class: str | None = None
    last_changes: tuple[dict, ...] = ()
    #: The last attempt did not finish (Microsoft did not let it, or our side could not start
    #: it): the last report is older than it.
    last_attempt_unfinished: bool = False

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


@overload
def _organization(row: dict) -> Organization: ...
@overload
def _organization(row: None) -> None: ...
def _organization(row: dict | None) -> Organization | None:
    if not row:
        return None
    return Organization(**{**row, "require_mfa": bool(row.get("require_mfa", 0))})


@overload
def _user(row: dict) -> User: ...
@overload
def _user(row: None) -> None: ...
def _user(row: dict | None) -> User | None:
    return User(**row) if row else None


@overload
def _connection(row: dict) -> Connection: ...
@overload
def _connection(row: None) -> None: ...
def _connection(row: dict | None) -> Connection | None:
    if not row:
        return None
    row = dict(row)
    row["exchange_enabled"] = bool(row["exchange_enabled"])
    row["draft"] = json.loads(row["draft"] or "{}")
    row["last_check"] = json.loads(row["last_check"]) if row["last_check"] else None
    row["granted_scopes"] = tuple((row["granted_scopes"] or "").split())
    row["last_changes"] = tuple(json.loads(row["last_changes"])) if row["last_changes"] else ()
    row["last_attempt_unfinished"] = bool(row["last_attempt_unfinished"])
    return Connection(**row)


LINKED_STATES = ("connected", "needs_attention", "needs_reconnect")


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
