"""What happens between /authorize (or /adminconsent) and the redirect back: sign-in and consent.

The mode is set with `SimAdmin.set_interaction` (persisted in state): `consent` signs in
automatically and grants (for tests), `page` shows a sign-in/consent page a person can use (demo),
`sso` is a browser already signed in at Microsoft with consent given: it answers without any
page, unless the request's `prompt` asks for one (`select_account`, `login`, `consent`), as
Microsoft does, and `decline`, `admin_approval_required`, `other_tenant_user` produce Entra's
error redirects.
https://learn.microsoft.com/entra/identity-platform/reference-error-codes (65004, 90094, 50020)
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow (prompt: "login"
forces credentials, "consent" the consent dialog, "select_account" interrupts single sign-on
with the account selection; "none" never shows a page)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Blueprint, abort, current_app, render_template, request

from . import catalog, directory
from .app import current_sim
from .errors import AADSTSError
from .identity import (
    _delegated_resource,
    error_params,
    finish_adminconsent,
    finish_authorize,
    respond,
)
from .state import User

bp = Blueprint("interaction", __name__, url_prefix="/_sim/signin")

MODES = {"consent", "page", "sso", "decline", "admin_approval_required", "other_tenant_user"}
#: prompt values with which Microsoft shows its page even to a signed-in browser.
INTERACTIVE_PROMPTS = {"select_account", "login", "consent"}
PENDING_LIMIT = 500


def begin(info: dict):
    store = current_sim().store
    mode = store.interaction.get("mode", "page")
    if mode == "decline":
        return decline(info)
    if mode == "admin_approval_required":
        return _fail(info, "consent_required", 90094, "The grant requires admin permission.")
    if mode == "other_tenant_user":
        return _other_tenant(info, store.interaction.get("user") or "someone@fabrikam.example")
    if mode == "sso" and info.get("prompt") in INTERACTIVE_PROMPTS:
        return _page(info)
    if mode in ("consent", "sso"):
        user = _pick_user(info, store.interaction.get("user") or info.get("login_hint"))
        if isinstance(user, str):
            return _other_tenant(info, user)
        return complete(info, user)
    return _page(info)


def _pick_user(info: dict, upn: str | None) -> User | str:
    """The user to sign in as; a UPN string when that user is not in the requested tenant."""
    store = current_sim().store
    tid = info["tenant"]
    specific = tid not in ("common", "organizations", "consumers")
    if upn:
        user = store.find_user(upn)
        if user is None or (specific and user.tenant_id != tid):
            return upn
        return user
    if not specific:
        # No tenant and no user named: the first admin of the app's home tenant.
        tid = store.apps[info["client_id"]].tenant_id
    with store.lock:
        users = [u for u in store.users.values() if u.tenant_id == tid]
        admins = [u for u in users if u.admin] or users
        if admins:
            return admins[0]
        t = store.tenants[tid]
        made = directory.create_user(store, tid, f"admin@{t.domains[0]}", "Simulated Admin")
        return store.users[made["id"]]


def complete(info: dict, user: User):
    """Consent as `user` and send the result to the client."""
    store = current_sim().store
    app = store.apps[info["client_id"]]
    if user.tenant_id != app.tenant_id and not app.multi_tenant:
        return _fail(
            info,
            "unauthorized_client",
            700016,
            f"Application with identifier '{app.app_id}' was not found in the directory "
            f"'{store.tenants[user.tenant_id].display_name}'. This can happen if the "
            "application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant.",
        )
    if info["kind"] == "adminconsent":
        if not user.admin:
            return _fail(info, "consent_required", 90094, "The grant requires admin permission.")
        return finish_adminconsent(info, user)
    tenant = store.tenants[user.tenant_id]
    try:
        _resource, kind, names = _delegated_resource(info["scopes"], tenant)
    except AADSTSError as exc:
        return _fail(info, exc.error, exc.code, exc.message)
    if kind == "graph":
        if names == [".default"]:
            sp = store.sp_for(tenant.id, app.app_id)
            if sp is None or not store.delegated_scopes(tenant.id, sp.id, "graph", user.id):
                names = [
                    p.name
                    for p in app.required_permissions
                    if p.type == "Scope" and p.resource == "graph"
                ]
            else:
                names = []
        unknown = [n for n in names if n not in catalog.GRAPH_SCOPES]
        if unknown:
            return _fail(
                info,
                "invalid_client",
                650053,
                f"The application '{app.display_name}' asked for scope '{unknown[0]}' "
                "that doesn't exist on the resource "
                f"'{catalog.GRAPH_APP_ID}'. Contact the app vendor.",
            )
        if any(catalog.GRAPH_SCOPES[n][1] for n in names) and not user.admin:
            return _fail(info, "consent_required", 90094, "The grant requires admin permission.")
        if names:
            # An admin's consent here is for the whole organisation (AllPrincipals); a user's is
            # for themselves only.
            directory.grant_delegated(
                store,
                tenant.id,
                app.app_id,
                names,
                principal_id=None if user.admin else user.id,
                delayed=False,
            )
    else:
        directory.ensure_sp(store, tenant.id, app)
    return finish_authorize(info, user)


def decline(info: dict):
    if info["kind"] == "adminconsent" and not info.get("v2"):
        # v1 admin consent reports a cancel this way (v2-oauth2-client-creds-grant-flow).
        return respond(
            info["redirect_uri"],
            {
                "error": "permission_denied",
                "error_description": "The admin canceled the request",
                "state": info["state"],
            },
        )
    if info["kind"] == "adminconsent":
        return respond(
            info["redirect_uri"],
            error_params(
                "consent_required",
                65004,
                "User declined to consent to access the app.",
                info["state"],
                {"admin_consent": "True"},
            ),
        )
    return respond(
        info["redirect_uri"],
        error_params(
            "access_denied",
            65004,
            "User declined to consent to access the app.",
            info["state"],
            {"error_subcode": "cancel"},
        ),
        info["mode"],
    )


def _other_tenant(info: dict, upn: str):
    store = current_sim().store
    app = store.apps[info["client_id"]]
    tid = info["tenant"]
    t = store.tenants.get(tid)
    return _fail(
        info,
        "invalid_request",
        50020,
        f"User account '{upn}' from identity provider "
        f"'https://sts.windows.net/{secrets.token_hex(4)}/' does not exist in tenant "
        f"'{t.display_name if t else tid}' and cannot access the application "
        f"'{app.app_id}'({app.display_name}) in that tenant. The account needs to be "
        "added as an external user in the tenant first. Sign out and sign in again with a "
        "different Azure Active Directory user account.",
    )


def _fail(info: dict, error: str, code: int, message: str):
    extra = {"admin_consent": "True"} if info["kind"] == "adminconsent" and info.get("v2") else None
    return respond(
        info["redirect_uri"], error_params(error, code, message, info["state"], extra), info["mode"]
    )


# --- the sign-in / consent page ("page" mode) --------------------------------------------------


def _csrf(pending_id: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"signin|" + pending_id.encode(), hashlib.sha256).hexdigest()


def _page(info: dict):
    s = current_sim()
    store = s.store
    pending_id = secrets.token_urlsafe(24)
    with store.lock:
        if len(s.pending) >= PENDING_LIMIT:
            s.pending.pop(next(iter(s.pending)))
        s.pending[pending_id] = info
    tid = info["tenant"]
    users = [
        u for u in store.users.values() if tid in ("common", "organizations") or u.tenant_id == tid
    ]
    app = store.apps[info["client_id"]]
    if info["kind"] == "adminconsent":
        asked = [
            f"{catalog.RESOURCES[p.resource][1]}: {p.name} "
            f"({'application' if p.type == 'Role' else 'delegated'})"
            for p in app.required_permissions
        ]
    else:
        asked = [sc for sc in info["scopes"]]
    return render_template(
        "signin.html",
        info=info,
        app=app,
        users=users,
        asked=asked,
        pending_id=pending_id,
        csrf=_csrf(pending_id),
        hint=info.get("login_hint") or "",
    )


@bp.post("/<pending_id>")
def decide(pending_id):
    s = current_sim()
    if not hmac.compare_digest(request.form.get("csrf_token", ""), _csrf(pending_id)):
        abort(400, "bad CSRF token")
    with s.store.lock:
        info = s.pending.pop(pending_id, None)
    if info is None:
        abort(400, "this sign-in request has expired or was already answered")
    if request.form.get("decision") != "accept":
        return decline(info)
    upn = (request.form.get("upn") or "").strip()
    user = _pick_user(info, upn or None)
    if isinstance(user, str):
        return _other_tenant(info, user)
    return complete(info, user)
