"""Two-step sign-in through the real routes: enrolment, TOTP, recovery codes, the org switch."""

import re

import pyotp
import pytest

from portal import create_app, mfa, storage
from tests.conftest import (
    TEST_PASSWORD,
    csrf_token,
    login_as,
    pass_second_factor,
    totp_code,
)

CODE_RE = re.compile(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>")


def _post_code(client, path, code):
    return client.post(path, data={"code": code, "csrf_token": csrf_token(client, path)})


def _pending_secret(app, user) -> str:
    with app.app_context():
        return storage.get_pending_totp_secret(user.id)


def _enrol_at_sign_in(client, app, user) -> list[str]:
    """Password, then the enrolment the portal demands; returns the recovery codes shown."""
    assert login_as(client, user.email).headers["Location"] == "/login/enrol"
    code = pyotp.TOTP(_pending_secret(app, user)).now()
    response = _post_code(client, "/login/enrol", code)
    assert response.status_code == 200, response.get_data(as_text=True)
    return CODE_RE.findall(response.get_data(as_text=True))


def _sign_out(client):
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


@pytest.fixture
def strict_org(runner, org_a):
    """Contoso, with two-step sign-in required by the operator's CLI command."""
    result = runner.invoke(args=["org", "require-mfa", "Contoso"])
    assert result.exit_code == 0, result.output
    return org_a


def test_support_must_enrol_before_being_signed_in(app, client, make_user):
    helpdesk = make_user("help@portal.example", "support", totp=False)
    response = login_as(client, helpdesk.email)
    assert response.headers["Location"] == "/login/enrol"
    page = client.get("/login/enrol")
    text = page.get_data(as_text=True)
    secret = _pending_secret(app, helpdesk)
    assert 'src="data:image/svg+xml' in text  # the QR code, as an image the CSP allows
    assert "img-src 'self' data:" in page.headers["Content-Security-Policy"]
    assert mfa.grouped(secret) in text  # the same secret for typing by hand
    assert client.get("/support/").status_code == 302  # halfway is not signed in

    wrong = _post_code(client, "/login/enrol", "000000")
    assert b"That code is not right." in wrong.data
    response = _post_code(client, "/login/enrol", pyotp.TOTP(secret).now())
    codes = CODE_RE.findall(response.get_data(as_text=True))
    assert len(set(codes)) == 10
    assert secret not in response.get_data(as_text=True)
    assert client.get("/support/").status_code == 200
    with app.app_context():
        assert storage.get_totp_secret(helpdesk.id) == secret
        assert storage.get_pending_totp_secret(helpdesk.id) is None
        assert all(
            code not in h for _, h in storage.unused_recovery_codes(helpdesk.id) for code in codes
        )  # stored hashed
    # The enrolment page is gone once enrolled: the secret is never shown again.
    assert client.get("/login/enrol").status_code == 302


def test_password_then_totp_signs_in_and_halfway_is_not_signed_in(app, client, make_user):
    user = make_user(totp=True)
    response = login_as(client, user.email, next_path="/connections/")
    assert response.headers["Location"] == "/login/second-factor"
    for path in ("/", "/connections/", "/reauth"):
        assert client.get(path).headers["Location"].startswith("/login"), path
    assert (
        client.get("/connections/", headers={"HX-Request": "true"})
        .headers["HX-Redirect"]
        .startswith("/login")
    )
    response = pass_second_factor(client, app, user)
    assert response.status_code == 302 and response.headers["Location"] == "/connections/"
    assert client.get("/connections/").status_code == 200


def test_a_totp_code_is_accepted_once(app, make_user):
    user = make_user(totp=True)
    code = totp_code(app, user)
    first, second = app.test_client(), app.test_client()
    for browser in (first, second):
        login_as(browser, user.email)
    assert _post_code(first, "/login/second-factor", code).status_code == 302
    replay = _post_code(second, "/login/second-factor", code)
    assert replay.status_code == 200 and b"That code is not right." in replay.data
    assert second.get("/").status_code == 302


def test_recovery_codes_sign_in_once_each(app, client, admin_a, strict_org):
    codes = _enrol_at_sign_in(client, app, admin_a)
    _sign_out(client)
    login_as(client, admin_a.email)
    assert _post_code(client, "/login/second-factor", codes[0].upper()).status_code == 302
    _sign_out(client)
    login_as(client, admin_a.email)
    again = _post_code(client, "/login/second-factor", codes[0])
    assert again.status_code == 200 and b"That code is not right." in again.data
    assert _post_code(client, "/login/second-factor", codes[1]).status_code == 302
    with app.app_context():
        assert len(storage.unused_recovery_codes(admin_a.id)) == 8


def test_failed_codes_count_in_the_sign_in_throttle(app, client, make_user):
    user = make_user(totp=True)
    login_as(client, user.email)
    for _ in range(app.config["LOGIN_FREE_FAILURES"] - 1):
        assert _post_code(client, "/login/second-factor", "123456").status_code == 200
    locked = _post_code(client, "/login/second-factor", "123456")
    assert locked.status_code == 429 and b"Too many failed sign-ins" in locked.data
    # While the pause lasts, even the right code (and the password step) are refused.
    assert _post_code(client, "/login/second-factor", totp_code(app, user)).status_code == 429
    assert login_as(app.test_client(), user.email).status_code == 429
    with app.app_context():
        assert (
            len(storage.recent_failures(account=user.email, address="127.0.0.1", window=900)) == 3
        )


def test_org_requirement_signs_out_admins_without_a_second_factor(app, runner, client_a, admin_a):
    assert client_a.get("/").status_code == 200
    result = runner.invoke(args=["org", "require-mfa", "Contoso"])
    assert result.exit_code == 0 and "1 admin(s) without it signed out" in result.output
    assert client_a.get("/").status_code == 302
    assert login_as(client_a, admin_a.email).headers["Location"] == "/login/enrol"
    assert runner.invoke(args=["org", "require-mfa", "Contoso", "--off"]).exit_code == 0
    assert login_as(app.test_client(), admin_a.email).headers["Location"] == "/"
    assert "no organization" in runner.invoke(args=["org", "require-mfa", "Nowhere"]).output.lower()


def test_create_org_can_require_it(app, runner):
    result = runner.invoke(args=["create-org", "Northwind", "--require-mfa"])
    assert result.exit_code == 0 and "required" in result.output
    with app.app_context():
        assert storage.get_organization_by_name("Northwind").require_mfa is True


def test_the_secret_never_reaches_the_logs(app, client, make_user, caplog):
    helpdesk = make_user(role="support", totp=False)
    with caplog.at_level("DEBUG"):
        login_as(client, helpdesk.email)
        client.get("/login/enrol")
        secret = _pending_secret(app, helpdesk)
        _post_code(client, "/login/enrol", pyotp.TOTP(secret).now())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "authenticator app enrolled" in logged
    assert secret not in logged and mfa.grouped(secret) not in logged


def test_second_factor_pages_can_be_framed_by_the_host(app_config, make_user):
    app_config["FRAME_ANCESTORS"] = ["https://host.example"]
    framed = create_app(app_config)
    with framed.app_context():
        from werkzeug.security import generate_password_hash

        from tests.conftest import FAST_HASH

        org = storage.create_organization("Framed")
        storage.set_organization_require_mfa(org.id, True)
        storage.create_user(
            "f@framed.example", "admin", generate_password_hash(TEST_PASSWORD, FAST_HASH), org.id
        )
    browser = framed.test_client()
    login_as(browser, "f@framed.example")
    page = browser.get("/login/enrol")
    assert page.status_code == 200
    assert "frame-ancestors https://host.example" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
