"""Security baseline: headers on every route, framing, cookies, CSRF and the Origin check."""

import pytest

from portal import create_app
from portal.config import ConfigError
from tests.conftest import csrf_token, login_as

BASELINE = [
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "style-src 'self'",
]


def every_route(app, connection_id):
    """(method, url) for every rule of the URL map, with placeholder values filled in."""
    values = {"connection_id": connection_id, "filename": "app.css"}
    for rule in app.url_map.iter_rules():
        args = {name: values.get(name, "x") for name in rule.arguments}
        url = rule.build(args, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, url


def assert_baseline(response, label):
    csp = response.headers.get("Content-Security-Policy", "")
    for part in BASELINE:
        assert part in csp, (label, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, label
    assert "frame-ancestors" in csp, label
    assert response.headers["X-Content-Type-Options"] == "nosniff", label
    assert response.headers["Referrer-Policy"] in {
        "no-referrer",
        "strict-origin-when-cross-origin",
    }, label
    assert response.headers.get("X-Request-ID"), label
    if not label[0] == "static":
        assert response.headers["Cache-Control"] == "no-store", label


@pytest.mark.parametrize("who", ["anonymous", "admin", "support"])
def test_security_headers_on_every_route(
    app, client, client_a, support_client, org_a, make_connection, who
):
    browser = {"anonymous": client, "admin": client_a, "support": support_client}[who]
    connection = make_connection(org_a)
    seen = set()
    for endpoint, method, url in every_route(app, connection.id):
        response = browser.open(url, method=method)
        label = (endpoint, method, url, response.status_code)
        assert_baseline(response, label)
        csp = response.headers["Content-Security-Policy"]
        # No FRAME_ANCESTORS configured: nothing may frame anything.
        assert "frame-ancestors 'none'" in csp, label
        assert response.headers["X-Frame-Options"] == "DENY", label
        response.close()
        seen.add(endpoint)
    assert {
        "auth.login",
        "home.index",
        "home.healthz",
        "connection.page",
        "support.dashboard",
        "static",
    } <= seen


def test_error_pages_carry_the_baseline(client_a):
    response = client_a.get("/no/such/page")
    assert response.status_code == 404
    assert_baseline(response, ("404",))
    assert response.headers["X-Frame-Options"] == "DENY"


FRAMERS = ["https://host.example", "https://app.host.example:8443"]


@pytest.fixture
def framed_app(app_config):
    app_config["FRAME_ANCESTORS"] = " ".join(FRAMERS)
    return create_app(app_config)


def test_embeddable_views_name_exact_framers_and_drop_xfo(framed_app, make_connection):
    from tests.conftest import FAST_HASH

    with framed_app.app_context():
        from werkzeug.security import generate_password_hash

        from portal import storage

        org = storage.create_organization("A")
        storage.create_user(
            "a@example.com", "admin", generate_password_hash("pw-123456", FAST_HASH), org.id
        )
        connection = storage.create_connection(org.id, "customer_owned")
    client = framed_app.test_client()
    evil = {
        "Origin": "https://evil.example",
        "Referer": "https://evil.example/",
        "X-Forwarded-Host": "evil.example",
    }
    response = client.get("/login?host=https://evil.example", headers=evil)
    csp = response.headers["Content-Security-Policy"]
    assert f"frame-ancestors {' '.join(FRAMERS)}" in csp
    assert csp.count("frame-ancestors") == 1 and "evil" not in csp
    assert "X-Frame-Options" not in response.headers
    assert login_as(client, "a@example.com", "pw-123456").status_code == 302
    for url in ["/", f"/connections/{connection.id}", "/connections/"]:
        response = client.get(url, headers=evil)
        assert response.status_code == 200, url
        assert f"frame-ancestors {' '.join(FRAMERS)}" in response.headers["Content-Security-Policy"]
        assert "X-Frame-Options" not in response.headers
    # Not embeddable: JSON health check and every error.
    for url in ["/healthz", "/connections/ffffffffffffffffffffffffffffffff"]:
        response = client.get(url, headers=evil)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], url
        assert response.headers["X-Frame-Options"] == "DENY", url


def test_framed_portal_uses_partitioned_samesite_none_cookies(framed_app):
    response = framed_app.test_client().get("/login")
    cookie = response.headers["Set-Cookie"]
    for attribute in ["HttpOnly", "Secure", "SameSite=None", "Partitioned"]:
        assert attribute in cookie


def test_default_cookie_is_lax_httponly(client):
    cookie = client.get("/login").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Partitioned" not in cookie


def test_cookie_is_secure_except_plain_http_on_loopback_in_development(app):
    plain_localhost = app.test_client().get("/login").headers["Set-Cookie"]
    assert "Secure" not in plain_localhost
    https = app.test_client().get("/login", base_url="https://portal.example")
    assert "Secure" in https.headers["Set-Cookie"]
    other_host = app.test_client().get("/login", base_url="http://portal.example")
    assert "Secure" in other_host.headers["Set-Cookie"]
    app.config["ENV"] = "production"
    assert "Secure" in app.test_client().get("/login").headers["Set-Cookie"]


def test_hsts_only_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    hsts = client.get("/login", base_url="https://localhost").headers["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts


@pytest.mark.parametrize(
    "bad",
    [
        "https://evil.example/path",
        "*.host.example",
        "https://*",
        "host.example",
        "javascript:alert(1)",
        "'self'",
        "https://host.example/",
    ],
)
def test_frame_ancestors_must_be_exact_origins(app_config, bad):
    app_config["FRAME_ANCESTORS"] = [bad]
    with pytest.raises(ConfigError):
        create_app(app_config)


def test_form_action_hook(app_config):
    app_config["CSP_FORM_ACTION_EXTRA"] = ["https://login.microsoftonline.com"]
    app = create_app(app_config)
    csp = app.test_client().get("/login").headers["Content-Security-Policy"]
    form_action = next(d for d in csp.split("; ") if d.startswith("form-action"))
    # The configured extra origin, once, and every cloud's login host (authorize redirects).
    assert form_action.split() == [
        "form-action",
        "'self'",
        "https://login.microsoftonline.com",
        "https://login.microsoftonline.us",
        "https://login.partner.microsoftonline.cn",
    ]


def test_post_without_csrf_token_is_refused(client, admin_a):
    response = client.post("/login", data={"email": admin_a.email, "password": "x"})
    assert response.status_code == 400
    assert b"This form has expired" in response.data
    assert client.get("/").status_code == 302


def test_htmx_post_with_header_token_passes_csrf(client_a):
    token = csrf_token(client_a, "/")
    response = client_a.post("/logout", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status_code == 302


def test_htmx_post_without_token_gets_an_alert_fragment(client_a):
    response = client_a.post("/logout", headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#alerts"
    assert b"<html" not in response.data and b"alert" in response.data


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://localhost.evil.example"},
    ],
)
def test_cross_site_post_is_refused_even_with_a_valid_token(client_a, headers):
    token = csrf_token(client_a, "/")
    response = client_a.post("/logout", data={"csrf_token": token}, headers=headers)
    assert response.status_code == 400
    assert client_a.get("/").status_code == 200


def test_same_origin_post_passes(client_a):
    token = csrf_token(client_a, "/")
    response = client_a.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 302


def test_csrf_failure_is_logged(client, caplog):
    with caplog.at_level("WARNING", logger="portal"):
        client.post("/login", data={"email": "a@example.com", "password": "x"})
    assert any("CSRF check failed" in r.getMessage() for r in caplog.records)


def test_signed_in_session_cookie_is_reissued_at_most_every_few_minutes(client_a, monkeypatch):
    """Sliding idle expiry without re-signing the cookie on every request."""
    from portal import security

    client_a.get("/connections/")  # the first page after sign-in mints the new CSRF token
    assert "Set-Cookie" not in client_a.get("/connections/").headers
    later = security.time.time() + security.SESSION_REFRESH_SECONDS + 1
    monkeypatch.setattr(security.time, "time", lambda: later)
    refreshed = client_a.get("/connections/")
    assert "session=" in refreshed.headers["Set-Cookie"]
    assert "Expires=" in refreshed.headers["Set-Cookie"]  # a new 8-hour window from now
    assert "Set-Cookie" not in client_a.get("/connections/").headers


def test_anonymous_session_cookie_only_when_it_changes(client):
    client.get("/login")  # stores a CSRF token: a change, so a cookie
    assert "Set-Cookie" not in client.get("/login").headers
