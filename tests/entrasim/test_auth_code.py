"""Authorization code + PKCE with real MSAL (query and form_post), refresh, revocation, errors."""

import warnings
from urllib.parse import parse_qs, urlsplit

import pytest

from entrasim.testing import assert_aadsts, follow_authorize
from entrasim.testing import unverified_claims as claims_of

REDIRECT = "https://portal.example/oauth/callback"
UPN = "admin@contoso.onmicrosoft.com"


@pytest.fixture
def web_app(sim, certs):
    t = sim.create_tenant(domains=["contoso.onmicrosoft.com"], display_name="Contoso")
    sim.create_user(t["id"], UPN, display_name="Ada Admin")
    app = sim.create_app(
        t["id"], display_name="Portal", multi_tenant=True, redirect_uris=[REDIRECT]
    )
    sim.upload_certificate(t["id"], app["app_id"], certs["a"].cert_pem)
    return t, app


def sign_in(sim, http, client, scopes=("User.Read",), mode="form_post", user=UPN, **kw):
    sim.set_interaction("consent", user=user)
    flow = client.initiate_auth_code_flow(
        list(scopes), redirect_uri=REDIRECT, response_mode=mode, **kw
    )
    target, params = follow_authorize(http, flow["auth_uri"])
    assert target == REDIRECT
    return flow, params


