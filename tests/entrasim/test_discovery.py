"""OpenID discovery and keys: per-tenant documents, cloud aliases, AADSTS bodies."""

import jwt
import pytest

from entrasim.testing import assert_aadsts


@pytest.mark.parametrize("ident", ["guid", "contoso.onmicrosoft.com", "CONTOSO.onmicrosoft.com"])
def test_discovery_by_guid_or_domain(sim, sim_server, http, ident):
    t = sim.create_tenant(domains=["contoso.onmicrosoft.com"], display_name="Contoso")
    ident = t["id"] if ident == "guid" else ident
    base = sim_server.base_url("global")
    with http.get(f"{base}/{ident}/v2.0/.well-known/openid-configuration") as resp:
        assert resp.status_code == 200
        doc = resp.json()
    assert doc["issuer"] == f"{base}/{t['id']}/v2.0"
    assert doc["token_endpoint"] == f"{base}/{t['id']}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{base}/{t['id']}/oauth2/v2.0/authorize"
    assert doc["tenant_region_scope"] == "NA"
    assert "tenant_region_sub_scope" not in doc
    assert doc["cloud_instance_name"] == "microsoftonline.com"


def test_us_gov_tenants_found_on_both_us_listeners(sim, sim_server, http):
    l4 = sim.create_tenant(cloud="usgov-l4", domains=["agency.onmicrosoft.us"])
    l5 = sim.create_tenant(cloud="usgov-l5", domains=["dod.onmicrosoft.us"])
    for listener in ("usgov-l4", "usgov-l5"):
        base = sim_server.base_url(listener)
        for t, sub in ((l4, "DODCON"), (l5, "DOD")):
            with http.get(f"{base}/{t['id']}/v2.0/.well-known/openid-configuration") as resp:
                doc = resp.json()
            assert doc["tenant_region_scope"] == "USGov"
            assert doc["tenant_region_sub_scope"] == sub
    # ... but not on the global or China login host.
    for listener in ("global", "china"):
        with http.get(
            f"{sim_server.base_url(listener)}/{l4['id']}/v2.0/.well-known/openid-configuration"
        ) as resp:
            assert resp.status_code == 400
            assert_aadsts(resp.json(), "invalid_tenant", 90002)


def test_unknown_tenant_is_90002(sim, sim_server, http):
    with http.get(
        f"{sim_server.base_url()}/nobody.onmicrosoft.com/v2.0/.well-known/openid-configuration"
    ) as resp:
        assert resp.status_code == 400
        body = resp.json()
    assert_aadsts(body, "invalid_tenant", 90002)
    assert "Tenant 'nobody.onmicrosoft.com' not found" in body["error_description"]


def test_malformed_tenant_is_900023(sim, sim_server, http):
    with http.get(
        f"{sim_server.base_url()}/not_a_tenant!/v2.0/.well-known/openid-configuration"
    ) as resp:
        assert resp.status_code == 400
        assert_aadsts(resp.json(), "invalid_request", 900023)


def test_keys_publish_the_signing_key(sim, sim_server, http, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.grant_app_role(t["id"], app["app_id"], "User.ReadWrite.All")
    result = msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(
        ["https://graph.microsoft.com/.default"]
    )
    base = sim_server.base_url()
    with http.get(f"{base}/{t['id']}/discovery/v2.0/keys") as resp:
        jwks = resp.json()
    kid = jwt.get_unverified_header(result["access_token"])["kid"]
    (key,) = [k for k in jwks["keys"] if k["kid"] == kid]
    public = jwt.PyJWK(key).key
    claims = jwt.decode(
        result["access_token"],
        public,
        algorithms=["RS256"],
        audience="https://graph.microsoft.com",
        issuer=f"{base}/{t['id']}/v2.0",
    )
    assert claims["roles"] == ["User.ReadWrite.All"]


def test_clouds_file(sim_server, tmp_path):
    import json
    from pathlib import Path

    path = sim_server.clouds_file(tmp_path / "clouds.json")
    rows = json.loads(Path(path).read_text())
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == {"sim-global", "sim-usgov-l4", "sim-usgov-l5", "sim-china"}
    l5 = by_key["sim-usgov-l5"]
    assert l5["login_base"] == sim_server.base_url("usgov-l5") == l5["graph_base"]
    assert l5["graph_resource"] == "https://dod-graph.microsoft.us"
    assert l5["exchange_resource"] == "https://outlook-dod.office365.us"
    assert l5["tenant_region_sub_scope"] == "DOD" and l5["ca_bundle"] == sim_server.ca_path
    assert by_key["sim-global"]["tenant_region_sub_scope"] is None
