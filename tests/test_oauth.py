"""Link Account: the delegated flow against the simulator with the real msal.

The Flask test client plays the portal's browser; ``follow_authorize`` plays the browser at the
simulator's authorize endpoint (interaction mode "consent" or an error mode) and returns what
Microsoft would post back. Token-endpoint calls are counted in the simulator's request log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from entrasim.testing import follow_authorize
from portal import ratelimit, storage
from portal.connections import lifecycle
from portal.entra.certificates import issue_certificate
from portal.storage import db

PUBLIC_URL = "https://portal.example.test"
REDIRECT_URI = PUBLIC_URL + "/oauth/callback"
ADMIN_UPN = "ada@contoso.onmicrosoft.com"
FLOW_COOKIE = "__Host-portal_oauth_flow"
#: An extra scope the simulator knows (its catalog has no Mail.Send: a simulator gap).
EXTRA = "User.EnableDisableAccount.All"
PRODUCT = {"User.ReadWrite.All", "Group.ReadWrite.All", "Directory.AccessAsUser.All"}


@pytest.fixture(scope="module")
def sp_cert():
    return issue_certificate("HR automation", "sp-app", key_size=2048)


@pytest.fixture
def provider(sim, sp_cert, tmp_path):
    """Our multi-tenant app in its home tenant, and a customer tenant with an admin."""
    home = sim.create_tenant(cloud="global", domains=["provider.onmicrosoft.com"])
    app = sim.create_app(
        home["id"], display_name="HR automation", multi_tenant=True, redirect_uris=[REDIRECT_URI]
    )
    sim.upload_certificate(home["id"], app["app_id"], sp_cert.cert_pem)
    customer = sim.create_tenant(
        cloud="global", domains=["contoso.onmicrosoft.com"], display_name="Contoso Ltd"
    )
    user = sim.create_user(customer["id"], ADMIN_UPN, display_name="Ada Admin")
    pem = tmp_path / "sp.pem"
    pem.write_bytes(sp_cert.private_key_pem + sp_cert.cert_pem)
    return {"home": home, "app": app, "customer": customer, "user": user, "pem": str(pem)}


@pytest.fixture
def app_config(app_config, sim_server, provider, tmp_path):
    app_config.update(
        {
            "CLOUDS_FILE": sim_server.clouds_file(str(tmp_path / "clouds.json")),
            "PUBLIC_URL": PUBLIC_URL,
            "SP_CLIENT_ID": provider["app"]["app_id"],
            "SP_CERT_FILE": provider["pem"],
            "SP_CLOUDS": ["sim-global"],
        }
    )
    return app_config


@pytest.fixture
def sp_connection(make_connection, org_a):
    return make_connection(
        org_a, "service_provider", "Contoso via HR automation", cloud="sim-global"
    )


def csrf(client, path="/"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)


def start(client, connection, headers=None):
    """POST Link Account; returns the 303 response (Location = authorize URL)."""
    token = csrf(client)
    return client.post(
        f"/connections/{connection.id}/link", data={"csrf_token": token}, headers=headers or {}
    )


def token_calls(sim):
    return len(sim.requests(endpoint="token"))


def auth_params(response):
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def run_flow(
    client,
    sim,
    sim_session,
    connection,
    *,
    mode="form_post",
    interaction="consent",
    user=ADMIN_UPN,
    follow=True,
):
    """Link Account through the simulator; returns the callback's answer (a success at top
    level is a 303 to the link page, which ``follow`` loads like the browser would)."""
    response = start(client, connection)
    location = response.headers["Location"]
    if mode == "query":
        location = location.replace("response_mode=form_post", "response_mode=query")
    sim.set_interaction(interaction, user=user)
    target, fields = follow_authorize(sim_session, location)
    assert target == REDIRECT_URI
    if mode == "query":
        response = client.get("/oauth/callback", query_string=fields)
    else:
        # A cross-site POST: the browser does not send the (SameSite=Lax) session cookie.
        session = client.get_cookie("session")
        client.delete_cookie("session")
        response = client.post(
            "/oauth/callback",
            data=fields,
            headers={"Sec-Fetch-Site": "cross-site", "Origin": "null"},
        )
        if session is not None:
            client.set_cookie("session", session.value)
    if follow and response.status_code == 303:
        assert response.headers["Location"] == f"/connections/{connection.id}/link?linked=1"
        return client.get(response.headers["Location"])
    return response


def reload(app, connection_id):
    with app.app_context():
        return storage.get_connection(connection_id)


def stored_cache(app, connection_id):
    with app.app_context():
        return storage.get_secret("connections", connection_id, "token_cache")


# --- the full flow ----------------------------------------------------------------------------


def test_an_answer_in_another_response_mode_is_refused(
    app, client_a, sim, sim_session, sp_connection
):
    """The flow asked for form_post: the same answer in a query string (a code left in the
    history, or one replayed from it) is not Microsoft's answer to it."""
    response = run_flow(client_a, sim, sim_session, sp_connection, mode="query", follow=False)
    assert response.status_code == 400
    assert token_calls(sim) == 0
    assert reload(app, sp_connection.id).state != "connected"
    assert stored_cache(app, sp_connection.id) is None


