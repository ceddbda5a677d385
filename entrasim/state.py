"""The simulated directory: tenants, users, app registrations, service principals and grants.

Plain dataclasses kept in one `Store` behind a lock; `Store.to_dict()` / `Store.load()` are the JSON
persistence used by the admin API (`GET/PUT /_sim/state`) and by `serve --state FILE`.
Grants carry a visibility window so replication delay can be simulated: a grant made with a delay
of N seconds becomes visible N simulated seconds later, and a revocation likewise.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields

from . import catalog


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Tenant:
    id: str
    cloud: str
    domains: list[str]
    display_name: str
    created_at: float = 0.0


@dataclass
class User:
    id: str
    tenant_id: str
    upn: str
    display_name: str
    admin: bool = True
    # Refresh tokens issued before this instant are revoked (AADSTS50173).
    tokens_valid_from: float = 0.0


@dataclass
class KeyCredential:
    key_id: str
    thumbprint: str  # SHA-1 hex, upper case, as the Entra admin center shows it
    thumbprint_sha256: str  # base64url SHA-256 of the DER, as in the `x5t#S256` header
    cert_pem: str
    start: float
    end: float
    display_name: str = ""


@dataclass
class PasswordCredential:
    key_id: str
    secret: str
    hint: str
    start: float
    end: float


@dataclass
class RequiredPermission:
    """An entry of the registration's requiredResourceAccess ("API permissions")."""

    resource: str  # "graph" | "exchange"
    name: str
    type: str  # "Role" (application) | "Scope" (delegated)


@dataclass
class App:
    app_id: str
    object_id: str
    tenant_id: str  # home tenant
    display_name: str
    multi_tenant: bool = False
    redirect_uris: list[str] = field(default_factory=list)
    key_credentials: list[KeyCredential] = field(default_factory=list)
    password_credentials: list[PasswordCredential] = field(default_factory=list)
    required_permissions: list[RequiredPermission] = field(default_factory=list)


@dataclass
class ServicePrincipal:
    id: str
    app_id: str
    tenant_id: str
    display_name: str
    enabled: bool = True


@dataclass
class Visible:
    """Mixin: a grant's replication window in simulated time."""

    visible_from: float = 0.0
    removed_from: float | None = None

    def visible(self, now: float) -> bool:
        return self.visible_from <= now and (self.removed_from is None or now < self.removed_from)


@dataclass
class AppRoleAssignment(Visible):
    id: str = ""
    tenant_id: str = ""
    principal_id: str = ""
    resource_id: str = ""
    app_role_id: str = ""
    created: float = 0.0


@dataclass
class DelegatedGrant(Visible):
    id: str = ""
    tenant_id: str = ""
    client_id: str = ""  # client service principal id
    resource_id: str = ""  # resource service principal id
    scope: str = ""
    principal_id: str | None = None  # None: consentType AllPrincipals


@dataclass
class RoleAssignment(Visible):
    id: str = ""
    tenant_id: str = ""
    principal_id: str = ""
    role_definition_id: str = ""


@dataclass
class RefreshToken:
    token: str
    tenant_id: str
    user_id: str
    app_id: str
    scopes: list[str]
    issued_at: float
    last_used_at: float


@dataclass
class AuthCode:
    code: str
    tenant_id: str
    user_id: str
    app_id: str
    redirect_uri: str
    scopes: list[str]
    code_challenge: str
    nonce: str | None
    issued_at: float
    redeemed: bool = False


_TABLES = {
    "tenants": Tenant,
    "users": User,
    "apps": App,
    "service_principals": ServicePrincipal,
    "app_role_assignments": AppRoleAssignment,
    "delegated_grants": DelegatedGrant,
    "role_assignments": RoleAssignment,
    "refresh_tokens": RefreshToken,
    "auth_codes": AuthCode,
}
_NESTED = {
    "key_credentials": KeyCredential,
    "password_credentials": PasswordCredential,
    "required_permissions": RequiredPermission,
}


def _build(cls, data: dict):
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    for key, nested in _NESTED.items():
        if key in kwargs:
            kwargs[key] = [nested(**item) for item in kwargs[key]]
    return cls(**kwargs)


