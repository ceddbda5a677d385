"""Re-authentication before sensitive actions (access.fresh_auth_required, /reauth)."""

import time

import pytest
from flask import Blueprint

from portal import access, create_app, storage
from tests.conftest import TEST_PASSWORD, csrf_token, login_as, totp_code

LATER = 16 * 60  # past REAUTH_MINUTES (15)


@pytest.fixture
def sp_connection(org_a, make_connection):
    return make_connection(org_a, "service_provider", "Contoso SP")


@pytest.fixture
def co_connection(org_a, make_connection):
    return make_connection(org_a, "customer_owned", "Contoso CO")


@pytest.fixture
def later(monkeypatch):
    """Move the clock past the re-authentication limit (the sign-in itself stays valid)."""
    start = time.time()
    monkeypatch.setattr(time, "time", lambda: start + LATER)


def _page(connection) -> str:
    return f"/connections/{connection.id}"


def _post(client, path, page, **headers):
    token = csrf_token(client, page)
    return client.post(
        path, data={"csrf_token": token}, headers={"Referer": f"http://localhost{page}", **headers}
    )


def _reauth(client, password=TEST_PASSWORD, code=None, next_path=""):
    token = csrf_token(client, "/reauth")
    data = {"password": password, "csrf_token": token, "next": next_path}
    if code is not None:
        data["code"] = code
    return client.post("/reauth", data=data)


def test_right_after_sign_in_link_account_needs_no_reauth(client_a, sp_connection):
    page = _page(sp_connection)
    response = _post(client_a, f"{page}/link/handoff", page, Accept="application/json")
    assert response.status_code != 401
    assert not response.headers.get("Location", "").startswith("/reauth")


def test_a_stale_form_post_goes_to_reauth_and_back(client_a, sp_connection, later):
    page = _page(sp_connection)
    response = _post(client_a, f"{page}/link", page)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/reauth?next={page}"
    form = client_a.get(response.headers["Location"])
    assert form.status_code == 200 and f'value="{page}"'.encode() in form.data
    wrong = _reauth(client_a, "wrong password", next_path=page)
    assert wrong.status_code == 200 and b"The password or code is not right." in wrong.data
    back = _reauth(client_a, next_path=page)
    assert back.status_code == 303 and back.headers["Location"] == page
    again = _post(client_a, f"{page}/link", page)
    assert not again.headers.get("Location", "").startswith("/reauth")


def test_a_stale_htmx_request_gets_hx_redirect(client_a, co_connection, later):
    page = _page(co_connection)
    for action in (
        "certificate/rotate",
        "certificate/confirm",
        "setup/certificate",
        "setup/registered",
    ):
        response = _post(
            client_a,
            f"{page}/{action}",
            page,
            **{"HX-Request": "true", "HX-Current-URL": f"http://localhost{page}"},
        )
        assert response.headers["HX-Redirect"] == f"/reauth?next={page}", action
    with client_a.application.app_context():
        assert storage.list_certificates(co_connection.id) == []  # nothing was issued


def test_a_stale_json_request_gets_401_with_the_reauth_url(client_a, sp_connection, later):
    page = _page(sp_connection)
    response = _post(client_a, f"{page}/link/handoff", page, Accept="application/json")
    assert response.status_code == 401
    assert response.get_json() == {"error": "reauth_required", "reauth_url": f"/reauth?next={page}"}


def test_a_foreign_referer_is_never_the_way_back(client_a, sp_connection, later):
    token = csrf_token(client_a, "/")
    for path, back in (
        (f"{_page(sp_connection)}/link/handoff", ""),
        # a POST to a URL that is also a page goes back to that page
        (f"{_page(sp_connection)}/link", f"?next={_page(sp_connection)}/link"),
    ):
        response = client_a.post(
            path,
            data={"csrf_token": token},
            headers={"Referer": "https://evil.example/connections/"},
        )
        assert response.headers["Location"] == "/reauth" + back
    assert _reauth(client_a, next_path="https://evil.example/").headers["Location"] == "/"


def test_reauth_asks_for_the_second_factor_when_enrolled(app, make_user, login, later):
    user = make_user(totp=True)
    client = login(user)
    page = client.get("/reauth")
    assert b'name="code"' in page.data
    assert b"not right" in _reauth(client).data  # the password alone is not enough
    response = _reauth(client, code=totp_code(app, user), next_path="/connections/")
    assert response.status_code == 303 and response.headers["Location"] == "/connections/"
    with app.app_context():
        failures = storage.recent_failures(account=user.email, address="127.0.0.1", window=900)
    assert failures == []  # the success ended the count of the failure before it


def test_failed_reauth_counts_in_the_sign_in_throttle(app, client_a, admin_a, later):
    for _ in range(app.config["LOGIN_FREE_FAILURES"] - 1):
        assert _reauth(client_a, "nope").status_code == 200
    assert _reauth(client_a, "nope").status_code == 429
    assert _reauth(client_a).status_code == 429


def test_the_decorator_composes_under_admin_required(app_config, monkeypatch):
    """The interface other blueprints use: ``@admin_required`` then ``@fresh_auth_required``."""
    app = create_app(app_config)
    bp = Blueprint("probe", __name__)

    @bp.post("/probe")
    @access.admin_required
    @access.fresh_auth_required
    def probe():
        return "done"

    app.register_blueprint(bp)
    assert app.test_client().post("/probe").status_code == 400  # CSRF first, as everywhere
    from werkzeug.security import generate_password_hash

    from tests.conftest import FAST_HASH

    with app.app_context():
        org = storage.create_organization("Probe")
        storage.create_user(
            "p@probe.example", "admin", generate_password_hash(TEST_PASSWORD, FAST_HASH), org.id
        )
    client = app.test_client()
    login_as(client, "p@probe.example")
    token = csrf_token(client, "/")
    assert client.post("/probe", data={"csrf_token": token}).get_data() == b"done"
    start = time.time()
    monkeypatch.setattr(time, "time", lambda: start + LATER)
    response = client.post(
        "/probe",
        data={"csrf_token": csrf_token(client, "/")},
        headers={"Referer": "http://localhost/connections/"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/reauth?next=/connections/"


def test_deleting_a_connection_needs_a_fresh_authentication(app, client_a, co_connection, later):
    page = _page(co_connection)
    response = _post(client_a, f"{page}/delete", page)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/reauth?next={page}"
    with app.app_context():
        assert not storage.get_connection(co_connection.id).deleted
    assert _reauth(client_a, next_path=page).status_code in (302, 303)
    assert _post(client_a, f"{page}/delete", page).status_code == 303
    with app.app_context():
        assert storage.get_connection(co_connection.id).deleted
