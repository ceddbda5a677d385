"""EntraClient: credentials, the three error shapes as values, and the token cache blob."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from portal.entra.client import (
    CertificateCredential,
    EntraClient,
    SecretCredential,
    TokenResult,
    decode_claims,
)
from portal.entra.clouds import http_session

from .sim_helpers import customer_owned


def _client(table, s, credential=None, cache=None):
    cloud = table.get("sim-global")
    return EntraClient(
        cloud,
        s.tenant_id,
        s.client_id,
        credential or s.credential,
        session=http_session(table, cloud),
        token_cache_text=cache,
    )


def test_certificate_credential_is_ps256_form(cert):
    msal_credential = CertificateCredential(cert.private_key_pem, cert.cert_pem).to_msal()
    # No thumbprint: MSAL ≥1.35 computes SHA-256 itself, signs PS256 with x5t#S256 and sends x5c.
    assert "thumbprint" not in msal_credential
    assert msal_credential["public_certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert isinstance(msal_credential["private_key"], rsa.RSAPrivateKey)
    again = CertificateCredential(cert.private_key_pem, cert.cert_pem).to_msal()
    assert again["private_key"] is msal_credential["private_key"]  # validated once per process
    assert "PRIVATE" not in repr(CertificateCredential(cert.private_key_pem, cert.cert_pem))
    assert "s3cret" not in repr(SecretCredential("s3cret"))


def test_app_token_and_claims(sim, table, cert):
    s = customer_owned(sim, cert)
    client = _client(table, s)
    result = client.acquire_app_token(table.get("sim-global").graph_scope())
    assert result.ok and result.source == "identity_provider"
    assert result.claims["tid"] == s.tenant_id and result.claims["oid"] == s.sp_id
    assert result.claims["azpacr"] == "2" or result.claims.get("appidacr") == "2"  # certificate
    assert result.roles == frozenset(
        {
            "User.ReadWrite.All",
            "Group.ReadWrite.All",
            "Directory.ReadWrite.All",
            "User.EnableDisableAccount.All",
        }
    )
    assert "access_token" not in repr(result) and result.access_token not in repr(result)
    text = client.cache_text_if_changed()
    assert text and client.cache_text_if_changed() is None  # handed out once per change
    reloaded = _client(table, s, cache=text)
    again = reloaded.acquire_app_token(table.get("sim-global").graph_scope())
    assert again.ok and again.source == "cache"
    assert reloaded.cache_text_if_changed() is None
    reloaded.remove_tokens_for_client()
    assert reloaded.cache_text_if_changed() is not None
    assert reloaded.acquire_app_token(table.get("sim-global").graph_scope()).source == (
        "identity_provider"
    )


def test_no_roles_claim_means_nothing_granted(sim, table, cert):
    s = customer_owned(sim, cert, grants=(), roles=())
    result = _client(table, s).acquire_app_token(table.get("sim-global").graph_scope())
    assert result.ok and "roles" not in result.claims
    assert result.roles == frozenset()


def test_client_secret(sim, table, cert):
    s = customer_owned(sim, cert)
    secret = sim.add_client_secret(s.tenant_id, s.client_id, expires_in_days=30)
    scope = table.get("sim-global").graph_scope()
    good = _client(table, s, SecretCredential(secret["secret"])).acquire_app_token(scope)
    assert good.ok and (good.claims.get("azpacr") == "1" or good.claims.get("appidacr") == "1")
    wrong = _client(table, s, SecretCredential(secret["key_id"])).acquire_app_token(scope)
    assert wrong.problem.code == 7000215 and "Value" in wrong.problem.fix
    sim.advance_clock(31 * 24 * 3600)
    expired = _client(table, s, SecretCredential(secret["secret"])).acquire_app_token(scope)
    assert expired.problem.code == 7000222


def test_wrong_scope_of_another_cloud(sim, table, cert):
    s = customer_owned(sim, cert)
    result = _client(table, s).acquire_app_token("https://graph.microsoft.us/.default")
    assert not result.ok and result.problem.category in ("our_configuration", "wrong_input")
    assert result.problem.raw.error_codes


def test_tenant_unknown_to_msal_is_a_value(sim, table, cert):
    s = customer_owned(sim, cert)
    s.tenant_id = str(uuid.uuid4())
    result = _client(table, s).acquire_app_token(table.get("sim-global").graph_scope())
    assert not result.ok and result.problem.category == "wrong_input"


@pytest.mark.parametrize(
    ("kind", "status"), [("drop", None), ("status", 500), ("status", 503), ("status", 429)]
)
def test_network_and_busy_are_transient(sim, table, cert, kind, status):
    s = customer_owned(sim, cert)
    client = _client(table, s)
    client.accounts()  # MSAL built (discovery done) before the fault
    sim.set_fault("token", kind, status=status, retry_after=2 if status == 429 else None)
    result = client.acquire_app_token(table.get("sim-global").graph_scope())
    assert not result.ok and result.problem.category == "transient"
    assert result.problem.retryable
    sim.clear_faults()


def test_damaged_cache_text_costs_only_a_token_request(sim, table, cert):
    s = customer_owned(sim, cert)
    client = _client(table, s, cache="{not json")
    assert client.acquire_app_token(table.get("sim-global").graph_scope()).ok


def test_token_result_shapes():
    assert TokenResult.from_msal(None).problem.category == "customer_action"
    failed = TokenResult.from_msal({"error": "invalid_client", "error_codes": [700027]})
    assert not failed.ok and failed.problem.code == 700027 and failed.roles is None
    assert decode_claims("not-a-jwt") == {} and decode_claims(None) == {}
