"""Client credentials with real MSAL: both certificate forms, secrets, and each AADSTS case."""

import base64
import hashlib
import time
import uuid

import jwt
import pytest

from entrasim.testing import assert_aadsts
from entrasim.testing import unverified_claims as claims_of

GRAPH = ["https://graph.microsoft.com/.default"]
EXO = ["https://outlook.office365.com/.default"]


@pytest.mark.parametrize("form", ["sha1", "sha256"])
def test_certificate_both_signing_forms(sim, sim_server, tenant_app, msal_app, certs, form):
    t, app = tenant_app
    sim.grant_app_role(t["id"], app["app_id"], "User.ReadWrite.All")
    sim.grant_app_role(t["id"], app["app_id"], "Group.ReadWrite.All")
    result = msal_app(
        "contoso.onmicrosoft.com", app["app_id"], certs["a"].credential(form)
    ).acquire_token_for_client(GRAPH)
    assert result["token_type"] == "Bearer", result
    c = claims_of(result["access_token"])
    assert c["aud"] == "https://graph.microsoft.com"
    assert c["iss"] == f"{sim_server.base_url()}/{t['id']}/v2.0"
    assert c["tid"] == t["id"]
    assert c["oid"] == app["sp_id"] == c["sub"]
    assert c["azp"] == c["appid"] == app["app_id"]
    assert c["azpacr"] == "2" and c["ver"] == "2.0"
    assert c["roles"] == ["Group.ReadWrite.All", "User.ReadWrite.All"]
    assert c["nbf"] <= c["iat"] < c["exp"]
    assert "scp" not in c


