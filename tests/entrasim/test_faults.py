"""Faults on demand, replication delay, the clock and the request log."""

import time

import msal
import pytest
import requests

from entrasim.testing import unverified_claims as claims_of

GRAPH = ["https://graph.microsoft.com/.default"]


def discovery_url(sim_server, tenant):
    return f"{sim_server.base_url()}/{tenant}/v2.0/.well-known/openid-configuration"


def test_status_429_with_retry_after_then_recovers(sim, sim_server, http, tenant_app):
    t, _app = tenant_app
    sim.set_fault("openid-configuration", "status", times=1, status=429, retry_after=7)
    with http.get(discovery_url(sim_server, t["id"])) as resp:
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "7"
        assert resp.json()["error_codes"] == [90033]
    with http.get(discovery_url(sim_server, t["id"])) as resp:
        assert resp.status_code == 200


@pytest.mark.parametrize("status", [503, 504])
def test_status_5xx_on_graph_until_cleared(
    sim, sim_server, http, tenant_app, msal_app, certs, status
):
    t, app = tenant_app
    sim.grant_app_role(t["id"], app["app_id"], "Organization.Read.All")
    token = msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(
        GRAPH
    )["access_token"]
    sim.set_fault("graph.organization", "status", status=status)
    for _ in range(2):
        with http.get(
            f"{sim_server.base_url()}/v1.0/organization",
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status_code == status
            assert "code" in resp.json()["error"]
    sim.clear_faults()
    with http.get(
        f"{sim_server.base_url()}/v1.0/organization", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status_code == 200


def test_token_endpoint_503_reaches_msal(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())  # discovery happens here
    sim.set_fault("token", "status", times=1, status=503, retry_after=1)
    with pytest.raises(msal.exceptions.MsalServiceError):  # MSAL raises on a 5xx token response
        client.acquire_token_for_client(GRAPH)
    assert sim.requests("token")[-1]["status"] == 503
    # MSAL replays a 5xx from its own throttling cache for a while; a new client asks again.
    again = msal_app(t["id"], app["app_id"], certs["a"].credential())
    assert "access_token" in again.acquire_token_for_client(GRAPH)


def test_latency(sim, sim_server, http, tenant_app):
    t, _app = tenant_app
    sim.set_fault("*", "latency", times=1, ms=300)
    start = time.monotonic()
    with http.get(discovery_url(sim_server, t["id"])) as resp:
        assert resp.status_code == 200
    assert time.monotonic() - start >= 0.3


def test_hang_past_client_timeout_does_not_block_others(sim, sim_server, http, tenant_app):
    t, _app = tenant_app
    sim.set_fault("openid-configuration", "hang", times=1, seconds=5)
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(discovery_url(sim_server, t["id"]), timeout=0.5)
    with http.get(f"{sim_server.base_url()}/{t['id']}/discovery/v2.0/keys", timeout=2) as resp:
        assert resp.status_code == 200
    assert time.monotonic() - start < 2
    sim.clear_faults()  # releases the hanging request at once


def test_drop_closes_connection_without_response(sim, sim_server, http, tenant_app):
    t, _app = tenant_app
    sim.set_fault("openid-configuration", "drop", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(discovery_url(sim_server, t["id"]), timeout=5)
    with http.get(discovery_url(sim_server, t["id"]), timeout=5) as resp:
        assert resp.status_code == 200
    log = sim.requests("openid-configuration")
    assert [e["status"] for e in log] == [None, 200]


def test_bad_fault_is_rejected(sim):
    from entrasim.testing import SimAdminError

    with pytest.raises(SimAdminError) as err:
        sim.set_fault("nope", "status", status=500)
    assert err.value.status == 400


def test_request_log(sim, sim_server, http, tenant_app, msal_app, certs):
    t, app = tenant_app
    msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(GRAPH)
    log = sim.requests()
    assert [e["endpoint"] for e in log] == ["openid-configuration", "token"]
    token = sim.requests("token")[0]
    assert token["method"] == "POST" and token["status"] == 200 and token["cloud"] == "global"
    assert token["path"] == f"/{t['id']}/oauth2/v2.0/token"
    assert isinstance(token["at"], float)


def test_replication_delay_for_tokens_and_graph(sim, sim_server, http, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.grant_app_role(t["id"], app["app_id"], "Application.Read.All")
    sim.set_replication_delay(30)
    sim.grant_app_role(t["id"], app["app_id"], "User.ReadWrite.All")

    def roles_and_listing():
        client = msal_app(t["id"], app["app_id"], certs["a"].credential())
        token = client.acquire_token_for_client(GRAPH)["access_token"]
        with http.get(
            f"{sim_server.base_url()}/v1.0/servicePrincipals/{app['sp_id']}/appRoleAssignments",
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            listed = {a["appRoleId"] for a in resp.json()["value"]}
        return claims_of(token).get("roles"), listed

    roles, listed = roles_and_listing()
    assert roles == ["Application.Read.All"]
    assert "741f803b-c850-494e-b5df-cde7c675a1ca" not in listed
    sim.advance_clock(31)
    roles, listed = roles_and_listing()
    assert roles == ["Application.Read.All", "User.ReadWrite.All"]
    assert "741f803b-c850-494e-b5df-cde7c675a1ca" in listed
    # Revocations replicate too.
    sim.revoke_app_role(t["id"], app["app_id"], "User.ReadWrite.All")
    assert roles_and_listing()[0] == ["Application.Read.All", "User.ReadWrite.All"]
    sim.advance_clock(31)
    assert roles_and_listing()[0] == ["Application.Read.All"]


def test_reset_clears_everything(sim, sim_server, tenant_app):
    sim.set_fault("*", "latency", ms=1)
    sim.advance_clock(100)
    sim.reset()
    state = sim.state()
    assert state["tenants"] == [] and state["clock_offset"] == 0
    assert sim.requests() == []


def test_state_round_trip(sim, tenant_app, msal_app, certs):
    t, app = tenant_app
    sim.grant_app_role(t["id"], app["app_id"], "User.ReadWrite.All")
    saved = sim.state()
    sim.reset()
    sim.load_state(saved)
    result = msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(
        GRAPH
    )
    assert claims_of(result["access_token"])["roles"] == ["User.ReadWrite.All"]
