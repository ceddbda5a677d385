"""Directory operations shared by the admin API, the admin center and the consent flows.

Each function takes the `Store` (callers hold no lock; these take it) and raises `LookupError` for a
missing object or `ValueError` for a bad argument; the admin API turns those into 404 / 400.
"""

from __future__ import annotations

import re
import secrets
import uuid

from . import catalog
from .state import (
    App,
    AppRoleAssignment,
    DelegatedGrant,
    KeyCredential,
    PasswordCredential,
    RequiredPermission,
    RoleAssignment,
    ServicePrincipal,
    Store,
    Tenant,
    User,
    new_id,
)
from .tokens import describe_certificate, load_certificate

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DNS = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")


def tenant(store: Store, tenant_id: str) -> Tenant:
    t = store.tenants.get(tenant_id) or store.find_tenant(tenant_id)
    if t is None:
        raise LookupError(f"tenant {tenant_id!r} not found")
    return t


def app(store: Store, app_id: str) -> App:
    a = store.apps.get(app_id)
    if a is None:
        raise LookupError(f"app {app_id!r} not found")
    return a


def tenant_json(t: Tenant) -> dict:
    return {
        "id": t.id,
        "cloud": t.cloud,
        "domains": list(t.domains),
        "display_name": t.display_name,
    }


def create_tenant(
    store: Store, cloud="global", domains=None, display_name=None, tenant_id=None
) -> dict:
    if cloud not in catalog.CLOUDS:
        raise ValueError(f"unknown cloud {cloud!r}; one of {sorted(catalog.CLOUDS)}")
    tid = (tenant_id or new_id()).lower()
    if not GUID.match(tid):
        raise ValueError(f"tenant_id {tid!r} is not a GUID")
    with store.lock:
        if tid in store.tenants:
            raise ValueError(f"tenant {tid} exists")
        name = display_name or "Tenant " + tid[:8]
        doms = [d.lower() for d in (domains or [])] or [
            re.sub(r"[^a-z0-9]", "", name.lower())[:20] + tid[:4] + ".onmicrosoft.com"
        ]
        for d in doms:
            if not DNS.match(d):
                raise ValueError(f"domain {d!r} is not a DNS name")
            if store.find_tenant(d):
                raise ValueError(f"domain {d!r} is already verified by another tenant")
        t = Tenant(tid, cloud, doms, name, store.now())
        store.tenants[tid] = t
        for kind in catalog.RESOURCES:
            store.resource_sp(tid, kind)
        return tenant_json(t)


def create_user(store: Store, tenant_id, upn, display_name=None, admin=True) -> dict:
    with store.lock:
        t = tenant(store, tenant_id)
        if "@" not in upn:
            raise ValueError("upn must look like name@domain")
        if store.find_user(upn):
            raise ValueError(f"user {upn!r} exists")
        u = User(
            new_id(),
            t.id,
            upn,
            display_name or upn.split("@")[0].title(),
            bool(admin),
            tokens_valid_from=0.0,
        )
        store.users[u.id] = u
        if admin:
            r = RoleAssignment(
                id=_role_assignment_id(),
                tenant_id=t.id,
                principal_id=u.id,
                role_definition_id=catalog.GLOBAL_ADMINISTRATOR,
            )
            store.role_assignments[r.id] = r
        return {"id": u.id, "upn": u.upn, "display_name": u.display_name, "admin": u.admin}


def create_app(
    store: Store, tenant_id, display_name="app", multi_tenant=False, redirect_uris=(), app_id=None
) -> dict:
    with store.lock:
        t = tenant(store, tenant_id)
        a = App(
            (app_id or new_id()).lower(),
            new_id(),
            t.id,
            display_name,
            bool(multi_tenant),
            list(redirect_uris),
        )
        if a.app_id in store.apps:
            raise ValueError(f"app {a.app_id} exists")
        store.apps[a.app_id] = a
        sp = ensure_sp(store, t.id, a)
        return app_json(store, a) | {"sp_id": sp.id}


