"""Microsoft Graph v1.0 subset with real response shapes and permission checks.

Authorization follows each call's permissions table (entra.md §3b; e.g.
https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments): app-only tokens
are judged by `roles`, delegated tokens by `scp`; a missing permission is 403
`Authorization_RequestDenied`. Assignment lists honour the replication delay.
"""

from __future__ import annotations

import base64
import re

from flask import Blueprint, g, jsonify, request

from . import catalog
from .app import base_url, cloud_key, current_sim
from .errors import graph_error, iso
from .state import ServicePrincipal
from .tokens import InvalidToken

bp = Blueprint("graph", __name__, url_prefix="/v1.0")

DENIED = "Insufficient privileges to complete the operation."


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@bp.errorhandler(GraphError)
def _graph_error(exc: GraphError):
    return graph_error(exc.status, exc.code, exc.message, current_sim().store.now())


def _token_claims() -> dict:
    s = current_sim()
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer ") or not header[7:].strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = s.signer.verify(header[7:].strip())
    except InvalidToken:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure."
        ) from None
    cloud = catalog.CLOUDS[cloud_key()]
    if str(claims.get("aud", "")).rstrip("/") not in (cloud.graph_resource, catalog.GRAPH_APP_ID):
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    if not isinstance(claims.get("exp"), int) or claims["exp"] < s.store.now():
        raise GraphError(
            401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
        )
    tenant = s.store.tenants.get(claims.get("tid", ""))
    if tenant is None or tenant.cloud != cloud.key:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    g.tenant = tenant
    g.claims = claims
    return claims


def _authorize(endpoint: str, own_sp: ServicePrincipal | None = None) -> dict:
    claims = _token_claims()
    if own_sp is not None and claims.get("idtyp") == "app" and claims.get("oid") == own_sp.id:
        # "A service principal can retrieve its own application and service principal details
        # without being granted any application permissions." (serviceprincipal-get)
        return claims
    rules = catalog.GRAPH_PERMISSIONS[endpoint]
    if "scp" in claims:
        have, allowed = set(claims["scp"].split()), rules["delegated"]
    else:
        have, allowed = set(claims.get("roles", [])), rules["app"]
    if not have & allowed:
        raise GraphError(403, "Authorization_RequestDenied", DENIED)
    return claims


def _context(fragment: str) -> str:
    return f"{base_url()}/v1.0/$metadata#{fragment}"


def _select(obj: dict) -> dict:
    sel = request.args.get("$select")
    if not sel:
        return obj
    keep = {k.strip() for k in sel.split(",")}
    return {k: v for k, v in obj.items() if k in keep or k.startswith("@odata") or k == "id"}


# --- organization --------------------------------------------------------------------------


@bp.get("/organization")
@bp.get("/organization/<org_id>")
def organization(org_id=None):
    claims = _authorize("graph.organization")
    t = g.tenant
    if org_id and org_id != t.id:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{org_id}' does not exist or one of its queried "
            "reference-property objects are not present.",
        )
    full = "roles" in claims or bool(set(claims.get("scp", "").split()) - {"User.Read"})
    doms = [
        {
            "capabilities": "Email, OfficeCommunicationsOnlineService",
            "isDefault": i == 0,
            "isInitial": d.endswith(".onmicrosoft.com") or (d.endswith(".partner.onmschina.cn")),
            "name": d,
            "type": "Managed",
        }
        for i, d in enumerate(t.domains)
    ]
    org = {
        "id": t.id,
        "deletedDateTime": None,
        "businessPhones": [],
        "city": None,
        "country": None,
        "countryLetterCode": "US" if full else None,
        "createdDateTime": iso(t.created_at) if full else None,
        "displayName": t.display_name,
        "tenantType": "AAD" if full else None,
        "verifiedDomains": doms,
    }
    if org_id:
        return jsonify(_select({"@odata.context": _context("organization/$entity")} | org))
    return jsonify({"@odata.context": _context("organization"), "value": [_select(org)]})


# --- service principals ----------------------------------------------------------------------


def _sp_json(sp: ServicePrincipal) -> dict:
    store = current_sim().store
    app = store.apps.get(sp.app_id)
    kind = {v[0]: k for k, v in catalog.RESOURCES.items()}.get(sp.app_id)
    app_roles = [
        {
            "allowedMemberTypes": ["Application"],
            "description": name,
            "displayName": name,
            "id": rid,
            "isEnabled": True,
            "origin": "Application",
            "value": name,
        }
        for name, rid in catalog.APP_ROLES.get(kind, {}).items()
    ]
    scopes = (
        [
            {
                "adminConsentDescription": name,
                "adminConsentDisplayName": name,
                "id": sid,
                "isEnabled": True,
                "type": "Admin" if admin else "User",
                "value": name,
            }
            for name, (sid, admin) in catalog.GRAPH_SCOPES.items()
        ]
        if kind == "graph"
        else []
    )
    # Simplification: the registration's certificates are shown on its SP in the home tenant (in
    # Entra they live on the application object).
    keys = [
        {
            "customKeyIdentifier": k.thumbprint,
            "displayName": k.display_name,
            "endDateTime": iso(k.end),
            "key": None,
            "keyId": k.key_id,
            "startDateTime": iso(k.start),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }
        for k in (app.key_credentials if app and app.tenant_id == sp.tenant_id else [])
    ]
    return {
        "id": sp.id,
        "deletedDateTime": None,
        "accountEnabled": sp.enabled,
        "appDisplayName": sp.display_name,
        "appId": sp.app_id,
        "appOwnerOrganizationId": app.tenant_id if app else "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        "appRoleAssignmentRequired": False,
        "displayName": sp.display_name,
        "servicePrincipalNames": [sp.app_id],
        "servicePrincipalType": "Application",
        "signInAudience": (
            "AzureADMultipleOrgs" if (app is None or app.multi_tenant) else "AzureADMyOrg"
        ),
        "appRoles": app_roles,
        "oauth2PermissionScopes": scopes,
        "keyCredentials": keys,
        "passwordCredentials": [],
        "replyUrls": list(app.redirect_uris) if app else [],
    }