@pytest.mark.parametrize("mode", ["form_post"])
def test_full_flow_links_the_connection(
    app, client_a, sim, sim_session, sp_connection, provider, mode
):
    response = run_flow(client_a, sim, sim_session, sp_connection, mode=mode, follow=False)
    # Top level: straight on to a clean URL (no code in the history, no resubmission).
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == f"/connections/{sp_connection.id}/link?linked=1"
    if mode == "form_post":  # nothing may write a session the browser did not send
        assert not any(c.startswith("session=") for c in response.headers.getlist("Set-Cookie"))
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert any(
        c.startswith(f"{FLOW_COOKIE}=;")  # the flow cookie is cleared
        for c in response.headers.getlist("Set-Cookie")
    )
    page = client_a.get(response.headers["Location"]).get_data(as_text=True)
    assert "Connected." in page and "Ada Admin" in page
    linked = reload(app, sp_connection.id)
    assert linked.state == "connected" and linked.health == "healthy"
    assert linked.tenant_id == provider["customer"]["id"]
    assert linked.consented_by_oid == provider["user"]["id"]
    assert linked.consented_by_name == "Ada Admin"
    assert set(linked.granted_scopes) == PRODUCT
    assert linked.consented_at
    cache = json.loads(stored_cache(app, sp_connection.id))
    assert cache["RefreshToken"] and cache["IdToken"]
    with app.app_context():
        events = storage.list_health_events(sp_connection.id)
        audit = storage.list_audit_events(
            connection_id=sp_connection.id, action="connection.linked"
        )
    assert events[0].outcome == "linked" and events[0].health == "healthy"
    assert audit and audit[0].detail["consented_by_oid"] == provider["user"]["id"]
    assert token_calls(sim) == 1


def test_stored_identity_is_tid_and_oid_never_the_upn(
    app, client_a, sim, sim_session, sp_connection
):
    run_flow(client_a, sim, sim_session, sp_connection)
    with app.app_context():
        row = (
            db.get_db()
            .execute("SELECT * FROM connections WHERE id = ?", [sp_connection.id])
            .fetchone()
        )
    assert ADMIN_UPN not in json.dumps(row)