def test_form_post_flow(sim, sim_server, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    flow, params = sign_in(sim, http, client)
    assert set(params) >= {"code", "state", "session_state"}
    result = client.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result
    at = claims_of(result["access_token"])
    assert at["aud"] == "https://graph.microsoft.com" and at["scp"] == "User.Read"
    assert at["tid"] == t["id"] and at["azp"] == app["app_id"] and "roles" not in at
    idt = result["id_token_claims"]
    assert idt["aud"] == app["app_id"]
    assert idt["iss"] == f"{sim_server.base_url()}/{t['id']}/v2.0"
    sent_nonce = parse_qs(urlsplit(flow["auth_uri"]).query)["nonce"][0]
    assert idt["nonce"] == sent_nonce  # echoed as sent (MSAL sends a hash of its own nonce)
    assert idt["preferred_username"] == UPN
    assert result["refresh_token"]
    (account,) = client.get_accounts()
    assert account["home_account_id"] == f"{at['oid']}.{t['id']}"  # from client_info


def test_query_mode_flow(sim, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "response_mode='form_post' is recommended", UserWarning)
        flow, params = sign_in(sim, http, client, mode="query")
    result = client.acquire_token_by_auth_code_flow(flow, params)
    assert claims_of(result["access_token"])["scp"] == "User.Read"


def test_code_is_single_use_and_pkce_checked(sim, sim_server, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    flow, params = sign_in(sim, http, client)
    wrong = dict(flow, code_verifier="x" * 43)
    assert_aadsts(client.acquire_token_by_auth_code_flow(wrong, params), "invalid_grant", 501481)
    # The failed attempt used the code up.
    again = client.acquire_token_by_auth_code_flow(flow, params)
    assert_aadsts(again, "invalid_grant", 54005)


def test_redirect_uri_must_match_exactly(sim, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    flow = client.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT + "/", response_mode="form_post"
    )
    with http.get(flow["auth_uri"], allow_redirects=False) as resp:
        assert resp.status_code == 400
        assert "AADSTS50011" in resp.text


def test_refresh_rotates_and_revocation_is_50173(sim, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    flow, params = sign_in(sim, http, client)
    first = client.acquire_token_by_auth_code_flow(flow, params)
    refreshed = client.acquire_token_by_refresh_token(first["refresh_token"], ["User.Read"])
    assert refreshed["refresh_token"] != first["refresh_token"]
    assert claims_of(refreshed["access_token"])["scp"] == "User.Read"
    sim.revoke_refresh_tokens(t["id"], UPN)
    revoked = client.acquire_token_by_refresh_token(refreshed["refresh_token"], ["User.Read"])
    assert_aadsts(revoked, "invalid_grant", 50173)


def test_refresh_inactive_90_days_is_700082(sim, http, web_app, msal_app):
    t, app = web_app
    # A secret, not a certificate: an assertion signed on the real clock would be outside the
    # moved clock's window (AADSTS700024) before the refresh token is even looked at.
    secret = sim.add_client_secret(t["id"], app["app_id"], expires_in_days=365)["secret"]
    client = msal_app(t["id"], app["app_id"], secret)
    flow, params = sign_in(sim, http, client)
    rt = client.acquire_token_by_auth_code_flow(flow, params)["refresh_token"]
    sim.advance_clock(89 * 86400)
    rt = client.acquire_token_by_refresh_token(rt, ["User.Read"])["refresh_token"]
    sim.advance_clock(89 * 86400)  # used 89 days ago: still fine
    rt = client.acquire_token_by_refresh_token(rt, ["User.Read"])["refresh_token"]
    sim.advance_clock(91 * 86400)
    result = client.acquire_token_by_refresh_token(rt, ["User.Read"])
    assert_aadsts(result, "invalid_grant", 700082)


def test_silent_refresh_through_msal_cache(sim, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    flow, params = sign_in(sim, http, client)
    client.acquire_token_by_auth_code_flow(flow, params)
    (account,) = client.get_accounts()
    result = client.acquire_token_silent_with_error(["User.Read"], account, force_refresh=True)
    assert "access_token" in result, result


def test_nonce_is_echoed_and_tamper(sim, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    sim.tamper_next_id_token(aud="someone-else", bad_signature=True)
    flow, params = sign_in(sim, http, client)
    result = client.acquire_token_by_auth_code_flow(flow, params)
    assert result["id_token_claims"]["aud"] == "someone-else"
    # Only the next id token is tampered.
    flow, params = sign_in(sim, http, client)
    assert (
        client.acquire_token_by_auth_code_flow(flow, params)["id_token_claims"]["aud"]
        == app["app_id"]
    )


@pytest.mark.parametrize(
    "mode, error, code",
    [
        ("decline", "access_denied", 65004),
        ("admin_approval_required", "consent_required", 90094),
        ("other_tenant_user", "invalid_request", 50020),
    ],
)
def test_interaction_error_modes(sim, http, web_app, msal_app, certs, mode, error, code):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    sim.set_interaction(mode)
    flow = client.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, response_mode="form_post"
    )
    _target, params = follow_authorize(http, flow["auth_uri"])
    assert params["error"] == error
    assert params["error_description"].startswith(f"AADSTS{code}:")
    assert params["state"] == flow["state"]
    result = client.acquire_token_by_auth_code_flow(flow, params)
    assert result["error"] == error


def test_user_of_another_tenant_is_50020(sim, http, web_app, msal_app, certs):
    t, app = web_app
    other = sim.create_tenant(domains=["fabrikam.onmicrosoft.com"])
    sim.create_user(other["id"], "eve@fabrikam.onmicrosoft.com")
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    flow, params = sign_in(sim, http, client, user="eve@fabrikam.onmicrosoft.com")
    assert params["error_description"].startswith("AADSTS50020:")


def test_non_admin_cannot_consent_to_admin_scope(sim, http, web_app, msal_app, certs):
    t, app = web_app
    sim.create_user(t["id"], "bob@contoso.onmicrosoft.com", admin=False)
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    flow, params = sign_in(
        sim, http, client, scopes=["User.ReadWrite.All"], user="bob@contoso.onmicrosoft.com"
    )
    assert params["error_description"].startswith("AADSTS90094:")
    flow, params = sign_in(sim, http, client, scopes=["User.ReadWrite.All"])  # the admin
    result = client.acquire_token_by_auth_code_flow(flow, params)
    assert claims_of(result["access_token"])["scp"] == "User.ReadWrite.All"


def test_delegated_token_reads_me_and_organization(sim, sim_server, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    flow, params = sign_in(sim, http, client)
    token = client.acquire_token_by_auth_code_flow(flow, params)["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    with http.get(f"{sim_server.base_url()}/v1.0/me", headers=auth) as resp:
        assert resp.status_code == 200 and resp.json()["userPrincipalName"] == UPN
    with http.get(f"{sim_server.base_url()}/v1.0/organization", headers=auth) as resp:
        assert resp.json()["value"][0]["displayName"] == "Contoso"
    with http.get(f"{sim_server.base_url()}/v1.0/users", headers=auth) as resp:
        assert resp.status_code == 403


def test_pkce_is_required(sim, sim_server, http, web_app):
    t, app = web_app
    sim.set_interaction("consent", user=UPN)
    url = (
        f"{sim_server.base_url()}/{t['id']}/oauth2/v2.0/authorize?client_id={app['app_id']}"
        f"&response_type=code&redirect_uri={REDIRECT}&scope=openid&state=s1"
    )
    _target, params = follow_authorize(http, url)
    assert params["error"] == "invalid_request" and params["state"] == "s1"


def test_customer_tenant_user_signs_in_to_multi_tenant_app(
    sim, sim_server, http, web_app, msal_app, certs
):
    _home, app = web_app
    customer = sim.create_tenant(domains=["fabrikam.onmicrosoft.com"], display_name="Fabrikam")
    sim.create_user(customer["id"], "it@fabrikam.onmicrosoft.com")
    client = msal_app("organizations", app["app_id"], certs["a"].credential())
    flow, params = sign_in(sim, http, client, user="it@fabrikam.onmicrosoft.com")
    result = client.acquire_token_by_auth_code_flow(flow, params)
    assert result["id_token_claims"]["tid"] == customer["id"]


def test_form_post_page_needs_no_inline_script(sim, sim_server, http, web_app, msal_app, certs):
    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    sim.set_interaction("consent", user=UPN)
    flow = client.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, response_mode="form_post"
    )
    with http.get(flow["auth_uri"], allow_redirects=False) as resp:
        csp = resp.headers["Content-Security-Policy"]
        assert csp == "default-src 'self'; frame-ancestors 'none'"
        page = resp.text
    assert '<script src="/_sim/static/autosubmit.js" defer></script>' in page
    assert "<script>" not in page and 'type="submit"' in page
    with http.get(sim_server.base_url() + "/_sim/static/autosubmit.js") as resp:
        assert resp.status_code == 200 and "submit()" in resp.text


def test_sign_in_page_for_a_person(sim, sim_server, http, web_app, msal_app, certs):
    """Mode "page": the person picks an account and accepts; the result is form-posted back."""
    import re

    t, app = web_app
    client = msal_app(t["id"], app["app_id"], certs["a"].credential())
    sim.set_interaction("page")
    flow = client.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, response_mode="form_post"
    )
    with http.get(flow["auth_uri"]) as resp:
        page = resp.text
    assert "Sign in and consent" in page and "User.Read" in page and UPN in page
    action = re.search(r'<form method="post" action="([^"]+)"', page).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    with http.post(
        sim_server.base_url() + action, data={"csrf_token": csrf, "decision": "accept", "upn": UPN}
    ) as resp:
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', resp.text))
    result = client.acquire_token_by_auth_code_flow(flow, fields)
    assert result["id_token_claims"]["preferred_username"] == UPN
    # The pending request is single use.
    with http.post(
        sim_server.base_url() + action, data={"csrf_token": csrf, "decision": "accept", "upn": UPN}
    ) as resp:
        assert resp.status_code == 400
