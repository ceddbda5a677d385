"""Admin consent (v1 and v2 endpoints): redirect parameters, provisioning, grants, errors."""

from urllib.parse import urlencode

import pytest

from entrasim.testing import follow_authorize
from entrasim.testing import unverified_claims as claims_of

REDIRECT = "https://portal.example/consent/done"
GRAPH = ["https://graph.microsoft.com/.default"]


@pytest.fixture
def product(sim, certs):
    """The product's multi-tenant app in its home tenant, with its API permissions configured."""
    home = sim.create_tenant(domains=["product.onmicrosoft.com"], display_name="Product")
    app = sim.create_app(
        home["id"], display_name="Identity automation", multi_tenant=True, redirect_uris=[REDIRECT]
    )
    sim.upload_certificate(home["id"], app["app_id"], certs["a"].cert_pem)
    sim.add_required_permission(app["app_id"], "User.ReadWrite.All")
    sim.add_required_permission(app["app_id"], "Group.ReadWrite.All")
    sim.add_required_permission(app["app_id"], "Exchange.ManageAsApp", resource="exchange")
    customer = sim.create_tenant(domains=["fabrikam.onmicrosoft.com"], display_name="Fabrikam")
    sim.create_user(customer["id"], "admin@fabrikam.onmicrosoft.com")
    return app, customer


def url(sim_server, tenant, app, v2=True, **extra):
    params = {"client_id": app["app_id"], "redirect_uri": REDIRECT, "state": "xyz"} | extra
    path = "v2.0/adminconsent" if v2 else "adminconsent"
    return f"{sim_server.base_url()}/{tenant}/{path}?{urlencode(params)}"


def test_v2_consent_provisions_sp_and_grants(sim, sim_server, http, product, msal_app, certs):
    app, customer = product
    client = msal_app(customer["id"], app["app_id"], certs["a"].credential())
    assert client.acquire_token_for_client(GRAPH)["error_codes"] == [700016]
    sim.set_interaction("consent")
    target, params = follow_authorize(
        http, url(sim_server, "fabrikam.onmicrosoft.com", app, scope=GRAPH[0])
    )
    assert target == REDIRECT
    assert params["admin_consent"] == "True" and params["tenant"] == customer["id"]
    assert params["state"] == "xyz"
    assert sorted(params["scope"].split()) == [
        "https://graph.microsoft.com/Group.ReadWrite.All",
        "https://graph.microsoft.com/User.ReadWrite.All",
    ]
    client = msal_app(customer["id"], app["app_id"], certs["a"].credential())
    token = client.acquire_token_for_client(GRAPH)
    assert claims_of(token["access_token"])["roles"] == [
        "Group.ReadWrite.All",
        "User.ReadWrite.All",
    ]
    # Only Graph's /.default was consented: Exchange is not granted yet.
    exo = client.acquire_token_for_client(["https://outlook.office365.com/.default"])
    assert "roles" not in claims_of(exo["access_token"])


def test_v1_consent_grants_every_configured_permission(
    sim, sim_server, http, product, msal_app, certs
):
    app, customer = product
    sim.set_interaction("consent")
    target, params = follow_authorize(http, url(sim_server, customer["id"], app, v2=False))
    assert params == {"admin_consent": "True", "tenant": customer["id"], "state": "xyz"}
    client = msal_app(customer["id"], app["app_id"], certs["a"].credential())
    exo = client.acquire_token_for_client(["https://outlook.office365.com/.default"])
    assert claims_of(exo["access_token"])["roles"] == ["Exchange.ManageAsApp"]


def test_consent_respects_replication_delay(sim, sim_server, http, product, msal_app, certs):
    app, customer = product
    sim.set_replication_delay(20)
    sim.set_interaction("consent")
    follow_authorize(http, url(sim_server, customer["id"], app, scope=GRAPH[0]))
    client = msal_app(customer["id"], app["app_id"], certs["a"].credential())
    assert "roles" not in claims_of(client.acquire_token_for_client(GRAPH)["access_token"])
    sim.advance_clock(21)
    client = msal_app(customer["id"], app["app_id"], certs["a"].credential())
    assert "roles" in claims_of(client.acquire_token_for_client(GRAPH)["access_token"])


def test_decline_v1_and_v2(sim, sim_server, http, product):
    app, customer = product
    sim.set_interaction("decline")
    _t, v1 = follow_authorize(http, url(sim_server, customer["id"], app, v2=False))
    assert v1 == {
        "error": "permission_denied",
        "error_description": "The admin canceled the request",
        "state": "xyz",
    }
    _t, v2 = follow_authorize(http, url(sim_server, customer["id"], app, scope=GRAPH[0]))
    assert v2["admin_consent"] == "True" and v2["error"] == "consent_required"
    assert v2["error_description"].startswith("AADSTS65004:") and v2["state"] == "xyz"


def test_v2_requires_scope_and_registered_redirect(sim, sim_server, http, product):
    app, customer = product
    sim.set_interaction("consent")
    _t, params = follow_authorize(http, url(sim_server, customer["id"], app))
    assert params["error"] == "invalid_request"
    bad = url(sim_server, customer["id"], app, scope=GRAPH[0]).replace(
        "portal.example", "evil.example"
    )
    with http.get(bad, allow_redirects=False) as resp:
        assert resp.status_code == 400 and "AADSTS50011" in resp.text


def test_non_admin_gets_90094(sim, sim_server, http, product):
    app, customer = product
    sim.create_user(customer["id"], "bob@fabrikam.onmicrosoft.com", admin=False)
    sim.set_interaction("consent", user="bob@fabrikam.onmicrosoft.com")
    _t, params = follow_authorize(http, url(sim_server, customer["id"], app, scope=GRAPH[0]))
    assert params["error_description"].startswith("AADSTS90094:")


def test_consent_page_for_a_person(sim, sim_server, http, product):
    """Mode "page": a server-rendered form with a CSRF token, usable without JavaScript."""
    import re

    app, customer = product
    sim.set_interaction("page")
    with http.get(url(sim_server, customer["id"], app, scope=GRAPH[0])) as resp:
        assert resp.status_code == 200
        page = resp.text
    assert "User.ReadWrite.All" in page and "admin@fabrikam.onmicrosoft.com" in page
    action = re.search(r'<form method="post" action="([^"]+)"', page).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    with http.post(
        sim_server.base_url() + action, data={"csrf_token": "forged", "decision": "accept"}
    ) as resp:
        assert resp.status_code == 400
    with http.post(
        sim_server.base_url() + action,
        allow_redirects=False,
        data={"csrf_token": csrf, "decision": "accept", "upn": "admin@fabrikam.onmicrosoft.com"},
    ) as resp:
        assert resp.status_code == 302
        assert resp.headers["Location"].startswith(REDIRECT + "?admin_consent=True")