def test_authorize_request_shape(app, client_a, sp_connection, provider, sim_server):
    params = auth_params(start(client_a, sp_connection))
    response = start(client_a, sp_connection)
    location = response.headers["Location"]
    authorize = sim_server.base_url("global") + "/organizations/oauth2/v2.0/authorize?"
    assert location.startswith(authorize)
    assert params["response_type"] == "code"
    assert params["response_mode"] == "form_post"
    # Single sign-on at Microsoft cannot finish a consent unseen.
    assert params["prompt"] == "select_account"
    assert params["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["code_challenge"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", params["state"])
    assert params["nonce"]
    assert params["client_id"] == provider["app"]["app_id"]
    assert params["redirect_uri"] == REDIRECT_URI
    assert set(params["scope"].split()) == PRODUCT | {"openid", "profile", "offline_access"}
    # The state is opaque: exactly 256 random bits (secrets.token_urlsafe(32)), no app data.
    assert len(base64.urlsafe_b64decode(params["state"] + "=")) == 32


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
        {"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    ],
)
def test_redirect_uri_is_the_configured_constant(client_a, sp_connection, headers):
    token = csrf(client_a)
    if "Host" in headers:  # the browser sends its cookies to the host it talks to
        client_a.set_cookie("session", client_a.get_cookie("session").value, domain=headers["Host"])
    from flask import request, request_started

    seen = {}

    def record_host(sender, **extra):
        if sender is client_a.application:  # (the simulator runs in this process too)
            seen["host"] = request.host

    request_started.connect(record_host)
    try:
        response = client_a.post(
            f"/connections/{sp_connection.id}/link", data={"csrf_token": token}, headers=headers
        )
    finally:
        request_started.disconnect(record_host)
    assert seen["host"] == headers.get("Host", "localhost")  # the header did reach the app
    assert auth_params(response)["redirect_uri"] == REDIRECT_URI


def test_flow_cookie_attributes(client_a, sp_connection):
    response = start(client_a, sp_connection)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(FLOW_COOKIE))
    attrs = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "max-age", "path"} <= attrs
    assert "SameSite=None" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert "Max-Age=600" in cookie


def test_flow_is_stored_encrypted_and_bound_to_the_cookie(app, client_a, sp_connection):
    response = start(client_a, sp_connection)
    state = auth_params(response)["state"]
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(FLOW_COOKIE))
    value = cookie.split(";")[0].split("=", 1)[1]
    with app.app_context():
        row = db.get_db().execute("SELECT * FROM auth_flows WHERE state = ?", [state]).fetchone()
        blob = (
            db.get_db()
            .execute(
                "SELECT ciphertext FROM vault_blobs WHERE owner_table='auth_flows' AND owner_id=?",
                [state],
            )
            .fetchone()
        )
    assert row is not None and blob is not None
    columns = [d[1] for d in db_columns(app, "auth_flows")]
    record = dict(zip(columns, row, strict=True))
    assert record["browser_binding"] == hashlib.sha256(value.encode()).hexdigest()
    assert record["expires_at"] - record["created_at"] == 600
    assert b"code_verifier" not in blob[0]


def db_columns(app, table):
    with app.app_context():
        return db.get_db().execute(f"PRAGMA table_info({table})").fetchall()


def test_thousand_flows_have_distinct_states_verifiers_and_nonces(app, client_a, sp_connection):
    ratelimit.limiter_of(app).enabled = False  # this test starts 1,000 flows on purpose
    states, challenges, nonces, cookies = set(), set(), set(), set()
    token = csrf(client_a)
    for _ in range(1000):
        response = client_a.post(
            f"/connections/{sp_connection.id}/link", data={"csrf_token": token}
        )
        params = auth_params(response)
        states.add(params["state"])
        challenges.add(params["code_challenge"])
        nonces.add(params["nonce"])
        cookies.add(
            next(
                c for c in response.headers.getlist("Set-Cookie") if c.startswith(FLOW_COOKIE)
            ).split(";")[0]
        )
    assert len(states) == len(challenges) == len(nonces) == len(cookies) == 1000


def test_msal_generates_pkce_with_secrets():
    import inspect

    from msal.oauth2cli import oauth2

    source = inspect.getsource(oauth2._generate_pkce_code_verifier)
    assert "secrets" in source and "random.sample" not in source


# --- state: missing, wrong, replayed, foreign browser, expired --------------------------------


def consented_fields(client, sim, sim_session, connection):
    response = start(client, connection)
    sim.set_interaction("consent", user=ADMIN_UPN)
    _target, fields = follow_authorize(sim_session, response.headers["Location"])
    return fields


