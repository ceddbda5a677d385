"""Client of the simulator's JSON admin API (`/_sim/api/`), for tests and the demo launcher.

Kept apart from the pytest plugin (`entrasim.testing`) so that code outside the test suite, such
as `scripts/run_demo.py`, can drive a running simulator without importing pytest.
"""

from __future__ import annotations

import base64

import requests

from .server import SimServer


def trusting_session(ca_path: str) -> requests.Session:
    """A requests session that trusts only the simulator CA.

    `trust_env=False` matters: with it on, REQUESTS_CA_BUNDLE from the environment overrides
    `verify` (see shared/reference/harness.md).
    """
    session = requests.Session()
    session.verify = ca_path
    session.trust_env = False
    return session


class SimAdminError(RuntimeError):
    def __init__(self, status: int, body):
        super().__init__(f"simulator admin API answered {status}: {body}")
        self.status, self.body = status, body


class SimAdmin:
    """Client of the JSON admin API (`/_sim/api/`); each method is one call."""

    def __init__(self, base_url: str, ca_path: str, server: SimServer | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.server = server
        self.session = trusting_session(ca_path)

    def close(self) -> None:
        self.session.close()

    def _call(self, operation: str, **kwargs):
        with self.session.post(
            f"{self.base_url}/_sim/api/{operation}", json=kwargs, timeout=30
        ) as resp:
            body = resp.json()
            if resp.status_code != 200:
                raise SimAdminError(resp.status_code, body)
            return body

    def _get(self, path: str, **params):
        with self.session.get(
            f"{self.base_url}/_sim/api/{path}", params=params, timeout=30
        ) as resp:
            resp.raise_for_status()
            return resp.json()

    # --- state ----------------------------------------------------------------------------
    def reset(self):
        return self._call("reset")

    def state(self) -> dict:
        return self._get("state")

    def load_state(self, state: dict):
        return self._call("load_state", state=state)

    # --- directory --------------------------------------------------------------------------
    def create_tenant(self, cloud="global", domains=None, display_name=None, tenant_id=None):
        return self._call(
            "create_tenant",
            cloud=cloud,
            domains=domains,
            display_name=display_name,
            tenant_id=tenant_id,
        )

    def create_user(self, tenant_id, upn, display_name=None, admin=True):
        return self._call(
            "create_user", tenant_id=tenant_id, upn=upn, display_name=display_name, admin=admin
        )

    def create_app(
        self, tenant_id, display_name="app", multi_tenant=False, redirect_uris=(), app_id=None
    ):
        return self._call(
            "create_app",
            tenant_id=tenant_id,
            display_name=display_name,
            multi_tenant=multi_tenant,
            redirect_uris=list(redirect_uris),
            app_id=app_id,
        )

    def upload_certificate(self, tenant_id, app_id, cert, display_name=None):
        data = cert.encode() if isinstance(cert, str) else bytes(cert)
        return self._call(
            "upload_certificate",
            tenant_id=tenant_id,
            app_id=app_id,
            cert_b64=base64.b64encode(data).decode(),
            display_name=display_name,
        )

    def remove_certificate(self, tenant_id, app_id, thumbprint):
        return self._call(
            "remove_certificate", tenant_id=tenant_id, app_id=app_id, thumbprint=thumbprint
        )

    def add_client_secret(self, tenant_id, app_id, expires_in_days=180):
        return self._call(
            "add_client_secret", tenant_id=tenant_id, app_id=app_id, expires_in_days=expires_in_days
        )

    def set_service_principal_enabled(self, tenant_id, app_id, enabled):
        return self._call(
            "set_service_principal_enabled", tenant_id=tenant_id, app_id=app_id, enabled=enabled
        )

    def add_required_permission(self, app_id, permission, resource="graph", type="Role"):
        return self._call(
            "add_required_permission",
            app_id=app_id,
            permission=permission,
            resource=resource,
            type=type,
        )

    def grant_app_role(self, tenant_id, app_id, permission, resource="graph"):
        return self._call(
            "grant_app_role",
            tenant_id=tenant_id,
            app_id=app_id,
            permission=permission,
            resource=resource,
        )

    def revoke_app_role(self, tenant_id, app_id, permission, resource="graph"):
        return self._call(
            "revoke_app_role",
            tenant_id=tenant_id,
            app_id=app_id,
            permission=permission,
            resource=resource,
        )

    def grant_delegated(self, tenant_id, app_id, scopes):
        return self._call(
            "grant_delegated", tenant_id=tenant_id, app_id=app_id, scopes=_scopes(scopes)
        )

    def revoke_delegated(self, tenant_id, app_id, scopes):
        return self._call(
            "revoke_delegated", tenant_id=tenant_id, app_id=app_id, scopes=_scopes(scopes)
        )

    def assign_directory_role(self, tenant_id, app_id, role_template_id):
        return self._call(
            "assign_directory_role",
            tenant_id=tenant_id,
            app_id=app_id,
            role_template_id=role_template_id,
        )

    def remove_directory_role(self, tenant_id, app_id, role_template_id):
        return self._call(
            "remove_directory_role",
            tenant_id=tenant_id,
            app_id=app_id,
            role_template_id=role_template_id,
        )

    # --- sign-in behaviour and tokens -------------------------------------------------------------
    def set_interaction(self, mode="consent", user=None):
        return self._call("set_interaction", mode=mode, user=user)

    def tamper_next_id_token(self, **overrides):
        return self._call("tamper_next_id_token", **overrides)

    def revoke_refresh_tokens(self, tenant_id, upn):
        return self._call("revoke_refresh_tokens", tenant_id=tenant_id, upn=upn)

    def advance_clock(self, seconds):
        return self._call("advance_clock", seconds=seconds)

    def set_replication_delay(self, seconds):
        return self._call("set_replication_delay", seconds=seconds)

    # --- faults and the request log ---------------------------------------------------------
    def set_fault(
        self,
        endpoint,
        kind,
        times=None,
        status=None,
        retry_after=None,
        ms=None,
        seconds=None,
        cloud=None,
    ):
        return self._call(
            "set_fault",
            endpoint=endpoint,
            kind=kind,
            times=times,
            status=status,
            retry_after=retry_after,
            ms=ms,
            seconds=seconds,
            cloud=cloud,
        )

    def clear_faults(self):
        return self._call("clear_faults")

    def requests(self, endpoint=None):
        return self._get("requests", **({"endpoint": endpoint} if endpoint else {}))

    # --- conveniences (not API calls) --------------------------------------------------------
    @property
    def ca_path(self) -> str:
        return self.server.ca_path

    def base(self, cloud: str = "global") -> str:
        return self.server.base_url(cloud)

    def authority(self, tenant: str, cloud: str = "global") -> str:
        return f"{self.server.base_url(cloud)}/{tenant}"


def _scopes(scopes) -> list[str]:
    return scopes.split() if isinstance(scopes, str) else list(scopes)
