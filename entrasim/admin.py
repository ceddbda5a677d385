"""The JSON admin API under /_sim/api/ (what `SimAdmin` calls; one operation per method).

`POST /_sim/api/<operation>` with a JSON object of keyword arguments; `GET /_sim/api/state` and
`GET /_sim/api/requests?endpoint=`. Mutations demand `Content-Type: application/json`, which a
cross-site HTML form cannot send, so a page open in the demo browser cannot drive this API.
Errors: 404 `{"error": "not_found", "message"}`, 400 `{"error": "bad_request", "message"}`.
"""

from __future__ import annotations

import base64

from flask import Blueprint, abort, jsonify, request

from . import directory
from .app import current_sim
from .faults import Fault
from .interaction import MODES

bp = Blueprint("admin", __name__, url_prefix="/_sim/api")


def _reset(sim, **_):
    sim.reset()
    return {"reset": True}


def _set_interaction(sim, mode="consent", user=None):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}")
    with sim.store.lock:
        sim.store.interaction = {"mode": mode, "user": user}
    return dict(sim.store.interaction)


def _tamper(sim, **overrides):
    allowed = {"aud", "iss", "tid", "nonce", "exp", "bad_signature"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"cannot tamper with {sorted(unknown)}; allowed: {sorted(allowed)}")
    with sim.store.lock:
        sim.store.tamper_id_token = overrides
    return {"tamper": overrides}


def _advance_clock(sim, seconds):
    with sim.store.lock:
        sim.store.clock_offset += float(seconds)
    return {"clock_offset": sim.store.clock_offset, "now": sim.store.now()}


def _replication_delay(sim, seconds):
    with sim.store.lock:
        sim.store.replication_delay = max(0.0, float(seconds))
    return {"replication_delay": sim.store.replication_delay}


def _set_fault(
    sim,
    endpoint,
    kind,
    times=None,
    status=None,
    retry_after=None,
    ms=None,
    seconds=None,
    cloud=None,
):
    sim.faults.add(Fault(endpoint, kind, times, status, retry_after, ms, seconds, cloud))
    return {"faults": sim.faults.describe()}


def _clear_faults(sim):
    sim.faults.clear()
    return {"faults": []}


def _load_state(sim, state):
    sim.store.load(state)
    return {"loaded": True}


def _store_op(fn):
    return lambda sim, **kw: fn(sim.store, **kw)


def _upload(store, tenant_id, app_id, cert=None, cert_b64=None, display_name=None):
    data = base64.b64decode(cert_b64) if cert_b64 else cert
    if not data:
        raise ValueError("give `cert` (PEM text) or `cert_b64` (base64 of PEM or DER bytes)")
    return directory.upload_certificate(store, tenant_id, app_id, data, display_name)


OPERATIONS = {
    "reset": _reset,
    "create_tenant": _store_op(directory.create_tenant),
    "create_user": _store_op(directory.create_user),
    "create_app": _store_op(directory.create_app),
    "upload_certificate": _store_op(_upload),
    "remove_certificate": _store_op(directory.remove_certificate),
    "add_client_secret": _store_op(directory.add_client_secret),
    "set_service_principal_enabled": _store_op(
        lambda store, tenant_id, app_id, enabled: directory.set_sp_enabled(
            store, tenant_id, app_id, enabled
        )
    ),
    "add_required_permission": _store_op(directory.add_required_permission),
    "grant_app_role": _store_op(directory.grant_app_role),
    "revoke_app_role": _store_op(directory.revoke_app_role),
    "grant_delegated": _store_op(
        lambda store, tenant_id, app_id, scopes: directory.grant_delegated(
            store, tenant_id, app_id, scopes
        )
    ),
    "revoke_delegated": _store_op(directory.revoke_delegated),
    "assign_directory_role": _store_op(directory.assign_directory_role),
    "remove_directory_role": _store_op(directory.remove_directory_role),
    "revoke_refresh_tokens": _store_op(directory.revoke_refresh_tokens),
    "set_interaction": _set_interaction,
    "tamper_next_id_token": _tamper,
    "advance_clock": _advance_clock,
    "set_replication_delay": _replication_delay,
    "set_fault": _set_fault,
    "clear_faults": _clear_faults,
    "load_state": _load_state,
}


@bp.post("/<operation>")
def operate(operation):
    fn = OPERATIONS.get(operation)
    if fn is None:
        abort(404)
    if not request.is_json:
        return jsonify(error="bad_request", message="Content-Type must be application/json"), 415
    kwargs = request.get_json(silent=True)
    if not isinstance(kwargs, dict):
        return jsonify(error="bad_request", message="body must be a JSON object"), 400
    try:
        return jsonify(fn(current_sim(), **kwargs))
    except LookupError as exc:
        return jsonify(error="not_found", message=str(exc.args[0] if exc.args else exc)), 404
    except (ValueError, TypeError) as exc:
        return jsonify(error="bad_request", message=str(exc)), 400


@bp.get("/state")
def state():
    return jsonify(current_sim().store.to_dict())


@bp.get("/requests")
def requests_log():
    return jsonify(current_sim().faults.entries(request.args.get("endpoint")))


@bp.get("/faults")
def faults():
    return jsonify(current_sim().faults.describe())