def assert_rejected(response, sim, app, connection_id, calls_before=0):
    assert response.status_code == 400
    assert "can't be completed" in response.get_data(as_text=True)
    assert token_calls(sim) == calls_before
    assert stored_cache(app, connection_id) is None


def test_missing_state_is_rejected(app, client_a, sim, sim_session, sp_connection):
    fields = consented_fields(client_a, sim, sim_session, sp_connection)
    fields.pop("state")
    assert_rejected(client_a.post("/oauth/callback", data=fields), sim, app, sp_connection.id)


def test_wrong_state_is_rejected(app, client_a, sim, sim_session, sp_connection):
    fields = consented_fields(client_a, sim, sim_session, sp_connection)
    fields["state"] = fields["state"][:-2] + ("AA" if not fields["state"].endswith("AA") else "BB")
    assert_rejected(client_a.post("/oauth/callback", data=fields), sim, app, sp_connection.id)


def test_replayed_state_is_rejected(app, client_a, sim, sim_session, sp_connection):
    fields = consented_fields(client_a, sim, sim_session, sp_connection)
    first = client_a.post("/oauth/callback", data=fields)
    assert first.status_code == 303
    # The browser keeps the cookie value it had (the first answer cleared it): replay both.
    again = client_a.post("/oauth/callback", data=fields)
    assert again.status_code == 400
    assert token_calls(sim) == 1


def test_replay_with_the_original_cookie_is_rejected(
    app, client_a, sim, sim_session, sp_connection
):
    response = start(client_a, sp_connection)
    cookie = (
        next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(FLOW_COOKIE))
        .split(";")[0]
        .split("=", 1)[1]
    )
    sim.set_interaction("consent", user=ADMIN_UPN)
    _t, fields = follow_authorize(sim_session, response.headers["Location"])
    assert client_a.post("/oauth/callback", data=fields).status_code == 303
    client_a.set_cookie(FLOW_COOKIE, cookie)
    assert client_a.post("/oauth/callback", data=fields).status_code == 400
    assert token_calls(sim) == 1


def test_foreign_browser_is_rejected(app, client_a, sim, sim_session, sp_connection):
    fields = consented_fields(client_a, sim, sim_session, sp_connection)
    other = app.test_client()  # another browser: no flow cookie
    assert_rejected(other.post("/oauth/callback", data=fields), sim, app, sp_connection.id)
    other.set_cookie(FLOW_COOKIE, "x" * 43)  # another browser's (or a forged) cookie
    assert_rejected(other.post("/oauth/callback", data=fields), sim, app, sp_connection.id)
    # The flow was not burnt by the foreign attempts: the right browser still completes.
    assert client_a.post("/oauth/callback", data=fields).status_code == 303


def test_expired_state_is_rejected(app, client_a, sim, sim_session, sp_connection):
    fields = consented_fields(client_a, sim, sim_session, sp_connection)
    with app.app_context():
        db.get_db().execute(
            "UPDATE auth_flows SET created_at = created_at - 601, expires_at = expires_at - 601"
        )
    assert_rejected(client_a.post("/oauth/callback", data=fields), sim, app, sp_connection.id)


def test_get_callback_without_anything(client, sim):
    response = client.get("/oauth/callback")
    assert response.status_code == 400
    assert token_calls(sim) == 0


