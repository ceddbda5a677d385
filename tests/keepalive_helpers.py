"""Linked service-provider connections made the honest way, for keep-alive (and other) tests.

:class:`Provider` registers our multi-tenant app in a home tenant of the simulator and a customer
tenant with an admin. :func:`link_connection` runs the real authorization-code flow with ``msal``
against the simulator (the admin consents), and stores the result exactly as the Link Account
flow does (contract in docs/architecture.md): ``tenant_id``, ``cloud``,
``consented_by_oid``, ``granted_scopes``, ``consented_at`` on the connection and the serialized
``msal.SerializableTokenCache`` in the vault (``connections/<id>/token_cache``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msal

from entrasim.testing import SimCertificate, follow_authorize, trusting_session
from portal import storage
from tests.seeding import set_columns

REDIRECT_URI = "https://portal.example.test/auth/callback"
SCOPES = ("User.ReadWrite.All", "Group.ReadWrite.All", "Directory.AccessAsUser.All")
SIM_CLOUD = "sim-global"


@dataclass
class Provider:
    """Our multi-tenant app in the simulator, with a client secret (and optionally a cert)."""

    sim: object
    home_tenant: str
    client_id: str
    secret: str = field(repr=False)
    cert: SimCertificate | None = None

    @classmethod
    def register(cls, sim, cert: SimCertificate | None = None) -> Provider:
        home = sim.create_tenant(
            cloud="global",
            domains=["provider.onmicrosoft.com"],
            display_name="HR automation (provider)",
        )
        app = sim.create_app(
            home["id"],
            display_name="HR automation",
            multi_tenant=True,
            redirect_uris=[REDIRECT_URI],
        )
        # A year: tests move the simulator's clock by 91 days (inactivity).
        secret = sim.add_client_secret(home["id"], app["app_id"], expires_in_days=365)["secret"]
        if cert is not None:
            sim.upload_certificate(home["id"], app["app_id"], cert.cert_pem)
        return cls(sim, home["id"], app["app_id"], secret, cert)

    def add_certificate(self, cert: SimCertificate) -> None:
        """Upload a certificate to the app registration (for ``SP_CERT_FILE``)."""
        self.sim.upload_certificate(self.home_tenant, self.client_id, cert.cert_pem)
        self.cert = cert

    def config(self, use_cert_file: str | None = None) -> dict:
        """The ``SP_*`` settings of the portal for this app."""
        if use_cert_file:
            return {
                "SP_CLIENT_ID": self.client_id,
                "SP_CERT_FILE": use_cert_file,
                "SP_CLIENT_SECRET": None,
            }
        return {"SP_CLIENT_ID": self.client_id, "SP_CLIENT_SECRET": self.secret}

    def customer(
        self,
        domain: str = "contoso.onmicrosoft.com",
        admin: str | None = None,
        display_name: str | None = None,
    ) -> Customer:
        """A customer tenant with a Global Administrator."""
        t = self.sim.create_tenant(
            cloud="global",
            domains=[domain],
            display_name=display_name or domain.split(".")[0].title(),
        )
        upn = admin or f"admin@{domain}"
        self.sim.create_user(t["id"], upn, display_name="Ada Admin", admin=True)
        return Customer(t["id"], upn, domain)


@dataclass(frozen=True)
class Customer:
    tenant_id: str
    admin_upn: str
    domain: str


@dataclass(frozen=True)
class Linked:
    """What a completed Link Account left behind (the refresh token only for assertions)."""

    connection: storage.Connection
    refresh_token: str = field(repr=False)
    oid: str = ""


def sign_in(
    sim, sim_server, provider: Provider, customer: Customer, scopes=SCOPES
) -> tuple[str, dict]:
    """The real auth-code flow with msal against the simulator; returns (cache text, result)."""
    http = trusting_session(sim_server.ca_path)
    cache = msal.SerializableTokenCache()
    client = msal.ConfidentialClientApplication(
        provider.client_id,
        client_credential=provider.secret,
        authority=f"{sim_server.base_url('global')}/{customer.tenant_id}",
        http_client=http,
        instance_discovery=False,
        token_cache=cache,
    )
    sim.set_interaction("consent", user=customer.admin_upn)
    flow = client.initiate_auth_code_flow(
        list(scopes), redirect_uri=REDIRECT_URI, response_mode="form_post"
    )
    target, params = follow_authorize(http, flow["auth_uri"])
    assert target == REDIRECT_URI, target
    result = client.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, {k: v for k, v in result.items() if "token" not in k}
    http.close()
    return cache.serialize(), result


def link_connection(
    app,
    sim,
    sim_server,
    provider: Provider,
    customer: Customer,
    org,
    *,
    consented_at: datetime | None = None,
    display_name: str | None = None,
    state: str = "connected",
    scopes=SCOPES,
) -> Linked:
    """A linked service-provider connection of ``org`` (consented at ``consented_at``, default
    two days ago so it is due for a keep-alive refresh)."""
    cache_text, result = sign_in(sim, sim_server, provider, customer, scopes)
    claims = result["id_token_claims"]
    at = (consented_at or datetime.now(UTC) - timedelta(days=2)).astimezone(UTC)
    with app.app_context():
        connection = storage.create_connection(
            org.id, "service_provider", display_name or customer.domain
        )
        storage.put_secret("connections", connection.id, "token_cache", cache_text.encode())
        connection = set_columns(
            connection.id,
            cloud=SIM_CLOUD,
            tenant_id=claims["tid"],
            tenant_domain=customer.domain,
            consented_by_oid=claims["oid"],
            consented_by_name=claims.get("name"),
            granted_scopes=result.get("scope", "").split(),
            consented_at=at.isoformat(timespec="seconds"),
            state=state,
            health="healthy",
        )
    return Linked(connection, result["refresh_token"], claims["oid"])


def stored_cache(app, connection_id: str) -> dict:
    """The connection's MSAL cache as stored (decrypted from the vault)."""
    with app.app_context():
        blob = storage.get_secret("connections", connection_id, "token_cache")
    return json.loads(blob) if blob else {}


def stored_refresh_tokens(app, connection_id: str) -> list[str]:
    """Every refresh token in the connection's stored cache."""
    tokens = stored_cache(app, connection_id).get("RefreshToken", {})
    return [rt["secret"] for rt in tokens.values()]


def token_calls(sim) -> int:
    """How many requests reached the simulator's token endpoint so far."""
    return len(sim.requests(endpoint="token"))
