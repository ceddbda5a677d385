"""The HTML "admin center" under /_sim/admin: what a customer does in Entra, for demo mode.

List tenants and app registrations, create app registrations, upload a certificate file (.cer,
.pem, .crt), add API permissions and grant admin consent, assign a directory role. Server-rendered
forms that work without JavaScript. Every POST is CSRF-checked: a random cookie (SameSite=Strict,
HttpOnly, Secure) and a form field that must equal an HMAC of it, plus an Origin check when the
browser sends one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for

from . import catalog, directory
from .app import base_url, current_sim

bp = Blueprint(
    "admin_center",
    __name__,
    url_prefix="/_sim",
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)

COOKIE = "entrasim_csrf"
# The directory roles the product asks customers to assign, first in the picker.
FEATURED_ROLES = ["fe930be7-5e62-47db-91af-98c3a49a38b1", "29232cdf-9323-42fd-ade2-1d097af3e4de"]


def _sign(value: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"admin|" + value.encode(), hashlib.sha256).hexdigest()


@bp.before_request
def _csrf():
    if not request.path.startswith("/_sim/admin"):
        return None
    g.csrf_cookie = request.cookies.get(COOKIE) or secrets.token_urlsafe(24)
    g.csrf_token = _sign(g.csrf_cookie)
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin and origin.rstrip("/") not in (base_url(), request.host_url.rstrip("/")):
            abort(403, "cross-origin form post refused")
        sent = request.form.get("csrf_token", "")
        if COOKIE not in request.cookies or not hmac.compare_digest(sent, g.csrf_token):
            abort(400, "missing or bad CSRF token; reload the page and try again")
    return None


@bp.after_request
def _set_cookie(response):
    if request.path.startswith("/_sim/admin") and COOKIE not in request.cookies:
        response.set_cookie(
            COOKIE, g.csrf_cookie, secure=True, httponly=True, samesite="Strict", path="/_sim/admin"
        )
    if request.path.startswith("/_sim/admin"):
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'none'; form-action 'self'; frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
    return response


def _back(endpoint: str, message: str = "", error: str = "", **values):
    return redirect(url_for(endpoint, done=message or None, error=error or None, **values), 303)


def _attempt(endpoint: str, ok: str, fn, **values):
    """Run a directory operation; on a bad input or missing object, show its message instead."""
    try:
        fn()
    except (LookupError, ValueError) as exc:
        return _back(endpoint, error=str(exc.args[0] if exc.args else exc), **values)
    return _back(endpoint, ok, **values)


# --- pages ------------------------------------------------------------------------------------


@bp.get("/admin")
def index():
    store = current_sim().store
    with store.lock:
        tenants = sorted(store.tenants.values(), key=lambda t: (t.cloud, t.display_name))
    return render_template("admin/index.html", tenants=tenants, clouds=catalog.CLOUDS)


@bp.get("/admin/tenants/<tenant_id>")
def tenant(tenant_id):
    store = current_sim().store
    with store.lock:
        t = store.tenants.get(tenant_id) or abort(404)
        users = [u for u in store.users.values() if u.tenant_id == t.id]
        own = [a for a in store.apps.values() if a.tenant_id == t.id]
        resource_ids = {app_id for app_id, _ in catalog.RESOURCES.values()}
        enterprise = [
            (sp, store.apps[sp.app_id])
            for sp in store.service_principals.values()
            if sp.tenant_id == t.id
            and sp.app_id not in resource_ids
            and sp.app_id in store.apps
            and store.apps[sp.app_id].tenant_id != t.id
        ]
    return render_template(
        "admin/tenant.html",
        t=t,
        users=users,
        own=own,
        enterprise=enterprise,
        cloud=catalog.CLOUDS[t.cloud],
    )


@bp.get("/admin/tenants/<tenant_id>/apps/<app_id>")
def app_page(tenant_id, app_id):
    store = current_sim().store
    with store.lock:
        t = store.tenants.get(tenant_id) or abort(404)
        a = store.apps.get(app_id) or abort(404)
        sp = store.sp_for(t.id, a.app_id)
        now = store.now()
        granted = []
        if sp:
            names = {
                (kind, rid): name
                for kind, roles in catalog.APP_ROLES.items()
                for name, rid in roles.items()
            }
            kinds = {store.resource_sp(t.id, k).id: k for k in catalog.RESOURCES}
            for x in store.app_role_assignments.values():
                if x.principal_id == sp.id and (x.removed_from is None or x.removed_from > now):
                    kind = kinds.get(x.resource_id)
                    granted.append(
                        {
                            "resource": kind,
                            "name": names.get((kind, x.app_role_id)),
                            "pending": x.visible_from > now,
                            "removing": x.removed_from is not None,
                        }
                    )
        roles = [
            {
                "id": r.role_definition_id,
                "name": catalog.DIRECTORY_ROLES.get(r.role_definition_id),
                "pending": r.visible_from > now,
            }
            for r in store.role_assignments.values()
            if sp and r.principal_id == sp.id and r.removed_from is None
        ]
        delegated = sorted(store.delegated_scopes(t.id, sp.id, "graph", None)) if sp else []
    role_choices = [(rid, catalog.DIRECTORY_ROLES[rid]) for rid in FEATURED_ROLES] + sorted(
        ((rid, n) for rid, n in catalog.DIRECTORY_ROLES.items() if rid not in FEATURED_ROLES),
        key=lambda x: x[1],
    )
    return render_template(
        "admin/app.html",
        t=t,
        a=a,
        sp=sp,
        home=a.tenant_id == t.id,
        granted=granted,
        roles=roles,
        delegated=delegated,
        role_choices=role_choices,
        graph_roles=sorted(catalog.APP_ROLES["graph"]),
        graph_scopes=sorted(catalog.GRAPH_SCOPES),
        now=now,
        cloud=catalog.CLOUDS[t.cloud],
    )


# --- actions ------------------------------------------------------------------------------------


@bp.post("/admin/tenants")
def create_tenant():
    f = request.form
    domain = f.get("domain", "").strip().lower()
    return _attempt(
        "admin_center.index",
        "Tenant created.",
        lambda: directory.create_tenant(
            current_sim().store,
            f.get("cloud", "global"),
            [domain] if domain else None,
            f.get("display_name", "").strip() or None,
        ),
    )


@bp.post("/admin/tenants/<tenant_id>/users")
def create_user(tenant_id):
    f = request.form
    return _attempt(
        "admin_center.tenant",
        "User created.",
        lambda: directory.create_user(
            current_sim().store,
            tenant_id,
            f.get("upn", "").strip(),
            f.get("display_name", "").strip() or None,
            f.get("admin") == "on",
        ),
        tenant_id=tenant_id,
    )


@bp.post("/admin/tenants/<tenant_id>/apps")
def create_app(tenant_id):
    f = request.form
    store = current_sim().store
    redirect_uri = f.get("redirect_uri", "").strip()
    if redirect_uri and urlsplit(redirect_uri).scheme not in ("https", "http"):
        return _back(
            "admin_center.tenant",
            error="A redirect URI must be an http(s) URL.",
            tenant_id=tenant_id,
        )
    try:
        made = directory.create_app(
            store,
            tenant_id,
            f.get("display_name", "").strip() or "app",
            f.get("multi_tenant") == "on",
            [redirect_uri] if redirect_uri else [],
        )
    except (LookupError, ValueError) as exc:
        return _back("admin_center.tenant", error=str(exc), tenant_id=tenant_id)
    return _back(
        "admin_center.app_page",
        "App registration created.",
        tenant_id=tenant_id,
        app_id=made["app_id"],
    )


def _app_action(tenant_id, app_id, ok, fn):
    return _attempt("admin_center.app_page", ok, fn, tenant_id=tenant_id, app_id=app_id)


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/certificates")
def upload_certificate(tenant_id, app_id):
    upload = request.files.get("certificate")
    if upload is None or not upload.filename:
        return _back(
            "admin_center.app_page",
            error="Choose a certificate file.",
            tenant_id=tenant_id,
            app_id=app_id,
        )
    if not upload.filename.lower().endswith((".cer", ".pem", ".crt")):
        # The Entra admin center's own rule: "must be one of the following file types: .cer,
        # .pem, .crt" (how-to-add-credentials).
        return _back(
            "admin_center.app_page",
            error="The certificate must be one of the following file types: .cer, .pem, .crt",
            tenant_id=tenant_id,
            app_id=app_id,
        )
    data = upload.read(64 * 1024)
    return _app_action(
        tenant_id,
        app_id,
        "Certificate uploaded.",
        lambda: directory.upload_certificate(
            current_sim().store,
            tenant_id,
            app_id,
            data,
            request.form.get("description", "").strip() or None,
        ),
    )


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/certificates/<thumbprint>/delete")
def remove_certificate(tenant_id, app_id, thumbprint):
    return _app_action(
        tenant_id,
        app_id,
        "Certificate removed.",
        lambda: directory.remove_certificate(current_sim().store, tenant_id, app_id, thumbprint),
    )


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/permissions")
def add_permission(tenant_id, app_id):
    value = request.form.get("permission", "")
    resource, _, rest = value.partition(":")
    kind, _, name = rest.partition(":")
    return _app_action(
        tenant_id,
        app_id,
        "Permission added (not granted yet).",
        lambda: directory.add_required_permission(
            current_sim().store, app_id, name, resource, kind
        ),
    )


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/consent")
def grant_consent(tenant_id, app_id):
    store = current_sim().store

    def consent():
        directory.admin_consent(store, tenant_id, directory.app(store, app_id), None)

    return _app_action(tenant_id, app_id, "Admin consent granted.", consent)


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/app-roles/revoke")
def revoke_app_role(tenant_id, app_id):
    f = request.form
    return _app_action(
        tenant_id,
        app_id,
        "Permission revoked.",
        lambda: directory.revoke_app_role(
            current_sim().store, tenant_id, app_id, f.get("name", ""), f.get("resource", "graph")
        ),
    )


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/roles")
def assign_role(tenant_id, app_id):
    return _app_action(
        tenant_id,
        app_id,
        "Role assigned.",
        lambda: directory.assign_directory_role(
            current_sim().store, tenant_id, app_id, request.form.get("role", "")
        ),
    )


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/roles/<role_id>/delete")
def remove_role(tenant_id, app_id, role_id):
    return _app_action(
        tenant_id,
        app_id,
        "Role assignment removed.",
        lambda: directory.remove_directory_role(current_sim().store, tenant_id, app_id, role_id),
    )


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/enabled")
def set_enabled(tenant_id, app_id):
    enabled = request.form.get("enabled") == "yes"
    return _app_action(
        tenant_id,
        app_id,
        "Sign-in enabled." if enabled else "Sign-in disabled.",
        lambda: directory.set_sp_enabled(current_sim().store, tenant_id, app_id, enabled),
    )


@bp.post("/admin/tenants/<tenant_id>/apps/<app_id>/redirect-uris")
def add_redirect_uri(tenant_id, app_id):
    uri = request.form.get("redirect_uri", "").strip()

    def add():
        if urlsplit(uri).scheme not in ("https", "http"):
            raise ValueError("A redirect URI must be an http(s) URL.")
        a = directory.app(current_sim().store, app_id)
        if uri not in a.redirect_uris:
            a.redirect_uris.append(uri)

    return _app_action(tenant_id, app_id, "Redirect URI added.", add)
