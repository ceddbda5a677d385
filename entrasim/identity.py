"""Microsoft identity platform endpoints: discovery, keys, authorize, token, admin consent.

Paths, parameters, claims and error bodies follow Microsoft's v2.0 protocol docs:
https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc (discovery),
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
(authorize, code, refresh),
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
(client credentials),
https://learn.microsoft.com/entra/identity-platform/v2-admin-consent (admin consent),
https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference (claims).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, render_template, request

from . import catalog, directory
from .app import base_url, cloud_key, current_sim
from .errors import AADSTSError, aadsts_body
from .state import AuthCode, RefreshToken, Tenant, User
from .tokens import b64url, verify_client_assertion

bp = Blueprint("identity", __name__)

ALIASES = {"common", "organizations", "consumers"}
ACCESS_TOKEN_LIFETIME = 3599
ID_TOKEN_LIFETIME = 3600
CODE_LIFETIME = 600  # authorization codes live about ten minutes
RT_MAX_INACTIVE = 90 * 86400  # MaxInactiveTime default (configurable-token-lifetimes)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@bp.errorhandler(AADSTSError)
def _aadsts(exc: AADSTSError):
    return exc.response(current_sim().store.now(), base_url())


def _login_group() -> str:
    return catalog.CLOUDS[cloud_key()].login_group


def resolve_tenant(ident: str) -> Tenant | str:
    """A tenant of this listener's login host, or an alias; raises 900023 / 90002 like Entra."""
    low = ident.lower()
    if low in ALIASES:
        return low
    if not (directory.GUID.match(ident) or directory.DNS.match(ident)):
        raise AADSTSError(
            "invalid_request",
            900023,
            f"Specified tenant identifier '{ident}' is neither a valid DNS name, nor "
            "a valid external domain.",
        )
    t = current_sim().store.find_tenant(ident, _login_group())
    if t is None:
        raise AADSTSError(
            "invalid_tenant",
            90002,
            f"Tenant '{ident}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud. Check with your subscription administrator, this "
            "may happen if there are no active subscriptions for the tenant.",
        )
    return t


# --- discovery -------------------------------------------------------------------------------


@bp.get("/<tenant>/v2.0/.well-known/openid-configuration")
def openid_configuration(tenant):
    t = resolve_tenant(tenant)
    base = base_url()
    seg = t.id if isinstance(t, Tenant) else t
    cloud = catalog.CLOUDS[t.cloud if isinstance(t, Tenant) else cloud_key()]
    doc = {
        "token_endpoint": f"{base}/{seg}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/{seg}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{t.id if isinstance(t, Tenant) else '{tenantid}'}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{seg}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{seg}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{seg}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],
        "kerberos_endpoint": f"{base}/{seg}/kerberos",
        "tenant_region_scope": cloud.tenant_region_scope if isinstance(t, Tenant) else None,
        "cloud_instance_name": cloud.cloud_instance_name,
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": cloud.msgraph_host,
        "rbac_url": "https://pas.windows.net",
    }
    if isinstance(t, Tenant) and cloud.tenant_region_sub_scope:
        doc["tenant_region_sub_scope"] = cloud.tenant_region_sub_scope
    return jsonify(doc)


@bp.get("/<tenant>/discovery/v2.0/keys")
def keys(tenant):
    t = resolve_tenant(tenant)
    issuer = f"{base_url()}/{t.id if isinstance(t, Tenant) else '{tenantid}'}/v2.0"
    return jsonify({"keys": [current_sim().signer.jwk(issuer)]})