class Store:
    """All simulator state, its clock and its knobs; every access holds `lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.tenants: dict[str, Tenant] = {}
            self.users: dict[str, User] = {}
            self.apps: dict[str, App] = {}
            self.service_principals: dict[str, ServicePrincipal] = {}
            self.app_role_assignments: dict[str, AppRoleAssignment] = {}
            self.delegated_grants: dict[str, DelegatedGrant] = {}
            self.role_assignments: dict[str, RoleAssignment] = {}
            self.refresh_tokens: dict[str, RefreshToken] = {}
            self.auth_codes: dict[str, AuthCode] = {}
            self.clock_offset = 0.0
            self.replication_delay = 0.0
            self.interaction: dict = {"mode": "page", "user": None}
            self.tamper_id_token: dict | None = None

    # --- clock -------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated time: wall clock plus the offset moved by `advance_clock`."""
        return time.time() + self.clock_offset

    # --- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        with self.lock:
            data = {name: [asdict(v) for v in getattr(self, name).values()] for name in _TABLES}
            data.update(
                clock_offset=self.clock_offset,
                replication_delay=self.replication_delay,
                interaction=dict(self.interaction),
            )
            return data

    def load(self, data: dict) -> None:
        with self.lock:
            self.clear()
            for name, cls in _TABLES.items():
                table = getattr(self, name)
                for item in data.get(name, []):
                    obj = _build(cls, item)
                    key = (
                        obj.token
                        if cls is RefreshToken
                        else (
                            obj.code if cls is AuthCode else (obj.app_id if cls is App else obj.id)
                        )
                    )
                    table[key] = obj
            self.clock_offset = float(data.get("clock_offset", 0.0))
            self.replication_delay = float(data.get("replication_delay", 0.0))
            self.interaction = dict(data.get("interaction") or {"mode": "page", "user": None})

    # --- lookups -----------------------------------------------------------------------
    def find_tenant(self, identifier: str, login_group: str | None = None) -> Tenant | None:
        """A tenant by GUID or verified domain, limited to one cloud login host when given."""
        ident = identifier.lower()
        with self.lock:
            for t in self.tenants.values():
                if login_group and catalog.CLOUDS[t.cloud].login_group != login_group:
                    continue
                if t.id == ident or ident in (d.lower() for d in t.domains):
                    return t
        return None

    def find_user(self, upn: str, tenant_id: str | None = None) -> User | None:
        upn = upn.lower()
        with self.lock:
            for u in self.users.values():
                if u.upn.lower() == upn and (tenant_id is None or u.tenant_id == tenant_id):
                    return u
        return None

    def sp_for(self, tenant_id: str, app_id: str) -> ServicePrincipal | None:
        with self.lock:
            for sp in self.service_principals.values():
                if sp.tenant_id == tenant_id and sp.app_id == app_id:
                    return sp
        return None

    def resource_sp(self, tenant_id: str, kind: str) -> ServicePrincipal:
        """The tenant's service principal of Microsoft Graph or Exchange Online (always present)."""
        app_id, name = catalog.RESOURCES[kind]
        with self.lock:
            sp = self.sp_for(tenant_id, app_id)
            if sp is None:
                sp = ServicePrincipal(new_id(), app_id, tenant_id, name)
                self.service_principals[sp.id] = sp
            return sp

    def app_roles_of(self, tenant_id: str, sp_id: str, kind: str) -> list[str]:
        """Names of the app roles of one resource visible now for this principal."""
        now = self.now()
        resource = self.resource_sp(tenant_id, kind)
        by_id = {v: k for k, v in catalog.APP_ROLES[kind].items()}
        with self.lock:
            return sorted(
                {
                    by_id[a.app_role_id]
                    for a in self.app_role_assignments.values()
                    if a.principal_id == sp_id
                    and a.resource_id == resource.id
                    and a.visible(now)
                    and a.app_role_id in by_id
                }
            )

    def directory_roles_of(self, principal_id: str) -> list[str]:
        now = self.now()
        with self.lock:
            return sorted(
                {
                    r.role_definition_id
                    for r in self.role_assignments.values()
                    if r.principal_id == principal_id and r.visible(now)
                }
            )

    def delegated_scopes(
        self, tenant_id: str, client_sp_id: str, kind: str, user_id: str | None
    ) -> set[str]:
        now = self.now()
        resource = self.resource_sp(tenant_id, kind)
        with self.lock:
            return {
                g.scope
                for g in self.delegated_grants.values()
                if g.client_id == client_sp_id
                and g.resource_id == resource.id
                and g.visible(now)
                and g.principal_id in (None, user_id)
            }