# --- id token validation by the portal ----------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        {"aud": "00000000-0000-0000-0000-000000000001"},
        {"iss": "https://evil.example/00000000-0000-0000-0000-000000000001/v2.0"},
        {"tid": "00000000-0000-0000-0000-000000000001"},
        {"nonce": "0" * 64},
        {"exp": 1000000000},
        {"bad_signature": True},
    ],
    ids=["aud", "iss", "tid", "nonce", "expired", "signature"],
)
def test_bad_id_token_stores_nothing(app, client_a, sim, sim_session, sp_connection, tamper):
    response = start(client_a, sp_connection)
    sim.set_interaction("consent", user=ADMIN_UPN)
    _target, fields = follow_authorize(sim_session, response.headers["Location"])
    sim.tamper_next_id_token(**tamper)
    result = client_a.post("/oauth/callback", data=fields)
    assert result.status_code in (200, 400)
    assert "Connected" not in result.get_data(as_text=True)
    after = reload(app, sp_connection.id)
    assert after.consented_at is None and after.tenant_id is None
    assert after.state != "connected"
    assert stored_cache(app, sp_connection.id) is None
    with app.app_context():
        assert (
            storage.list_audit_events(connection_id=sp_connection.id, action="connection.linked")
            == []
        )
        failed = storage.list_audit_events(
            connection_id=sp_connection.id, action="connection.link_failed"
        )
    assert failed


def test_tenant_must_match_the_connections_tenant(
    app, client_a, sim, sim_session, make_connection, org_a
):
    other = sim.create_tenant(cloud="global", domains=["fabrikam.onmicrosoft.com"])
    connection = make_connection(
        org_a, "service_provider", "Pinned", cloud="sim-global", tenant_id=other["id"]
    )
    response = run_flow(client_a, sim, sim_session, connection)
    assert response.status_code == 400
    assert "another organization" in response.get_data(as_text=True)
    assert stored_cache(app, connection.id) is None


# --- errors Microsoft sends back ----------------------------------------------------------------


@pytest.mark.parametrize(
    "interaction, words",
    [
        ("decline", "Consent was declined"),
        ("other_tenant_user", "Account from another organization"),
        ("admin_approval_required", "An administrator must approve"),
    ],
)
def test_error_returns_are_explained(
    app, client_a, sim, sim_session, sp_connection, interaction, words
):
    response = run_flow(client_a, sim, sim_session, sp_connection, interaction=interaction)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert words in body
    assert not any(c.startswith("session=") for c in response.headers.getlist("Set-Cookie"))
    if interaction == "admin_approval_required":
        assert "Global Administrator" in body and "Admin consent requests" in body
    assert token_calls(sim) == 0
    assert reload(app, sp_connection.id).consented_at is None


def test_consent_required_is_explained(app, client_a, sim_session, sim, sp_connection):
    fields = consented_fields(client_a, sim, sim_session, sp_connection)
    fields = {
        "state": fields["state"],
        "error": "consent_required",
        "error_description": "AADSTS65001: The user or administrator has not consented.",
    }
    body = client_a.post("/oauth/callback", data=fields).get_data(as_text=True)
    assert "Consent is required" in body


def test_error_description_is_escaped(client_a, sim, sim_session, sp_connection):
    fields = consented_fields(client_a, sim, sim_session, sp_connection)
    fields = {
        "state": fields["state"],
        "error": "access_denied",
        "error_description": "<script>alert(1)</script>",
    }
    response = client_a.post("/oauth/callback", data=fields)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body


# --- incremental consent ------------------------------------------------------------------------


def test_incremental_consent_asks_for_what_is_missing(
    app, client_a, sim, sim_session, sp_connection
):
    assert run_flow(client_a, sim, sim_session, sp_connection).status_code == 200
    app.config["SP_EXTRA_SCOPES"] = [EXTRA]
    panel = client_a.get(f"/connections/{sp_connection.id}/link").get_data(as_text=True)
    assert "Consent needed for:" in panel and EXTRA in panel
    params = auth_params(start(client_a, sp_connection))
    assert set(params["scope"].split()) == {EXTRA, "openid", "profile", "offline_access"}
    response = run_flow(client_a, sim, sim_session, sp_connection)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Connected" in response.get_data(as_text=True), response.get_data(as_text=True)
    linked = reload(app, sp_connection.id)
    assert linked.id == sp_connection.id
    assert set(linked.granted_scopes) == PRODUCT | {EXTRA}
    assert linked.state == "connected"
    panel = client_a.get(f"/connections/{sp_connection.id}/link").get_data(as_text=True)
    assert "Consent needed for:" not in panel