@bp.get("/common/discovery/instance")
def instance_discovery():
    """MSAL's instance (alias) discovery, so MSAL without instance_discovery=False works."""
    base = base_url()
    host = base.split("://", 1)[1]
    return jsonify(
        {
            "tenant_discovery_endpoint": f"{base}/{{tenant}}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
    )


# --- token claims --------------------------------------------------------------------------------


def _issuer(tid: str) -> str:
    return f"{base_url()}/{tid}/v2.0"


def _common_claims(tid: str, aud: str, now: float, lifetime: int) -> dict:
    iat = int(now)
    return {
        "aud": aud,
        "iss": _issuer(tid),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "tid": tid,
        "uti": b64url(uuid.uuid4().bytes)[:22],
        "ver": "2.0",
        "rh": "0." + b64url(secrets.token_bytes(24)),
    }


def _app_only_token(tenant: Tenant, app, sp, kind: str, resource: str, acr: str) -> str:
    s = current_sim()
    store = s.store
    claims = _common_claims(tenant.id, resource, store.now(), ACCESS_TOKEN_LIFETIME)
    claims.update(
        {
            "app_displayname": app.display_name,
            "appid": app.app_id,
            "appidacr": acr,
            "azp": app.app_id,
            "azpacr": acr,
            "idp": f"https://sts.windows.net/{tenant.id}/",
            "idtyp": "app",
            "oid": sp.id,
            "sub": sp.id,
        }
    )
    roles = store.app_roles_of(tenant.id, sp.id, kind)
    if roles:  # absent, not empty, when nothing is granted (client-creds doc)
        claims["roles"] = roles
    wids = store.directory_roles_of(sp.id)
    if wids:
        claims["wids"] = wids
    return s.signer.sign(claims)


def _client_info(user: User) -> str:
    return b64url(json.dumps({"uid": user.id, "utid": user.tenant_id}).encode())


def _pairwise_sub(user: User, app_id: str) -> str:
    return b64url(hashlib.sha256(f"{user.id}|{app_id}".encode()).digest())


def _user_tokens(
    tenant: Tenant,
    app,
    user: User,
    scopes: list[str],
    nonce: str | None,
    acr: str,
    with_client_info: bool,
) -> dict:
    """Access token (+ id token, refresh token, client_info) for a signed-in user."""
    s = current_sim()
    store = s.store
    now = store.now()
    resource, kind, names = _delegated_resource(scopes, tenant)
    sp = store.sp_for(tenant.id, app.app_id)
    granted = store.delegated_scopes(tenant.id, sp.id, kind, user.id) if sp else set()
    if names == [".default"]:
        scp = sorted(granted)
    else:
        missing = [n for n in names if n not in granted]
        if missing:
            raise AADSTSError(
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{app.app_id}' named '{app.display_name}'. Send an interactive authorization "
                "request for this user and resource.",
            )
        scp = names
    oidc = [x for x in scopes if x in catalog.OIDC_SCOPES]
    claims = _common_claims(tenant.id, resource, now, ACCESS_TOKEN_LIFETIME)
    claims.update(
        {
            "app_displayname": app.display_name,
            "appid": app.app_id,
            "appidacr": acr,
            "azp": app.app_id,
            "azpacr": acr,
            "idtyp": "user",
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.upn,
            "unique_name": user.upn,
            "upn": user.upn,
            "scp": " ".join(scp or oidc),
            "sub": _pairwise_sub(user, app.app_id),
        }
    )
    wids = store.directory_roles_of(user.id)
    if wids:
        claims["wids"] = wids
    shown = [x if kind == "graph" else f"{resource}/{x}" for x in (scp or [])]
    body = {
        "token_type": "Bearer",
        "scope": " ".join(shown + oidc),
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "ext_expires_in": ACCESS_TOKEN_LIFETIME,
        "access_token": s.signer.sign(claims),
    }
    if "offline_access" in scopes:
        rt = RefreshToken(
            "1.A" + secrets.token_urlsafe(48),
            tenant.id,
            user.id,
            app.app_id,
            list(scopes),
            now,
            now,
        )
        with store.lock:
            store.refresh_tokens[rt.token] = rt
        body["refresh_token"] = rt.token
    if "openid" in scopes:
        body["id_token"] = _id_token(tenant, app, user, nonce)
    if with_client_info:
        body["client_info"] = _client_info(user)
    return body


def _id_token(tenant: Tenant, app, user: User, nonce: str | None) -> str:
    s = current_sim()
    claims = _common_claims(tenant.id, app.app_id, s.store.now(), ID_TOKEN_LIFETIME)
    claims.update(
        {
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.upn,
            "sub": _pairwise_sub(user, app.app_id),
            "sid": str(uuid.uuid4()),
        }
    )
    if nonce is not None:
        claims["nonce"] = nonce  # echoed exactly as sent (MSAL sends it already hashed)
    with s.store.lock:
        tamper, s.store.tamper_id_token = s.store.tamper_id_token, None
    bad = False
    if tamper:
        tamper = dict(tamper)
        bad = bool(tamper.pop("bad_signature", False))
        claims.update(tamper)
    return s.signer.sign(claims, bad_signature=bad)


def _delegated_resource(scopes: list[str], tenant: Tenant) -> tuple[str, str, list[str]]:
    """(resource URI, kind, scope names) of a delegated request; one resource per request."""
    cloud = catalog.CLOUDS[tenant.cloud]
    found: dict[str, list[str]] = {}
    for sc in scopes:
        if sc in catalog.OIDC_SCOPES:
            continue
        if "://" in sc or sc.startswith(catalog.GRAPH_APP_ID + "/"):
            res, _, name = sc.rpartition("/")
        else:
            res, name = cloud.graph_resource, sc
        found.setdefault(res.rstrip("/"), []).append(name)
    if not found:
        return cloud.graph_resource, "graph", []
    if len(found) > 1:
        raise AADSTSError(
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because it "
            "contains more than one resource. Scope "
            f"{' '.join(scopes)} is not valid.",
        )
    res, names = next(iter(found.items()))
    kind = _resource_kind(res, cloud, " ".join(scopes), tenant, client_credentials=False)
    resource = cloud.graph_resource if kind == "graph" else cloud.exchange_resource
    if ".default" in names and len(names) > 1:
        raise AADSTSError(
            "invalid_scope",
            70011,
            "The provided request must include a 'scope' input parameter. The "
            "provided value for the input parameter 'scope' is not valid. "
            ".default cannot be combined with other scopes.",
        )
    return resource, kind, names


def _resource_kind(
    res: str, cloud: catalog.Cloud, scope: str, tenant: Tenant, client_credentials: bool = True
) -> str:
    if res.lower() == catalog.GRAPH_APP_ID:
        return "graph"
    if res.lower() == catalog.EXCHANGE_APP_ID:
        return "exchange"
    found = catalog.cloud_of_resource(res)
    if found is None:
        raise AADSTSError(
            "invalid_resource",
            500011,
            f"The resource principal named {res} was not found in the tenant named "
            f"{tenant.display_name}. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant. You might "
            "have sent your authentication request to the wrong tenant.",
        )
    if found[0] != cloud.key:
        # Another national cloud's resource: what Entra answers for e.g. graph.microsoft.us/.default
        # against a commercial tenant (Learn Q&A 1526220).
        tail = (
            " Client credential flows must have a scope value with /.default suffixed to the "
            "resource identifier (application ID URI)."
            if client_credentials
            else ""
        )
        raise AADSTSError(
            "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid.{tail}"
        )
    return found[1]


# --- token endpoint ---------------------------------------------------------------------------


def _require(form, name: str) -> str:
    value = form.get(name)
    if not value:
        raise AADSTSError(
            "invalid_request",
            900144,
            f"The request body must contain the following parameter: '{name}'.",
        )
    return value


def _client(tenant: Tenant, form) -> tuple:
    """Find the app and its SP in the tenant and authenticate the client; returns (app, sp, acr)."""
    store = current_sim().store
    basic = request.authorization
    client_id = form.get("client_id") or (basic.username if basic else None)
    if not client_id:
        raise AADSTSError(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    app = store.apps.get(client_id.lower())
    if (
        app is not None
        and catalog.CLOUDS[store.tenants[app.tenant_id].cloud].login_group != _login_group()
    ):
        app = None
    sp = store.sp_for(tenant.id, app.app_id) if app else None
    if app is None or sp is None:
        raise AADSTSError(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.display_name}'. This can happen if the application has not been installed "
            "by the administrator of the tenant or consented to by any user in the tenant. You may "
            "have sent your authentication request to the wrong tenant.",
        )
    if not sp.enabled:
        raise AADSTSError(
            "unauthorized_client",
            7000112,
            f"Application '{app.app_id}'({app.display_name}) is disabled.",
        )
    now = store.now()
    assertion = form.get("client_assertion")
    secret = form.get("client_secret") or (basic.password if basic else None)
    if assertion:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise AADSTSError(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            )
        verify_client_assertion(assertion, app, app.app_id, now, _assertion_audiences(tenant))
        return app, sp, "2"
    if secret:
        match = next(
            (p for p in app.password_credentials if secrets.compare_digest(p.secret, secret)), None
        )
        if match is None:
            raise AADSTSError(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{app.app_id}'.",
            )
        if match.end < now:
            raise AADSTSError(
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{app.app_id}' are expired. Visit the "
                "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
                "consider using certificate credentials for added security: "
                "https://aka.ms/certCreds.",
            )
        return app, sp, "1"
    raise AADSTSError(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' "
        "or 'client_secret'.",
    )


def _assertion_audiences(tenant: Tenant) -> set[str]:
    """Token endpoint URLs an assertion may name: this host, the tenant by any of its names."""
    names = {tenant.id, *tenant.domains, (request.view_args or {}).get("tenant", "")}
    base = base_url().lower()
    return {f"{base}/{n.lower()}/oauth2/{v}token" for n in names if n for v in ("v2.0/", "")}


@bp.post("/<tenant>/oauth2/v2.0/token")
def token(tenant):
    t = resolve_tenant(tenant)
    form = request.form
    grant = _require(form, "grant_type")
    if grant == "client_credentials":
        return _client_credentials(t, form)
    if grant == "authorization_code":
        return _authorization_code(t, form)
    if grant == "refresh_token":
        return _refresh_token(t, form)
    raise AADSTSError(
        "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
    )


def _specific(t: Tenant | str) -> Tenant:
    if isinstance(t, Tenant):
        return t
    raise AADSTSError(
        "invalid_request",
        90019,
        "No tenant-identifying information found in either the request or implied "
        "by any provided credentials.",
    )


def _client_credentials(t, form):
    tenant = _specific(t)
    app, sp, acr = _client(tenant, form)
    scopes = _require(form, "scope").split()
    for sc in scopes:
        if not sc.endswith("/.default"):
            raise AADSTSError(
                "invalid_scope",
                1002012,
                f"The provided value for scope {sc} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the "
                "resource identifier (application ID URI).",
            )
    if len(scopes) != 1:
        raise AADSTSError(
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid. "
            "Client credential flows accept exactly one resource's /.default scope.",
        )
    cloud = catalog.CLOUDS[tenant.cloud]
    res = scopes[0].removesuffix("/.default")
    kind = _resource_kind(res, cloud, scopes[0], tenant)
    resource = cloud.graph_resource if kind == "graph" else cloud.exchange_resource
    return jsonify(
        {
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME,
            "access_token": _app_only_token(tenant, app, sp, kind, resource, acr),
        }
    )


def _grant_error(code: int, message: str, error: str = "invalid_grant"):
    return AADSTSError(error, code, message)


def _authorization_code(t, form):
    store = current_sim().store
    code_value = _require(form, "code")
    with store.lock:
        code = store.auth_codes.get(code_value)
        if code is None:
            raise _grant_error(9002313, "Invalid request. Request is malformed or invalid.")
        if code.redeemed:
            raise _grant_error(
                54005,
                "OAuth2 Authorization code was already redeemed, please "
                "retry with a new valid code or use an existing refresh token.",
            )
        code.redeemed = True  # single use, even when the rest of this request fails
    tenant = store.tenants[code.tenant_id]
    if isinstance(t, Tenant) and t.id != tenant.id:
        raise _grant_error(70000, "Provided grant is invalid or malformed.")
    app, _sp, acr = _client(tenant, form)
    if app.app_id != code.app_id:
        raise _grant_error(70000, "Provided grant is invalid or malformed.")
    if store.now() > code.issued_at + CODE_LIFETIME:
        raise _grant_error(
            70008,
            "The provided authorization code or refresh token has expired "
            "due to inactivity. Send a new interactive authorization request for "
            "this user and resource.",
        )
    if form.get("redirect_uri") != code.redirect_uri:
        raise _grant_error(
            500112,
            f"The reply address '{form.get('redirect_uri')}' does not "
            f"match the reply address '{code.redirect_uri}' provided when "
            "requesting Authorization code.",
            error="invalid_request",
        )
    verifier = form.get("code_verifier") or ""
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    if not verifier or not secrets.compare_digest(challenge, code.code_challenge):
        raise _grant_error(
            501481,
            "The Code_Verifier does not match the code_challenge supplied "
            "in the authorization request.",
        )
    user = store.users[code.user_id]
    return jsonify(_user_tokens(tenant, app, user, code.scopes, code.nonce, acr, True))


def _refresh_token(t, form):
    store = current_sim().store
    rt = store.refresh_tokens.get(_require(form, "refresh_token"))
    if rt is None:
        raise _grant_error(9002313, "Invalid request. Request is malformed or invalid.")
    tenant = store.tenants[rt.tenant_id]
    if isinstance(t, Tenant) and t.id != tenant.id:
        raise _grant_error(70000, "Provided grant is invalid or malformed.")
    app, _sp, acr = _client(tenant, form)
    if app.app_id != rt.app_id:
        raise _grant_error(70000, "Provided grant is invalid or malformed.")
    user = store.users.get(rt.user_id)
    now = store.now()
    if user is None or user.tokens_valid_from >= rt.issued_at:
        valid_from = directory_stamp(user.tokens_valid_from if user else now)
        raise _grant_error(
            50173,
            "The provided grant has expired due to it being revoked, a "
            "fresh auth token is needed. The user might have changed or reset "
            "their password. The grant was issued on "
            f"'{directory_stamp(rt.issued_at)}' and the TokensValidFrom date "
            f"(before which tokens are not valid) for this user is '{valid_from}'.",
        )
    if now - rt.last_used_at > RT_MAX_INACTIVE:
        raise _grant_error(
            700082,
            "The refresh token has expired due to inactivity. The token "
            f"was issued on {directory_stamp(rt.issued_at)} and was inactive for "
            "90.00:00:00.",
        )
    rt.last_used_at = now
    scopes = form.get("scope", "").split() or rt.scopes
    body = _user_tokens(tenant, app, user, scopes, None, acr, form.get("client_info") == "1")
    new = store.refresh_tokens.get(body.get("refresh_token", ""))
    if new is not None:
        new.issued_at = rt.issued_at  # the grant's age carries over to the rotated token
    return jsonify(body)


def directory_stamp(at: float) -> str:
    from .errors import iso

    return iso(at)


# --- authorize -----------------------------------------------------------------------------------


def error_page(code: int, message: str, status: int = 400):
    """Entra shows errors it cannot safely redirect (bad client or reply URL) on its own page."""
    body = aadsts_body("invalid_request", code, message, current_sim().store.now(), base_url())
    return render_template("error.html", body=body), status


def _validated_client(client_id: str | None, redirect_uri: str | None, v1_prefix: bool = False):
    store = current_sim().store
    app = store.apps.get((client_id or "").lower())
    if app is None:
        return None, error_page(
            700016,
            f"Application with identifier '{client_id}' was not "
            "found in the directory. This can happen if the application has "
            "not been installed by the administrator of the tenant.",
        )
    ok = redirect_uri in app.redirect_uris or (
        v1_prefix
        and redirect_uri
        and any(redirect_uri.startswith(u.rstrip("/") + "/") for u in app.redirect_uris)
    )
    if not ok:
        return None, error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the "
            "request does not match the redirect URIs configured for the "
            f"application '{app.app_id}'. Make sure the redirect URI sent in "
            "the request matches one added to your application in the Azure "
            "portal.",
        )
    return app, None