def _not_found(ident: str):
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ident}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


@bp.get("/servicePrincipals(appId='<app_id>')")
def service_principal_by_app_id(app_id):
    _token_claims()
    sp = current_sim().store.sp_for(g.tenant.id, app_id.lower())
    _authorize("graph.serviceprincipal", own_sp=sp)
    if sp is None:
        raise _not_found(app_id)
    return jsonify(
        _select({"@odata.context": _context("servicePrincipals/$entity")} | _sp_json(sp))
    )


@bp.get("/servicePrincipals/<sp_id>")
def service_principal(sp_id):
    _token_claims()
    sp = current_sim().store.service_principals.get(sp_id)
    if sp is not None and sp.tenant_id != g.tenant.id:
        sp = None
    _authorize("graph.serviceprincipal", own_sp=sp)
    if sp is None:
        raise _not_found(sp_id)
    return jsonify(
        _select({"@odata.context": _context("servicePrincipals/$entity")} | _sp_json(sp))
    )


@bp.get("/servicePrincipals/<sp_id>/appRoleAssignments")
def app_role_assignments(sp_id):
    _authorize("graph.approleassignments")
    store = current_sim().store
    sp = store.service_principals.get(sp_id)
    if sp is None or sp.tenant_id != g.tenant.id:
        raise _not_found(sp_id)
    now = store.now()
    with store.lock:
        assignments = list(store.app_role_assignments.values())
    items = [
        {
            "id": a.id,
            "deletedDateTime": None,
            "appRoleId": a.app_role_id,
            "createdDateTime": iso(a.created),
            "principalDisplayName": sp.display_name,
            "principalId": sp.id,
            "principalType": "ServicePrincipal",
            "resourceDisplayName": store.service_principals[a.resource_id].display_name,
            "resourceId": a.resource_id,
        }
        for a in assignments
        if a.principal_id == sp.id and a.visible(now)
    ]
    return jsonify(
        {
            "@odata.context": _context(f"servicePrincipals('{sp.id}')/appRoleAssignments"),
            "value": items,
        }
    )


# --- role management -------------------------------------------------------------------------

_FILTER = re.compile(r"^\s*principalId\s+eq\s+'([^']+)'\s*$", re.I)


@bp.get("/roleManagement/directory/roleAssignments")
def role_assignments():
    _authorize("graph.roleassignments")
    store = current_sim().store
    flt = request.args.get("$filter")
    principal = None
    if flt:
        m = _FILTER.match(flt)
        if not m:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: {flt}")
        principal = m.group(1)
    now = store.now()
    with store.lock:
        assignments = list(store.role_assignments.values())
    items = [
        {
            "id": r.id,
            "principalId": r.principal_id,
            "directoryScopeId": "/",
            "roleDefinitionId": r.role_definition_id,
        }
        for r in assignments
        if r.tenant_id == g.tenant.id and r.visible(now) and principal in (None, r.principal_id)
    ]
    return jsonify(
        {"@odata.context": _context("roleManagement/directory/roleAssignments"), "value": items}
    )


# --- users -------------------------------------------------------------------------------------


def _user_json(u) -> dict:
    return {
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": u.display_name.split()[0] if u.display_name else None,
        "jobTitle": None,
        "mail": u.upn,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": None,
        "userPrincipalName": u.upn,
        "id": u.id,
    }


@bp.get("/me")
def me():
    claims = _token_claims()
    if "scp" not in claims:
        raise GraphError(
            400, "BadRequest", "/me request is only valid with delegated authentication flow."
        )
    _authorize("graph.me")
    user = current_sim().store.users.get(claims.get("oid", ""))
    if user is None:
        raise _not_found(claims.get("oid", ""))
    return jsonify({"@odata.context": _context("users/$entity")} | _select(_user_json(user)))


@bp.get("/users")
def users():
    _authorize("graph.users")
    store = current_sim().store
    try:
        top = int(request.args.get("$top", "100"))
    except ValueError:
        top = 0
    if not 1 <= top <= 999:
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            f"Invalid page size specified: '{request.args.get('$top')}'. Must be "
            "between 1 and 999 inclusive.",
        )
    skip = 0
    token = request.args.get("$skiptoken")
    if token:
        try:
            skip = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise GraphError(400, "Request_UnsupportedQuery", "Invalid $skiptoken.") from None
    with store.lock:
        rows = sorted(
            (u for u in store.users.values() if u.tenant_id == g.tenant.id),
            key=lambda u: u.upn.lower(),
        )
    page = rows[skip : skip + top]
    body = {"@odata.context": _context("users"), "value": [_select(_user_json(u)) for u in page]}
    if skip + top < len(rows):
        nxt = base64.urlsafe_b64encode(str(skip + top).encode()).decode()
        body["@odata.nextLink"] = f"{base_url()}/v1.0/users?$top={top}&$skiptoken={nxt}"
    return jsonify(body)