def test_missing_scope_means_needs_attention(app, client_a, sim, sim_session, sp_connection):
    """A token without every required scope: connected but needs attention."""
    app.config["SP_EXTRA_SCOPES"] = [EXTRA]
    response = start(client_a, sp_connection)
    parts = urlsplit(response.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["scope"] = " ".join(s for s in query["scope"].split() if s != EXTRA)
    location = parts._replace(query=urlencode(query)).geturl()
    sim.set_interaction("consent", user=ADMIN_UPN)
    _t, fields = follow_authorize(sim_session, location)
    response = client_a.post("/oauth/callback", data=fields)
    body = client_a.get(response.headers["Location"]).get_data(as_text=True)
    assert "Consent needed for:" in body and EXTRA in body
    linked = reload(app, sp_connection.id)
    assert linked.state == "needs_attention" and linked.health == "degraded"


# --- operator configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, words",
    [
        ({"SP_CLIENT_ID": None}, "SP_CLIENT_ID"),
        ({"SP_CLIENT_ID": "HR automation"}, "is not an Application (client) ID"),
        ({"SP_CERT_FILE": None, "SP_CLIENT_SECRET": None}, "SP_CERT_FILE"),
        ({"SP_CERT_FILE": "/nonexistent.pem"}, "cannot be read"),
        ({"PUBLIC_URL": "not a url"}, "PUBLIC_URL"),
        ({"SP_CLOUDS": ["global"]}, "not registered in the cloud"),
    ],
)
def test_missing_settings_show_a_clear_page(
    app, client_a, support_client, sp_connection, sim, change, words
):
    app.config.update(change)
    response = start(client_a, sp_connection)
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "contact support" in body and words not in body
    operator = support_client.get(f"/connections/{sp_connection.id}/link").get_data(as_text=True)
    assert words in operator
    assert token_calls(sim) == 0


def test_client_secret_works_instead_of_a_certificate(
    app, client_a, sim, sim_session, sp_connection, provider
):
    secret = sim.add_client_secret(provider["home"]["id"], provider["app"]["app_id"])
    app.config.update({"SP_CERT_FILE": None, "SP_CLIENT_SECRET": secret["secret"]})
    assert run_flow(client_a, sim, sim_session, sp_connection).status_code == 200
    assert reload(app, sp_connection.id).state == "connected"


# --- access ----------------------------------------------------------------------------------


def test_link_needs_csrf_and_the_right_organization(
    app, client_a, client_b, support_client, sp_connection
):
    assert client_a.post(f"/connections/{sp_connection.id}/link").status_code == 400
    token = csrf(client_b)
    assert (
        client_b.post(
            f"/connections/{sp_connection.id}/link", data={"csrf_token": token}
        ).status_code
        == 404
    )
    token = csrf(support_client, "/support/")
    assert (
        support_client.post(
            f"/connections/{sp_connection.id}/link", data={"csrf_token": token}
        ).status_code
        == 403
    )


def test_customer_owned_connections_have_no_link(client_a, make_connection, org_a):
    connection = make_connection(org_a, "customer_owned", "Own app")
    assert client_a.get(f"/connections/{connection.id}/link").status_code == 404


def test_a_failed_write_stores_nothing(app, client_a, sim, sim_session, sp_connection, monkeypatch):
    """The save is one transaction: a failure at its last step leaves no token cache behind."""

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    fields = consented_fields(client_a, sim, sim_session, sp_connection)
    monkeypatch.setattr(storage, "audit_connection", broken)  # the last write of the transaction
    with pytest.raises(RuntimeError, match="disk full"):
        client_a.post("/oauth/callback", data=fields)
    monkeypatch.undo()
    assert token_calls(sim) == 1  # it did get that far
    after = reload(app, sp_connection.id)
    assert after.consented_at is None and after.tenant_id is None
    assert stored_cache(app, sp_connection.id) is None
    with app.app_context():
        assert storage.list_health_events(sp_connection.id) == []