def respond(redirect_uri: str, params: dict, mode: str = "query"):
    """Send the authorize / admin-consent result back to the client in the requested mode."""
    params = {k: v for k, v in params.items() if v is not None}
    if mode == "form_post":
        # An auto-submitting form; the script is a same-origin file (no inline script), and the
        # button keeps it usable without JavaScript.
        return render_template("form_post.html", action=redirect_uri, fields=params)
    sep = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return redirect(redirect_uri + sep + urlencode(params), code=302)


def error_params(error: str, code: int, message: str, state: str | None, extra=None) -> dict:
    body = aadsts_body(error, code, message, current_sim().store.now(), base_url())
    params = {
        "error": error,
        "error_description": body["error_description"],
        "error_uri": body["error_uri"],
        "state": state,
    }
    params.update(extra or {})
    return params


@bp.route("/<tenant>/oauth2/v2.0/authorize", methods=["GET", "POST"])
def authorize(tenant):
    from . import interaction

    try:
        t = resolve_tenant(tenant)
    except AADSTSError as exc:
        return error_page(exc.code, exc.message)
    args = request.values
    app, page = _validated_client(args.get("client_id"), args.get("redirect_uri"))
    if page:
        return page
    mode = args.get("response_mode") or "query"
    state = args.get("state")
    if mode not in ("query", "fragment", "form_post"):
        return respond(
            args["redirect_uri"],
            error_params("invalid_request", 900144, f"Invalid response_mode '{mode}'.", state),
        )
    if args.get("response_type") != "code":
        return respond(
            args["redirect_uri"],
            error_params(
                "unsupported_response_type",
                70005,
                "The provided value for the input parameter "
                "'response_type' is not allowed for this request. Expected value: code.",
                state,
            ),
            mode,
        )
    if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
        # Entra requires PKCE only for some clients; this simulator requires S256 everywhere so
        # that the portal's flow is always checked with it.
        return respond(
            args["redirect_uri"],
            error_params(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required for cross-origin "
                "authorization code redemption (code_challenge_method must be S256).",
                state,
            ),
            mode,
        )
    request_info = {
        "kind": "authorize",
        "tenant": t.id if isinstance(t, Tenant) else t,
        "client_id": app.app_id,
        "redirect_uri": args["redirect_uri"],
        "mode": mode,
        "state": state,
        "nonce": args.get("nonce"),
        "scopes": args.get("scope", "").split(),
        "code_challenge": args["code_challenge"],
        "login_hint": args.get("login_hint"),
        "prompt": args.get("prompt"),
    }
    return interaction.begin(request_info)


