"""pytest plugin: the Entra simulator over real HTTPS on loopback.

    pytest_plugins = ["entrasim.testing"]

`sim_server` (session): a running `SimServer` with `.ca_path`, `.base_url(cloud)`, `.clouds()`,
`.clouds_file(path)` and `.admin` (a `SimAdmin`). `sim` (function): the `SimAdmin`, with the state
reset before the test. Also `sim_session(sim_server)`: a `requests.Session` that trusts the CA.
"""

from __future__ import annotations

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

from .admin_client import SimAdmin, SimAdminError, trusting_session  # noqa: F401  (re-exported)
from .server import SimServer

# --- helpers for tests -----------------------------------------------------------------------


class SimCertificate:
    """A self-signed RSA certificate and key for client-assertion tests (MSAL credential forms)."""

    def __init__(self, bits: int = 2048, days: int = 365, cn: str = "portal connection"):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .sign(self.key, hashes.SHA256())
        )
        self.key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.sha1 = hashlib.sha1(self.der).hexdigest().upper()

    def credential(self, form: str = "sha1") -> dict:
        """MSAL client_credential: "sha1" -> RS256 + x5t; "sha256" -> PS256 + x5t#S256."""
        if form == "sha1":
            return {"private_key": self.key_pem, "thumbprint": self.sha1}
        return {"private_key": self.key_pem, "public_certificate": self.cert_pem}


AADSTS_FIELDS = {
    "error",
    "error_description",
    "error_codes",
    "timestamp",
    "trace_id",
    "correlation_id",
    "error_uri",
}


def assert_aadsts(body: dict, error: str, code: int) -> None:
    """Assert an Entra error body: fields, `error`, `error_codes`, description prefix and tail."""
    assert AADSTS_FIELDS <= set(body), body
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}:"), body
    assert re.search(
        r"\r\nTrace ID: .+\r\nCorrelation ID: .+\r\nTimestamp: \d{4}-\d\d-\d\d "
        r"\d\d:\d\d:\d\dZ$",
        body["error_description"],
    ), body
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
            raise AssertionError(
                f"no redirect or form_post from {auth_uri}: {resp.status_code} {resp.text[:500]}"
            )
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
