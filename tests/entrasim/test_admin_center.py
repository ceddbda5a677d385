"""The HTML admin center: what a person does in demo mode, with CSRF-protected forms."""

import re

import pytest

from entrasim.testing import unverified_claims as claims_of

GRAPH = ["https://graph.microsoft.com/.default"]
EXO = ["https://outlook.office365.com/.default"]


class Browser:
    """A minimal no-JavaScript browser: GET pages, submit forms with their CSRF token."""

    def __init__(self, http, base):
        self.http, self.base = http, base
        self.page = ""

    def get(self, path):
        with self.http.get(self.base + path) as resp:
            assert resp.status_code == 200, resp.text
            self.page = resp.text
        return self.page

    def csrf(self):
        return re.search(r'name="csrf_token" value="([^"]+)"', self.page).group(1)

    def post(self, action, data=None, files=None, expect=200):
        with self.http.post(
            self.base + action, data={"csrf_token": self.csrf(), **(data or {})}, files=files
        ) as resp:
            assert resp.status_code == expect, resp.text[:300]
            self.page = resp.text
        return self.page


@pytest.fixture
def admin_browser(sim_server, http):
    return Browser(http, sim_server.base_url())


def test_customer_setup_through_the_admin_center(sim, admin_browser, msal_app, certs):
    t = sim.create_tenant(domains=["contoso.onmicrosoft.com"], display_name="Contoso")
    page = admin_browser.get("/_sim/admin")
    assert "Contoso" in page
    page = admin_browser.get(f"/_sim/admin/tenants/{t['id']}")
    page = admin_browser.post(
        f"/_sim/admin/tenants/{t['id']}/apps", {"display_name": "Identity automation"}
    )
    assert "App registration created." in page
    app_id = re.search(r'<code id="client-id">([^<]+)</code>', page).group(1)
    app_path = f"/_sim/admin/tenants/{t['id']}/apps/{app_id}"
    page = admin_browser.post(
        app_path + "/certificates",
        {"description": "from the portal"},
        files={"certificate": ("portal.cer", certs["a"].der)},
    )
    assert "Certificate uploaded." in page and certs["a"].sha1 in page
    for perm in (
        "graph:Role:User.ReadWrite.All",
        "graph:Role:Group.ReadWrite.All",
        "exchange:Role:Exchange.ManageAsApp",
    ):
        admin_browser.post(app_path + "/permissions", {"permission": perm})
    page = admin_browser.post(app_path + "/consent")
    assert "Admin consent granted." in page
    page = admin_browser.post(app_path + "/roles", {"role": "29232cdf-9323-42fd-ade2-1d097af3e4de"})
    assert "Exchange Administrator" in page

    client = msal_app(t["id"], app_id, certs["a"].credential())
    graph = claims_of(client.acquire_token_for_client(GRAPH)["access_token"])
    assert graph["roles"] == ["Group.ReadWrite.All", "User.ReadWrite.All"]
    exo = claims_of(client.acquire_token_for_client(EXO)["access_token"])
    assert exo["roles"] == ["Exchange.ManageAsApp"]
    assert exo["wids"] == ["29232cdf-9323-42fd-ade2-1d097af3e4de"]


def test_wrong_file_type_is_refused(sim, admin_browser, certs):
    t = sim.create_tenant(display_name="Contoso")
    app = sim.create_app(t["id"])
    path = f"/_sim/admin/tenants/{t['id']}/apps/{app['app_id']}"
    admin_browser.get(path)
    page = admin_browser.post(
        path + "/certificates", files={"certificate": ("key.pfx", b"not a certificate")}
    )
    assert "must be one of the following file types: .cer, .pem, .crt" in page
    page = admin_browser.post(
        path + "/certificates",
        files={"certificate": ("bad.pem", b"-----BEGIN CERTIFICATE-----\nxx")},
    )
    assert "not a certificate" in page


def test_forms_need_the_csrf_token(sim, sim_server, http, admin_browser):
    admin_browser.get("/_sim/admin")
    with http.post(
        sim_server.base_url() + "/_sim/admin/tenants",
        data={"display_name": "Evil", "csrf_token": "guess"},
    ) as resp:
        assert resp.status_code == 400
    with http.post(
        sim_server.base_url() + "/_sim/admin/tenants",
        data={"display_name": "Evil", "csrf_token": admin_browser.csrf()},
        headers={"Origin": "https://evil.example"},
    ) as resp:
        assert resp.status_code == 403
    assert sim.state()["tenants"] == []
    page = admin_browser.post("/_sim/admin/tenants", {"display_name": "Fabrikam", "cloud": "china"})
    assert "Tenant created." in page and "Fabrikam" in page


def test_pages_carry_a_strict_csp(sim, sim_server, http):
    with http.get(sim_server.base_url() + "/_sim/admin") as resp:
        assert "script-src 'none'" in resp.headers["Content-Security-Policy"]
        cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_admin_json_api_refuses_form_posts(sim, sim_server, http):
    with http.post(sim_server.base_url() + "/_sim/api/reset", data={"x": "1"}) as resp:
        assert resp.status_code == 415


def test_enterprise_app_in_customer_tenant(sim, admin_browser):
    home = sim.create_tenant(display_name="Product")
    app = sim.create_app(home["id"], display_name="Identity automation", multi_tenant=True)
    # Granted in the home tenant: also added to the registration's API permissions.
    sim.grant_app_role(home["id"], app["app_id"], "User.ReadWrite.All")
    customer = sim.create_tenant(display_name="Fabrikam")
    path = f"/_sim/admin/tenants/{customer['id']}/apps/{app['app_id']}"
    page = admin_browser.get(path)
    assert "not in this tenant yet" in page
    page = admin_browser.post(path + "/consent")
    assert "Granted for Fabrikam" in page and "User.ReadWrite.All" in page
    page = admin_browser.get(f"/_sim/admin/tenants/{customer['id']}")
    assert "Enterprise applications from other organizations" in page
    assert "Identity automation" in page