def finish_authorize(info: dict, user: User) -> Response:
    """Consent granted for `user`: issue a single-use code bound to the PKCE challenge."""
    store = current_sim().store
    code = AuthCode(
        "1.A" + secrets.token_urlsafe(64),
        user.tenant_id,
        user.id,
        info["client_id"],
        info["redirect_uri"],
        info["scopes"],
        info["code_challenge"],
        info["nonce"],
        store.now(),
    )
    with store.lock:
        store.auth_codes[code.code] = code
    return respond(
        info["redirect_uri"],
        {"code": code.code, "state": info["state"], "session_state": str(uuid.uuid4())},
        info["mode"],
    )


# --- admin consent --------------------------------------------------------------------------------


@bp.get("/<tenant>/adminconsent")
def adminconsent_v1(tenant):
    return _adminconsent(tenant, v2=False)


@bp.get("/<tenant>/v2.0/adminconsent")
def adminconsent_v2(tenant):
    return _adminconsent(tenant, v2=True)


def _adminconsent(tenant: str, v2: bool):
    from . import interaction

    try:
        t = resolve_tenant(tenant)
    except AADSTSError as exc:
        return error_page(exc.code, exc.message)
    args = request.args
    app, page = _validated_client(args.get("client_id"), args.get("redirect_uri"), v1_prefix=not v2)
    if page:
        return page
    scope = args.get("scope")
    if v2 and not scope:
        return respond(
            args["redirect_uri"],
            error_params(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
                args.get("state"),
            ),
        )
    return interaction.begin(
        {
            "kind": "adminconsent",
            "v2": v2,
            "tenant": t.id if isinstance(t, Tenant) else t,
            "client_id": app.app_id,
            "redirect_uri": args["redirect_uri"],
            "mode": "query",
            "state": args.get("state"),
            "scope": scope,
            "scopes": (scope or "").split(),
            "login_hint": args.get("login_hint"),
        }
    )


def finish_adminconsent(info: dict, user: User) -> Response:
    store = current_sim().store
    app = store.apps[info["client_id"]]
    granted = directory.admin_consent(store, user.tenant_id, app, info.get("scope"))
    params = {"admin_consent": "True", "tenant": user.tenant_id, "state": info["state"]}
    if info["v2"]:
        params["scope"] = " ".join(granted)
    return respond(info["redirect_uri"], params)
