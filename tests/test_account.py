"""The account's sign-in security page: voluntary enrolment, turning it off (re-authenticated)."""

import time

import pyotp

from portal import storage
from tests.conftest import csrf_token, login_as, totp_code

PAGE = "/account/security"


def _post(client, path, **data):
    return client.post(
        path,
        data={"csrf_token": csrf_token(client, PAGE), **data},
        headers={"Referer": f"http://localhost{PAGE}"},
    )


def test_an_admin_turns_two_step_sign_in_on(app, client_a, admin_a):
    assert b"Set up two-step sign-in" in client_a.get(PAGE).data
    start = _post(client_a, "/account/security/totp")
    assert start.status_code == 303 and start.headers["Location"] == "/account/security/totp/enrol"
    page = client_a.get("/account/security/totp/enrol")
    assert b'src="data:image/svg+xml' in page.data
    with app.app_context():
        secret = storage.get_pending_totp_secret(admin_a.id)
    done = _post(client_a, "/account/security/totp/enrol", code=pyotp.TOTP(secret).now())
    assert done.status_code == 200 and b"Two-step sign-in is on" in done.data
    settings = client_a.get(PAGE).get_data(as_text=True)
    assert "Recovery codes left: 10" in settings and secret not in settings
    assert client_a.get("/account/security/totp/enrol").status_code == 302  # shown no more
    browser = app.test_client()
    assert login_as(browser, admin_a.email).headers["Location"] == "/login/second-factor"


def test_turning_it_off_needs_a_fresh_password_and_code(app, make_user, login, monkeypatch):
    user = make_user(totp=True)
    client = login(user)
    start = time.time()
    monkeypatch.setattr(time, "time", lambda: start + 16 * 60)
    stale = _post(client, "/account/security/totp/disable")
    assert stale.status_code == 303 and stale.headers["Location"] == f"/reauth?next={PAGE}"
    with app.app_context():
        assert storage.get_user(user.id).has_mfa
    back = client.post(
        "/reauth",
        data={
            "csrf_token": csrf_token(client, "/reauth"),
            "password": "correct horse battery staple",
            "code": totp_code(app, user),
            "next": PAGE,
        },
    )
    assert back.headers["Location"] == PAGE
    assert _post(client, "/account/security/totp/disable").headers["Location"] == PAGE
    with app.app_context():
        assert not storage.get_user(user.id).has_mfa
        assert storage.get_totp_secret(user.id) is None
        assert storage.unused_recovery_codes(user.id) == []
    assert login_as(app.test_client(), user.email).headers["Location"] == "/"


def test_required_two_step_sign_in_cannot_be_turned_off(app, support_client, support_user):
    assert b"cannot be turned off" in support_client.get(PAGE).data
    response = _post(support_client, "/account/security/totp/disable")
    assert response.headers["Location"] == PAGE
    with app.app_context():
        assert storage.get_user(support_user.id).has_mfa