def app_json(store: Store, a: App) -> dict:
    return {
        "app_id": a.app_id,
        "object_id": a.object_id,
        "tenant_id": a.tenant_id,
        "display_name": a.display_name,
        "multi_tenant": a.multi_tenant,
        "redirect_uris": list(a.redirect_uris),
        "certificates": [
            {
                "key_id": k.key_id,
                "thumbprint": k.thumbprint,
                "start": k.start,
                "end": k.end,
                "display_name": k.display_name,
            }
            for k in a.key_credentials
        ],
        "required_permissions": [
            {"resource": p.resource, "name": p.name, "type": p.type} for p in a.required_permissions
        ],
    }


def ensure_sp(store: Store, tenant_id: str, a: App) -> ServicePrincipal:
    """The app's service principal in a tenant, created on first need (consent provisions it)."""
    with store.lock:
        sp = store.sp_for(tenant_id, a.app_id)
        if sp is None:
            if tenant_id != a.tenant_id and not a.multi_tenant:
                raise ValueError(
                    f"app {a.app_id} is single-tenant; it cannot be added to tenant {tenant_id}"
                )
            sp = ServicePrincipal(new_id(), a.app_id, tenant_id, a.display_name)
            store.service_principals[sp.id] = sp
        return sp


def sp_of(store: Store, tenant_id: str, app_id: str, create: bool = False) -> ServicePrincipal:
    t = tenant(store, tenant_id)
    a = app(store, app_id)
    sp = store.sp_for(t.id, a.app_id)
    if sp is None:
        if not create:
            raise LookupError(f"app {app_id} has no service principal in tenant {t.id}")
        sp = ensure_sp(store, t.id, a)
    return sp


def upload_certificate(store: Store, tenant_id, app_id, cert, display_name=None) -> dict:
    try:
        info = describe_certificate(load_certificate(cert))
    except ValueError as exc:
        raise ValueError(f"not a certificate (.cer/.pem/.crt, PEM or DER): {exc}") from exc
    with store.lock:
        tenant(store, tenant_id)
        a = app(store, app_id)
        if any(k.thumbprint == info["thumbprint"] for k in a.key_credentials):
            raise ValueError(f"certificate {info['thumbprint']} is already uploaded")
        k = KeyCredential(
            str(uuid.uuid4()),
            info["thumbprint"],
            info["thumbprint_sha256"],
            info["cert_pem"],
            info["start"],
            info["end"],
            display_name or info["subject"],
        )
        a.key_credentials.append(k)
        return {
            "key_id": k.key_id,
            "thumbprint": k.thumbprint,
            "thumbprint_sha256": k.thumbprint_sha256,
            "start": k.start,
            "end": k.end,
        }


def remove_certificate(store: Store, tenant_id, app_id, thumbprint) -> dict:
    with store.lock:
        a = app(store, app_id)
        before = len(a.key_credentials)
        a.key_credentials = [
            k
            for k in a.key_credentials
            if k.thumbprint != thumbprint.upper() and k.key_id != thumbprint
        ]
        if len(a.key_credentials) == before:
            raise LookupError(f"certificate {thumbprint} not found on app {app_id}")
        return {"removed": before - len(a.key_credentials)}


def add_client_secret(store: Store, tenant_id, app_id, expires_in_days=180) -> dict:
    with store.lock:
        a = app(store, app_id)
        value = secrets.token_urlsafe(30)
        now = store.now()
        p = PasswordCredential(
            str(uuid.uuid4()), value, value[:3], now, now + float(expires_in_days) * 86400
        )
        a.password_credentials.append(p)
        return {"secret": value, "key_id": p.key_id, "end": p.end}


def set_sp_enabled(store: Store, tenant_id, app_id, enabled) -> dict:
    with store.lock:
        sp = sp_of(store, tenant_id, app_id)
        sp.enabled = bool(enabled)
        return {"sp_id": sp.id, "enabled": sp.enabled}


def _kind(resource: str) -> str:
    if resource not in catalog.RESOURCES:
        raise ValueError(f"resource must be one of {sorted(catalog.RESOURCES)}")
    return resource


def _role_id(kind: str, permission: str) -> str:
    try:
        return catalog.APP_ROLES[kind][permission]
    except KeyError:
        raise ValueError(
            f"{permission!r} is not an application permission of {kind}; known: "
            f"{sorted(catalog.APP_ROLES[kind])}"
        ) from None


