"""Service-provider (delegated) connections: sign-in and consent through the simulator."""

from __future__ import annotations

import html
import re

import pytest

from portal.entra import idtoken
from portal.entra.client import DELEGATED_SCOPE_NAMES, CertificateCredential, EntraClient
from portal.entra.clouds import http_session

REDIRECT = "https://portal.example.test/auth/callback"
ADMIN = "admin@contoso.onmicrosoft.com"


class Provider:
    """Our multi-tenant app (in its home tenant) and a customer tenant with an admin."""

    def __init__(self, sim, table, cert):
        home = sim.create_tenant(cloud="global", domains=["provider.onmicrosoft.com"])
        self.app_tenant = home["id"]
        self.app = sim.create_app(
            home["id"], display_name="HR automation", multi_tenant=True, redirect_uris=[REDIRECT]
        )
        sim.upload_certificate(home["id"], self.app["app_id"], cert.cert_pem)
        self.customer = sim.create_tenant(
            cloud="global", domains=["contoso.onmicrosoft.com"], display_name="Contoso Ltd"
        )
        sim.create_user(self.customer["id"], ADMIN, display_name="Ada Admin")
        self.credential = CertificateCredential(cert.private_key_pem, cert.cert_pem)
        self.cloud = table.get("sim-global")
        self.session = http_session(table, self.cloud)
        self.sim, self.table = sim, table

    @property
    def client_id(self):
        return self.app["app_id"]

    def sign_in(self, scopes=DELEGATED_SCOPE_NAMES):
        """Run the auth code flow with the simulator consenting as the admin; return the client."""
        client, result, _ = self.sign_in_with_flow(scopes)
        return client, result

    def sign_in_with_flow(self, scopes=DELEGATED_SCOPE_NAMES):
        """As sign_in, also returning MSAL's flow dict (for the nonce)."""
        self.sim.set_interaction("consent", user=ADMIN)
        client = EntraClient(
            self.cloud, "organizations", self.client_id, self.credential, session=self.session
        )
        started = client.initiate_auth_code_flow(REDIRECT, scopes)
        assert started.ok and started.state and started.auth_uri.startswith(self.cloud.login_base)
        page = self.session.get(started.auth_uri)
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(
                r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text
            )
        }
        assert "code" in fields, page.text[:500]
        result = client.complete_auth_code_flow(started.flow, fields)
        assert result.ok, result.problem
        return client, result, started.flow


def test_sign_in_grants_every_scope(sim, table, cert):
    p = Provider(sim, table, cert)
    _, result = p.sign_in()
    assert result.id_token_claims["tid"] == p.customer["id"]
    assert set(DELEGATED_SCOPE_NAMES) <= set(result.scopes)


def test_consent_declined_is_a_value(sim, table, cert):
    p = Provider(sim, table, cert)
    sim.set_interaction("decline")
    client = EntraClient(p.cloud, "organizations", p.client_id, p.credential, session=p.session)
    started = client.initiate_auth_code_flow(REDIRECT)
    page = p.session.get(started.auth_uri)
    fields = {
        n: html.unescape(v)
        for n, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text)
    }
    result = client.complete_auth_code_flow(started.flow, fields)
    assert not result.ok and result.problem.code == 65004


def test_forged_state_is_a_value(sim, table, cert):
    p = Provider(sim, table, cert)
    client = EntraClient(p.cloud, "organizations", p.client_id, p.credential, session=p.session)
    started = client.initiate_auth_code_flow(REDIRECT)
    result = client.complete_auth_code_flow(started.flow, {"code": "x", "state": "forged"})
    assert not result.ok and result.problem.error == "state_mismatch"
    assert not sim.requests("token")


def test_id_token_of_a_real_sign_in_passes_idtoken_validate(sim, table, cert):
    p = Provider(sim, table, cert)
    client, result, flow = p.sign_in_with_flow()
    raw = _raw_id_token(client)
    nonce = idtoken.expected_nonce(flow["nonce"])
    check = idtoken.validate(
        raw,
        cloud=p.cloud,
        client_id=p.client_id,
        nonce=nonce,
        session=p.session,
        expected_tenant=p.customer["id"],
        cache=idtoken.JwksCache(),
    )
    assert check.ok, check.reason
    assert check.tenant_id == p.customer["id"] == result.id_token_claims["tid"]


@pytest.mark.parametrize(
    "tamper", [{"bad_signature": True}, {"iss": "https://evil.example/x"}, {"aud": "someone-else"}]
)
def test_tampered_id_token_is_refused(sim, table, cert, tamper):
    p = Provider(sim, table, cert)
    sim.tamper_next_id_token(**tamper)
    client, _, flow = p.sign_in_with_flow()
    check = idtoken.validate(
        _raw_id_token(client),
        cloud=p.cloud,
        client_id=p.client_id,
        nonce=idtoken.expected_nonce(flow["nonce"]),
        session=p.session,
        cache=idtoken.JwksCache(),
    )
    assert not check.ok


def _raw_id_token(client):
    import json

    cache = json.loads(client.cache_text())
    return next(iter(cache["IdToken"].values()))["secret"]


def test_session_returns_redirects_instead_of_following_them(sim, table, cert):
    p = Provider(sim, table, cert)
    sim.set_interaction("consent", user=ADMIN)
    url = (
        f"{p.cloud.login_base}/organizations/oauth2/v2.0/authorize?client_id={p.client_id}"
        f"&redirect_uri={REDIRECT}&response_type=code&scope=openid&state=s"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    )
    response = p.session.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(REDIRECT)  # not followed: other host
    assert response.history == []


def test_admin_consent_url_is_accepted_and_grants_app_roles(sim, table, cert):
    from urllib.parse import parse_qs, urlsplit

    from portal.entra.verify import verify_customer_owned

    p = Provider(sim, table, cert)
    for permission in (
        "User.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.ReadWrite.All",
        "User.EnableDisableAccount.All",
    ):
        sim.add_required_permission(p.client_id, permission)
    sim.set_interaction("consent", user=ADMIN)
    url = p.cloud.admin_consent_url(p.customer["id"], p.client_id, REDIRECT, "st-1")
    response = p.session.get(url)
    assert response.status_code == 302
    back = urlsplit(response.headers["Location"])
    query = parse_qs(back.query)
    assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT
    assert query["admin_consent"] == ["True"] and query["state"] == ["st-1"]
    assert query["tenant"] == [p.customer["id"]]
    # Don't trust the redirect's `tenant`: prove it with an app-only token for the stored tenant.
    sim.assign_directory_role(p.customer["id"], p.client_id, "fe930be7-5e62-47db-91af-98c3a49a38b1")
    report = verify_customer_owned(
        table, "sim-global", p.customer["id"], p.client_id, p.credential, False, fresh=True
    )
    assert report.ok, report.problem


def test_service_principal_lookup_by_app_id(sim, table, cert):
    from portal.entra.grants import lookup_sp
    from portal.entra.graph import GraphClient
    from portal.entra.report import StepTimer

    p = Provider(sim, table, cert)
    client = EntraClient(p.cloud, p.app_tenant, p.client_id, p.credential, session=p.session)
    token = client.acquire_app_token(p.cloud.graph_scope())
    graph = GraphClient(p.session, p.cloud, token.access_token)
    assert lookup_sp(graph, p.client_id, StepTimer()) == token.claims["oid"]
