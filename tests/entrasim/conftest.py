"""Helpers for the simulator's own tests: RSA certificates and real MSAL clients."""

from __future__ import annotations

import msal
import pytest

from entrasim.testing import SimCertificate, trusting_session


@pytest.fixture(scope="session")
def certs():
    """A few RSA certificates, made once per session (key generation is slow)."""
    return {"a": SimCertificate(), "b": SimCertificate(), "weak": SimCertificate(bits=1024)}


@pytest.fixture
def http(sim_server):
    session = trusting_session(sim_server.ca_path)
    yield session
    session.close()


@pytest.fixture
def msal_app(sim_server, http):
    """Factory: a real msal.ConfidentialClientApplication pointed at the simulator."""

    def make(tenant, client_id, credential, cloud="global", **kw):
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=credential,
            authority=f"{sim_server.base_url(cloud)}/{tenant}",
            http_client=http,
            instance_discovery=False,
            **kw,
        )

    return make


@pytest.fixture
def tenant_app(sim, certs):
    """A Contoso tenant with an app registration that has certificate "a" uploaded."""
    t = sim.create_tenant(domains=["contoso.onmicrosoft.com"], display_name="Contoso")
    app = sim.create_app(t["id"], display_name="HR sync")
    sim.upload_certificate(t["id"], app["app_id"], certs["a"].cert_pem)
    return t, app