def add_required_permission(
    store: Store, app_id, permission, resource="graph", type="Role"
) -> dict:
    """Add an entry to the registration's "API permissions" (what admin consent grants)."""
    kind = _kind(resource)
    if type == "Role":
        _role_id(kind, permission)
    elif type == "Scope":
        if kind != "graph" or permission not in catalog.GRAPH_SCOPES:
            raise ValueError(f"{permission!r} is not a delegated permission of {kind}")
    else:
        raise ValueError("type must be 'Role' or 'Scope'")
    with store.lock:
        a = app(store, app_id)
        if not any(
            (p.resource, p.name, p.type) == (kind, permission, type) for p in a.required_permissions
        ):
            a.required_permissions.append(RequiredPermission(kind, permission, type))
        return app_json(store, a)


def grant_app_role(store: Store, tenant_id, app_id, permission, resource="graph") -> dict:
    """Admin-consent one application permission (an appRoleAssignment on the resource SP).

    Granted in the app's home tenant, the permission is also added to the registration's API
    permissions (as "Add a permission" + "Grant admin consent" does in the admin center), so a later
    admin consent in a customer tenant grants it there too.
    """
    kind = _kind(resource)
    role_id = _role_id(kind, permission)
    with store.lock:
        sp = sp_of(store, tenant_id, app_id, create=True)
        a = app(store, app_id)
        if sp.tenant_id == a.tenant_id:
            add_required_permission(store, app_id, permission, kind, "Role")
        return _grant_role(store, sp, kind, role_id)


def _grant_role(store: Store, sp: ServicePrincipal, kind: str, role_id: str) -> dict:
    now = store.now()
    resource = store.resource_sp(sp.tenant_id, kind)
    for existing in store.app_role_assignments.values():
        if (existing.principal_id, existing.resource_id, existing.app_role_id) == (
            sp.id,
            resource.id,
            role_id,
        ) and existing.removed_from is None:
            return {"id": existing.id, "app_role_id": role_id}
    a = AppRoleAssignment(
        visible_from=now + store.replication_delay,
        id=_assignment_id(),
        tenant_id=sp.tenant_id,
        principal_id=sp.id,
        resource_id=resource.id,
        app_role_id=role_id,
        created=now,
    )
    store.app_role_assignments[a.id] = a
    return {"id": a.id, "app_role_id": role_id}


def revoke_app_role(store: Store, tenant_id, app_id, permission, resource="graph") -> dict:
    kind = _kind(resource)
    role_id = _role_id(kind, permission)
    with store.lock:
        sp = sp_of(store, tenant_id, app_id)
        resource_sp = store.resource_sp(sp.tenant_id, kind)
        n = _remove(
            store,
            store.app_role_assignments.values(),
            lambda x: (
                (x.principal_id, x.resource_id, x.app_role_id) == (sp.id, resource_sp.id, role_id)
            ),
        )
        if not n:
            raise LookupError(f"{permission} is not granted to app {app_id} in {tenant_id}")
        return {"revoked": n}


def _remove(store: Store, items, match) -> int:
    """Mark matching live grants removed (after the replication delay); returns how many."""
    until = store.now() + store.replication_delay
    n = 0
    for item in items:
        if item.removed_from is None and match(item):
            item.removed_from = until
            n += 1
    return n


def grant_delegated(
    store: Store, tenant_id, app_id, scopes, principal_id=None, delayed=True
) -> dict:
    """An oauth2PermissionGrant for Microsoft Graph scopes (AllPrincipals unless `principal_id`)."""
    names = scopes.split() if isinstance(scopes, str) else list(scopes)
    for name in names:
        if name not in catalog.GRAPH_SCOPES and name not in catalog.OIDC_SCOPES:
            raise ValueError(f"{name!r} is not a delegated permission of Microsoft Graph")
    with store.lock:
        sp = sp_of(store, tenant_id, app_id, create=True)
        resource = store.resource_sp(sp.tenant_id, "graph")
        now = store.now()
        have = store.delegated_scopes(sp.tenant_id, sp.id, "graph", principal_id)
        pending = {
            g.scope
            for g in store.delegated_grants.values()
            if g.client_id == sp.id and g.removed_from is None and g.principal_id == principal_id
        }
        for name in names:
            if name in have or name in pending:
                continue
            g = DelegatedGrant(
                visible_from=now + (store.replication_delay if delayed else 0),
                id=new_id(),
                tenant_id=sp.tenant_id,
                client_id=sp.id,
                resource_id=resource.id,
                scope=name,
                principal_id=principal_id,
            )
            store.delegated_grants[g.id] = g
        return {"sp_id": sp.id, "scopes": sorted(set(names) | have)}