def test_roles_absent_when_nothing_granted_and_only_that_resource(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.grant_app_role(t["id"], app["app_id"], "Exchange.ManageAsApp", resource="exchange")
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    graph = claims_of(client.acquire_token_for_client(GRAPH)["access_token"])
    assert "roles" not in graph
    exo = claims_of(client.acquire_token_for_client(EXO)["access_token"])
    assert exo["aud"] == "https://outlook.office365.com"
    assert exo["roles"] == ["Exchange.ManageAsApp"]


def test_directory_roles_appear_as_wids(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.assign_directory_role(t["id"], app["app_id"], "29232cdf-9323-42fd-ade2-1d097af3e4de")
    token = msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(EXO)
    assert claims_of(token["access_token"])["wids"] == ["29232cdf-9323-42fd-ade2-1d097af3e4de"]


def test_unregistered_certificate_is_700027(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    result = msal_app(t["id"], app["app_id"], certs["b"].credential()).acquire_token_for_client(
        GRAPH
    )
    assert_aadsts(result, "invalid_client", 700027)
    assert (
        "The certificate with identifier used to sign the client assertion is not registered "
        "on application." in result["error_description"]
    )
    assert f"Thumbprint of key used by client: '{certs['b'].sha1}'" in result["error_description"]


def test_removed_certificate_stops_working(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.remove_certificate(t["id"], app["app_id"], certs["a"].sha1)
    result = msal_app(
        t["id"], app["app_id"], certs["a"].credential("sha256")
    ).acquire_token_for_client(GRAPH)
    assert result["error_codes"] == [700027]


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # MSAL signing
def test_rsa_1024_is_rejected(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.upload_certificate(t["id"], app["app_id"], certs["weak"].der)  # DER upload works too
    result = msal_app(t["id"], app["app_id"], certs["weak"].credential()).acquire_token_for_client(
        GRAPH
    )
    assert_aadsts(result, "invalid_client", 700027)
    assert (
        "RSA key size 1024 is less than the minimum required 2048 bits"
        in result["error_description"]
    )


def test_assertion_outside_time_window_is_700024(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.advance_clock(3600)
    result = msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(
        GRAPH
    )
    assert_aadsts(result, "invalid_client", 700024)
    assert "Client assertion is not within its valid time range." in result["error_description"]


def test_app_not_in_tenant_is_700016(sim, tenant_app, msal_app, certs):
    _t, app = tenant_app
    other = sim.create_tenant(domains=["fabrikam.onmicrosoft.com"])
    result = msal_app(other["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(
        GRAPH
    )
    assert_aadsts(result, "unauthorized_client", 700016)
    assert (
        f"Application with identifier '{app['app_id']}' was not found in the directory"
        in result["error_description"]
    )


def test_disabled_service_principal_is_7000112(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.set_service_principal_enabled(t["id"], app["app_id"], False)
    result = msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(
        GRAPH
    )
    assert_aadsts(result, "unauthorized_client", 7000112)


def test_client_secret_right_wrong_and_expired(sim, tenant_app, msal_app):
    t, app = tenant_app
    secret = sim.add_client_secret(t["id"], app["app_id"], expires_in_days=30)
    ok = msal_app(t["id"], app["app_id"], secret["secret"]).acquire_token_for_client(GRAPH)
    assert claims_of(ok["access_token"])["azpacr"] == "1"
    wrong = msal_app(t["id"], app["app_id"], secret["key_id"]).acquire_token_for_client(GRAPH)
    assert_aadsts(wrong, "invalid_client", 7000215)
    sim.advance_clock(31 * 86400)
    expired = msal_app(t["id"], app["app_id"], secret["secret"]).acquire_token_for_client(GRAPH)
    assert_aadsts(expired, "invalid_client", 7000222)


@pytest.mark.parametrize(
    "scope, code",
    [
        ("User.Read.All", 1002012),
        ("https://graph.microsoft.com/User.Read.All", 1002012),
        ("https://graph.microsoft.us/.default", 1002012),
        ("https://api.example.com/.default", 500011),
    ],
)
def test_scope_rules(sim, tenant_app, msal_app, certs, scope, code):
    t, app = tenant_app
    result = msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(
        [scope]
    )
    assert_aadsts(result, "invalid_scope" if code == 1002012 else "invalid_resource", code)


def test_gov_tenant_gets_its_own_cloud_resource(sim, sim_server, msal_app, certs):
    t = sim.create_tenant(cloud="usgov-l4", domains=["agency.onmicrosoft.us"])
    app = sim.create_app(t["id"])
    sim.upload_certificate(t["id"], app["app_id"], certs["a"].cert_pem)
    sim.grant_app_role(t["id"], app["app_id"], "Directory.Read.All")
    client = msal_app(t["id"], app["app_id"], certs["a"].credential(), cloud="usgov-l4")
    token = client.acquire_token_for_client(["https://graph.microsoft.us/.default"])
    c = claims_of(token["access_token"])
    assert c["aud"] == "https://graph.microsoft.us"
    assert c["iss"] == f"{sim_server.base_url('usgov-l4')}/{t['id']}/v2.0"
    assert c["roles"] == ["Directory.Read.All"]
    wrong = client.acquire_token_for_client(GRAPH)
    assert wrong["error_codes"] == [1002012]


def test_assertion_audience_must_be_this_token_endpoint(sim, sim_server, http, tenant_app, certs):
    t, app = tenant_app
    endpoint = f"{sim_server.base_url()}/{t['id']}/oauth2/v2.0/token"
    x5t_s256 = base64.urlsafe_b64encode(hashlib.sha256(certs["a"].der).digest()).decode()

    def post(aud):
        now = time.time()
        assertion = jwt.encode(
            {
                "aud": aud,
                "iss": app["app_id"],
                "sub": app["app_id"],
                "jti": str(uuid.uuid4()),
                "iat": now,
                "exp": now + 600,
            },
            certs["a"].key,
            algorithm="PS256",
            headers={"x5t#S256": x5t_s256},
        )
        data = {
            "grant_type": "client_credentials",
            "client_id": app["app_id"],
            "scope": GRAPH[0],
            "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        }
        with http.post(endpoint, data=data) as resp:
            return resp.status_code, resp.json()

    assert post(endpoint)[0] == 200
    assert post(endpoint.replace(t["id"], "contoso.onmicrosoft.com"))[0] == 200
    status, body = post("https://login.microsoftonline.com/common/oauth2/v2.0/token")
    assert status == 401
    assert_aadsts(body, "invalid_client", 50012)
