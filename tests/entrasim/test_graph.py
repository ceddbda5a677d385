"""Graph v1.0 reads: shapes, permission checks (403 Authorization_RequestDenied), paging."""

import pytest

GRAPH = ["https://graph.microsoft.com/.default"]
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"


@pytest.fixture
def graph_get(sim_server, http, tenant_app, msal_app, certs):
    """GET a Graph path with a fresh app-only token of the tenant_app."""
    t, app = tenant_app

    def get(path, cloud="global", **params):
        client = msal_app(t["id"], app["app_id"], certs["a"].credential())
        token = client.acquire_token_for_client(GRAPH)["access_token"]
        with http.get(
            f"{sim_server.base_url(cloud)}/v1.0{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            return resp.status_code, resp.json()

    return get


def assert_denied(status, body):
    assert status == 403
    assert body["error"]["code"] == "Authorization_RequestDenied"
    assert body["error"]["message"] == "Insufficient privileges to complete the operation."
    assert {"date", "request-id", "client-request-id"} <= set(body["error"]["innerError"])


def test_own_service_principal_needs_no_permission(sim, tenant_app, graph_get):
    t, app = tenant_app
    status, body = graph_get(f"/servicePrincipals(appId='{app['app_id']}')")
    assert status == 200
    assert body["id"] == app["sp_id"] and body["appId"] == app["app_id"]
    assert body["keyCredentials"][0]["type"] == "AsymmetricX509Cert"
    status, body = graph_get("/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')")
    assert_denied(status, body)


def test_graph_sp_lists_real_role_ids(sim, tenant_app, graph_get):
    t, app = tenant_app
    sim.grant_app_role(t["id"], app["app_id"], "Application.Read.All")
    status, body = graph_get(
        "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')",
        **{"$select": "id,appId,appRoles"},
    )
    assert status == 200
    roles = {r["value"]: r["id"] for r in body["appRoles"]}
    assert roles["User.ReadWrite.All"] == "741f803b-c850-494e-b5df-cde7c675a1ca"
    assert "displayName" not in body


def test_app_role_assignments_denied_then_allowed(sim, tenant_app, graph_get):
    t, app = tenant_app
    sim.grant_app_role(t["id"], app["app_id"], "User.ReadWrite.All")
    sim.grant_app_role(t["id"], app["app_id"], "Exchange.ManageAsApp", resource="exchange")
    assert_denied(*graph_get(f"/servicePrincipals/{app['sp_id']}/appRoleAssignments"))
    sim.grant_app_role(t["id"], app["app_id"], "Application.Read.All")
    status, body = graph_get(f"/servicePrincipals/{app['sp_id']}/appRoleAssignments")
    assert status == 200
    by_role = {a["appRoleId"]: a for a in body["value"]}
    assert (
        by_role["741f803b-c850-494e-b5df-cde7c675a1ca"]["resourceDisplayName"] == "Microsoft Graph"
    )
    assert (
        by_role["dc50a0fb-09a3-484d-be87-e023b12c6440"]["resourceDisplayName"]
        == "Office 365 Exchange Online"
    )
    assert all(a["principalId"] == app["sp_id"] for a in body["value"])


def test_role_assignments_filter(sim, tenant_app, graph_get):
    t, app = tenant_app
    sim.assign_directory_role(t["id"], app["app_id"], USER_ADMIN)
    sim.assign_directory_role(t["id"], app["app_id"], EXCHANGE_ADMIN)
    path = "/roleManagement/directory/roleAssignments"
    flt = {"$filter": f"principalId eq '{app['sp_id']}'"}
    assert_denied(*graph_get(path, **flt))
    sim.grant_app_role(t["id"], app["app_id"], "RoleManagement.Read.Directory")
    status, body = graph_get(path, **flt)
    assert status == 200
    assert sorted(r["roleDefinitionId"] for r in body["value"]) == sorted(
        [USER_ADMIN, EXCHANGE_ADMIN]
    )
    assert {r["directoryScopeId"] for r in body["value"]} == {"/"}
    sim.remove_directory_role(t["id"], app["app_id"], USER_ADMIN)
    assert [r["roleDefinitionId"] for r in graph_get(path, **flt)[1]["value"]] == [EXCHANGE_ADMIN]


def test_organization(sim, tenant_app, graph_get):
    t, app = tenant_app
    assert_denied(*graph_get("/organization"))
    sim.grant_app_role(t["id"], app["app_id"], "Directory.ReadWrite.All")
    status, body = graph_get("/organization")
    assert status == 200
    (org,) = body["value"]
    assert org["id"] == t["id"] and org["displayName"] == "Contoso"
    assert org["verifiedDomains"][0] == {
        "capabilities": "Email, OfficeCommunicationsOnlineService",
        "isDefault": True,
        "isInitial": True,
        "name": "contoso.onmicrosoft.com",
        "type": "Managed",
    }


def test_users_paging(sim, sim_server, http, tenant_app, msal_app, certs):
    t, app = tenant_app
    for i in range(5):
        sim.create_user(t["id"], f"user{i}@contoso.onmicrosoft.com", admin=False)
    sim.grant_app_role(t["id"], app["app_id"], "User.Read.All")
    token = msal_app(t["id"], app["app_id"], certs["a"].credential()).acquire_token_for_client(
        GRAPH
    )["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    url, seen, pages = f"{sim_server.base_url()}/v1.0/users?$top=2", [], 0
    while url:
        with http.get(url, headers=auth) as resp:
            assert resp.status_code == 200
            body = resp.json()
        assert len(body["value"]) <= 2
        seen += [u["userPrincipalName"] for u in body["value"]]
        url, pages = body.get("@odata.nextLink"), pages + 1
    assert seen == [f"user{i}@contoso.onmicrosoft.com" for i in range(5)]
    assert pages == 3
    with http.get(f"{sim_server.base_url()}/v1.0/users?$top=1000", headers=auth) as resp:
        assert resp.status_code == 400


def test_me_is_delegated_only(sim, tenant_app, graph_get):
    status, body = graph_get("/me")
    assert status == 400
    assert (
        body["error"]["message"] == "/me request is only valid with delegated authentication flow."
    )


def test_token_checks(sim, sim_server, http, tenant_app, msal_app, certs):
    t, app = tenant_app
    base = sim_server.base_url()
    with http.get(f"{base}/v1.0/organization") as resp:
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    exo = client.acquire_token_for_client(["https://outlook.office365.com/.default"])
    with http.get(
        f"{base}/v1.0/organization", headers={"Authorization": f"Bearer {exo['access_token']}"}
    ) as resp:
        assert resp.status_code == 401
        assert "Invalid audience" in resp.json()["error"]["message"]
    graph = client.acquire_token_for_client(GRAPH)["access_token"]
    # Graph of another cloud does not accept a global token.
    with http.get(
        f"{sim_server.base_url('usgov-l4')}/v1.0/organization",
        headers={"Authorization": f"Bearer {graph}"},
    ) as resp:
        assert resp.status_code == 401
    sim.advance_clock(2 * 3600)
    with http.get(
        f"{base}/v1.0/organization", headers={"Authorization": f"Bearer {graph}"}
    ) as resp:
        assert resp.status_code == 401
        assert "expired" in resp.json()["error"]["message"]