def revoke_delegated(store: Store, tenant_id, app_id, scopes) -> dict:
    names = set(scopes.split() if isinstance(scopes, str) else scopes)
    with store.lock:
        sp = sp_of(store, tenant_id, app_id)
        n = _remove(
            store,
            store.delegated_grants.values(),
            lambda g: g.client_id == sp.id and g.scope in names,
        )
        return {"revoked": n}


def assign_directory_role(store: Store, tenant_id, app_id, role_template_id) -> dict:
    if role_template_id not in catalog.DIRECTORY_ROLES:
        raise ValueError(f"unknown directory role template {role_template_id!r}")
    with store.lock:
        sp = sp_of(store, tenant_id, app_id, create=True)
        for r in store.role_assignments.values():
            if (r.principal_id, r.role_definition_id) == (
                sp.id,
                role_template_id,
            ) and r.removed_from is None:
                return {"id": r.id}
        r = RoleAssignment(
            visible_from=store.now() + store.replication_delay,
            id=_role_assignment_id(),
            tenant_id=sp.tenant_id,
            principal_id=sp.id,
            role_definition_id=role_template_id,
        )
        store.role_assignments[r.id] = r
        return {"id": r.id}


def remove_directory_role(store: Store, tenant_id, app_id, role_template_id) -> dict:
    with store.lock:
        sp = sp_of(store, tenant_id, app_id)
        n = _remove(
            store,
            store.role_assignments.values(),
            lambda r: (r.principal_id, r.role_definition_id) == (sp.id, role_template_id),
        )
        if not n:
            raise LookupError(f"role {role_template_id} is not assigned to app {app_id}")
        return {"removed": n}


def revoke_refresh_tokens(store: Store, tenant_id, upn) -> dict:
    """ "Revoke sessions": refresh tokens issued before now stop working (AADSTS50173)."""
    with store.lock:
        t = tenant(store, tenant_id)
        u = store.find_user(upn, t.id)
        if u is None:
            raise LookupError(f"user {upn!r} not found in tenant {t.id}")
        u.tokens_valid_from = store.now()
        return {"user_id": u.id, "tokens_valid_from": u.tokens_valid_from}


def admin_consent(store: Store, tenant_id: str, a: App, scope: str | None) -> list[str]:
    """Grant tenant-wide what the registration asks for; returns the granted scope strings.

    `scope` None (v1 endpoint) grants every configured permission; a `{resource}/.default` scope
    grants the configured permissions of that resource. The SP is provisioned in the tenant first.
    https://learn.microsoft.com/entra/identity-platform/v2-admin-consent
    """
    cloud = catalog.CLOUDS[store.tenants[tenant_id].cloud]
    kinds = set(catalog.RESOURCES)
    if scope:
        kinds = set()
        for s in scope.split():
            found = catalog.cloud_of_resource(s.removesuffix("/.default"))
            if found and found[0] == cloud.key:
                kinds.add(found[1])
    with store.lock:
        sp = ensure_sp(store, tenant_id, a)
        granted = []
        for p in a.required_permissions:
            if p.resource not in kinds:
                continue
            prefix = cloud.graph_resource if p.resource == "graph" else cloud.exchange_resource
            if p.type == "Role":
                _grant_role(store, sp, p.resource, catalog.APP_ROLES[p.resource][p.name])
            else:
                grant_delegated(store, tenant_id, a.app_id, [p.name])
            granted.append(f"{prefix}/{p.name}")
        return granted


def _assignment_id() -> str:
    # Graph appRoleAssignment ids are 43-character base64url strings.
    return secrets.token_urlsafe(32)[:43]


def _role_assignment_id() -> str:
    return secrets.token_urlsafe(32)[:43]