def test_tokens_and_code_leak_nowhere(app, client_a, sim, sim_session, sp_connection, caplog):
    """Canary check (security.md item 21): after a link and a failed link, the tokens and the
    authorization code appear in no response, no log record and not in the raw database files."""
    import logging

    caplog.set_level(logging.DEBUG)
    response = start(client_a, sp_connection)
    sim.set_interaction("consent", user=ADMIN_UPN)
    _t, fields = follow_authorize(sim_session, response.headers["Location"])
    first = client_a.post("/oauth/callback", data=fields)
    bodies = [
        first.get_data(as_text=True),
        client_a.get(first.headers["Location"]).get_data(as_text=True),
    ]
    sim.set_interaction("decline")
    bodies.append(
        run_flow(client_a, sim, sim_session, sp_connection, interaction="decline").get_data(
            as_text=True
        )
    )
    for path in (
        f"/connections/{sp_connection.id}",
        f"/connections/{sp_connection.id}/link",
        f"/connections/{sp_connection.id}/link-status",
    ):
        bodies.append(client_a.get(path).get_data(as_text=True))
    cache = json.loads(stored_cache(app, sp_connection.id))
    canaries = [fields["code"]]
    for section in ("AccessToken", "RefreshToken", "IdToken"):
        canaries += [entry["secret"] for entry in cache[section].values()]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    raw = b""
    for suffix in ("", "-wal"):
        try:
            with open(app.config["DATABASE"] + suffix, "rb") as fh:
                raw += fh.read()
        except FileNotFoundError:
            pass
    for canary in canaries:
        piece = canary[-32:]
        assert all(piece not in body for body in bodies)
        assert piece not in logged
        assert piece.encode() not in raw


def test_relink_after_needs_reconnect_asks_for_everything(
    app, client_a, sim, sim_session, sp_connection
):
    assert run_flow(client_a, sim, sim_session, sp_connection).status_code == 200
    with app.app_context():
        lifecycle.needs_reconnect(sp_connection.id, "refresh token revoked")
    params = auth_params(start(client_a, sp_connection))
    assert set(params["scope"].split()) == PRODUCT | {"openid", "profile", "offline_access"}
    assert run_flow(client_a, sim, sim_session, sp_connection).status_code == 200
    linked = reload(app, sp_connection.id)
    assert linked.state == "connected" and linked.health == "healthy"
    assert linked.id == sp_connection.id


def test_redirect_uri_stays_constant_behind_a_trusted_proxy(app_config, admin_a, sp_connection):
    """Even when X-Forwarded-Host is trusted (ProxyFix) and changes request.host."""
    from portal import create_app
    from tests.conftest import login_as

    proxied = create_app({**app_config, "TRUSTED_PROXY_HOPS": 1})
    client = proxied.test_client()
    assert login_as(client, admin_a.email).status_code == 302
    token = csrf(client)
    response = client.post(
        f"/connections/{sp_connection.id}/link",
        data={"csrf_token": token},
        headers={
            "X-Forwarded-Host": "localhost",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.9",
        },
    )
    assert auth_params(response)["redirect_uri"] == REDIRECT_URI
    response = client.post(
        f"/connections/{sp_connection.id}/link",
        data={"csrf_token": token},
        headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    assert auth_params(response)["redirect_uri"] == REDIRECT_URI


def test_refused_certificate_is_our_problem(
    app, client_a, sim, sim_session, sp_connection, provider, sp_cert
):
    """Microsoft refuses our own app's credential: the customer is told it is on our side."""
    sim.remove_certificate(
        provider["home"]["id"], provider["app"]["app_id"], sp_cert.thumbprint_sha1
    )
    response = run_flow(client_a, sim, sim_session, sp_connection)
    body = response.get_data(as_text=True)
    assert "Our application was refused" in body and "on our side" in body
    assert stored_cache(app, sp_connection.id) is None
