"""pytest plugin: the Entra simulator over real HTTPS on loopback.

    pytest_plugins = ["entrasim.testing"]

`sim_server` (session): a running `SimServer` with `.ca_path`, `.base_url(cloud)`, `.clouds()`,
`.clouds_file(path)` and `.admin` (a `SimAdmin`). `sim` (function): the `SimAdmin`, with the state
reset before the test. Also `sim_session(sim_server)`: a `requests.Session` that trusts the CA.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from html.parser import HTMLParser
from urllib.parse import parse_qsl

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

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
        with self.session.post(f"{self.base_url}/_sim/api/{operation}", json=kwargs,
                               timeout=30) as resp:
            body = resp.json()
            if resp.status_code != 200:
                raise SimAdminError(resp.status_code, body)
            return body

    def _get(self, path: str, **params):
        with self.session.get(f"{self.base_url}/_sim/api/{path}", params=params,
                              timeout=30) as resp:
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
        return self._call("create_tenant", cloud=cloud, domains=domains,
                          display_name=display_name, tenant_id=tenant_id)

    def create_user(self, tenant_id, upn, display_name=None, admin=True):
        return self._call("create_user", tenant_id=tenant_id, upn=upn,
                          display_name=display_name, admin=admin)

    def create_app(self, tenant_id, display_name="app", multi_tenant=False, redirect_uris=(),
                   app_id=None):
        return self._call("create_app", tenant_id=tenant_id, display_name=display_name,
                          multi_tenant=multi_tenant, redirect_uris=list(redirect_uris),
                          app_id=app_id)

    def upload_certificate(self, tenant_id, app_id, cert, display_name=None):
        data = cert.encode() if isinstance(cert, str) else bytes(cert)
        return self._call("upload_certificate", tenant_id=tenant_id, app_id=app_id,
                          cert_b64=base64.b64encode(data).decode(), display_name=display_name)

    def remove_certificate(self, tenant_id, app_id, thumbprint):
        return self._call("remove_certificate", tenant_id=tenant_id, app_id=app_id,
                          thumbprint=thumbprint)

    def add_client_secret(self, tenant_id, app_id, expires_in_days=180):
        return self._call("add_client_secret", tenant_id=tenant_id, app_id=app_id,
                          expires_in_days=expires_in_days)

    def set_service_principal_enabled(self, tenant_id, app_id, enabled):
        return self._call("set_service_principal_enabled", tenant_id=tenant_id, app_id=app_id,
                          enabled=enabled)

    def add_required_permission(self, app_id, permission, resource="graph", type="Role"):
        return self._call("add_required_permission", app_id=app_id, permission=permission,
                          resource=resource, type=type)

    def grant_app_role(self, tenant_id, app_id, permission, resource="graph"):
        return self._call("grant_app_role", tenant_id=tenant_id, app_id=app_id,
                          permission=permission, resource=resource)

    def revoke_app_role(self, tenant_id, app_id, permission, resource="graph"):
        return self._call("revoke_app_role", tenant_id=tenant_id, app_id=app_id,
                          permission=permission, resource=resource)

    def grant_delegated(self, tenant_id, app_id, scopes):
        return self._call("grant_delegated", tenant_id=tenant_id, app_id=app_id,
                          scopes=_scopes(scopes))

    def revoke_delegated(self, tenant_id, app_id, scopes):
        return self._call("revoke_delegated", tenant_id=tenant_id, app_id=app_id,
                          scopes=_scopes(scopes))

    def assign_directory_role(self, tenant_id, app_id, role_template_id):
        return self._call("assign_directory_role", tenant_id=tenant_id, app_id=app_id,
                          role_template_id=role_template_id)

    def remove_directory_role(self, tenant_id, app_id, role_template_id):
        return self._call("remove_directory_role", tenant_id=tenant_id, app_id=app_id,
                          role_template_id=role_template_id)

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
    def set_fault(self, endpoint, kind, times=None, status=None, retry_after=None, ms=None,
                  seconds=None):
        return self._call("set_fault", endpoint=endpoint, kind=kind, times=times, status=status,
                          retry_after=retry_after, ms=ms, seconds=seconds)

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


# --- helpers for tests -----------------------------------------------------------------------

class SimCertificate:
    """A self-signed RSA certificate and key for client-assertion tests (MSAL credential forms)."""

    def __init__(self, bits: int = 2048, days: int = 365, cn: str = "portal connection"):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1))
                     .not_valid_after(now + dt.timedelta(days=days))
                     .sign(self.key, hashes.SHA256()))
        self.key_pem = self.key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.sha1 = hashlib.sha1(self.der).hexdigest().upper()

    def credential(self, form: str = "sha1") -> dict:
        """MSAL client_credential: "sha1" -> RS256 + x5t; "sha256" -> PS256 + x5t#S256."""
        if form == "sha1":
            return {"private_key": self.key_pem, "thumbprint": self.sha1}
        return {"private_key": self.key_pem, "public_certificate": self.cert_pem}


AADSTS_FIELDS = {"error", "error_description", "error_codes", "timestamp", "trace_id",
                 "correlation_id", "error_uri"}


def assert_aadsts(body: dict, error: str, code: int) -> None:
    """Assert an Entra error body: fields, `error`, `error_codes`, description prefix and tail."""
    assert AADSTS_FIELDS <= set(body), body
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}:"), body
    assert re.search(r"\r\nTrace ID: .+\r\nCorrelation ID: .+\r\nTimestamp: \d{4}-\d\d-\d\d "
                     r"\d\d:\d\d:\d\dZ$", body["error_description"]), body
    assert body["error_uri"].endswith(f"/error?code={code}"), body


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def follow_authorize(session: requests.Session, auth_uri: str) -> tuple[str, dict]:
    """Play the browser for one /authorize or /adminconsent URL (interaction mode "consent" or an
    error mode): returns (the redirect URI the result goes to, its parameters), whether it came as
    a query/fragment redirect or as a form_post page."""
    with session.get(auth_uri, allow_redirects=False, timeout=30) as resp:
        if resp.status_code in (301, 302, 303):
            target = resp.headers["Location"]
            sep = "#" if "#" in target else "?"
            base, _, query = target.partition(sep)
            return base, dict(parse_qsl(query, keep_blank_values=True))
        parser = _FormParser()
        parser.feed(resp.text)
        if resp.status_code != 200 or parser.action is None:
            raise AssertionError(f"no redirect or form_post from {auth_uri}: {resp.status_code} "
                                 f"{resp.text[:500]}")
        return parser.action, parser.fields


def unverified_claims(token: str) -> dict:
    """A JWT's claims without checking it (for assertions in tests only)."""
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture(scope="session")
def sim_server(tmp_path_factory):
    server = SimServer(cert_dir=tmp_path_factory.mktemp("entrasim")).start()
    server.admin = SimAdmin(server.base_url("global"), server.ca_path, server)
    try:
        yield server
    finally:
        server.admin.close()
        server.stop()


@pytest.fixture
def sim(sim_server):
    sim_server.admin.reset()
    return sim_server.admin


@pytest.fixture
def sim_session(sim_server):
    session = trusting_session(sim_server.ca_path)
    yield session
    session.close()
