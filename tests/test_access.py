"""Who sees what: organization scoping, support read-only, sign-in redirects for htmx."""

import pytest
from flask import Blueprint

from portal import access, storage


def test_admin_sees_own_connection(client_a, org_a, make_connection):
    connection = make_connection(org_a, display_name="Contoso main")
    response = client_a.get(f"/connections/{connection.id}")
    assert response.status_code == 200
    assert b"Contoso main" in response.data


def test_other_organizations_connection_is_404_without_data(client_b, org_a, make_connection):
    connection = make_connection(
        org_a, display_name="Contoso secret name", tenant_id="11111111-2222-3333-4444-555555555555"
    )
    response = client_b.get(f"/connections/{connection.id}")
    assert response.status_code == 404
    assert b"Contoso" not in response.data and b"11111111" not in response.data
    missing = client_b.get("/connections/ffffffffffffffffffffffffffffffff")
    assert missing.status_code == 404

    def normalized(r):
        return r.get_data(as_text=True).replace(r.headers["X-Request-ID"], "")

    assert normalized(missing) == normalized(response)


def test_connection_lists_are_scoped(client_a, client_b, org_a, org_b, make_connection):
    make_connection(org_a, display_name="Only A")
    make_connection(org_b, display_name="Only B")
    home_a = client_a.get("/").get_data(as_text=True)
    assert "Only A" in home_a and "Only B" not in home_a
    list_b = client_b.get("/connections/").get_data(as_text=True)
    assert "Only B" in list_b and "Only A" not in list_b


@pytest.mark.parametrize("bad_id", ["../../etc", "x" * 65, "%00", "abc def"])
def test_implausible_ids_are_404(client_a, bad_id):
    assert client_a.get(f"/connections/{bad_id}").status_code == 404


def test_anonymous_is_sent_to_sign_in_with_next(client, org_a, make_connection):
    connection = make_connection(org_a)
    response = client.get(f"/connections/{connection.id}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next=/connections/{connection.id}"


def test_expired_session_in_htmx_request_answers_hx_redirect(client, org_a, make_connection):
    connection = make_connection(org_a)
    response = client.get(
        f"/connections/{connection.id}",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/connections/"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/login?next=/connections/"
    assert "Location" not in response.headers
    assert response.data == b""


def test_hx_redirect_ignores_a_foreign_current_url(client):
    response = client.get(
        "/connections/", headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example/x"}
    )
    assert response.headers["HX-Redirect"] == "/login?next=/connections/"


def test_hx_redirect_after_sign_out(client_a):
    from tests.conftest import csrf_token

    token = csrf_token(client_a, "/")
    client_a.post("/logout", data={"csrf_token": token})
    response = client_a.get("/connections/", headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"].startswith("/login")


def test_support_sees_every_org_read_only_and_is_audited(
    app, support_client, org_a, org_b, make_connection
):
    a = make_connection(org_a, display_name="A conn")
    b = make_connection(org_b, display_name="B conn")
    for connection in (a, b):
        assert support_client.get(f"/support/connections/{connection.id}").status_code == 200
    with app.app_context():
        events = storage.list_audit_events(action="support.view_connection")
        assert {(e.org_id, e.connection_id) for e in events} == {(org_a.id, a.id), (org_b.id, b.id)}


def test_support_may_not_write(app, support_user, org_a, make_connection):
    connection = make_connection(org_a)
    with app.test_request_context():
        from flask_login import login_user

        login_user(support_user)
        assert access.load_connection_or_404(connection.id).id == connection.id
        with pytest.raises(Exception) as excinfo:
            access.load_connection_or_404(connection.id, write=True)
        assert excinfo.value.code == 403


def test_admin_write_access_to_own_connection(app, admin_a, admin_b, org_a, make_connection):
    connection = make_connection(org_a)
    with app.test_request_context():
        from flask_login import login_user

        login_user(admin_a)
        assert access.load_connection_or_404(connection.id, write=True).id == connection.id
    with app.test_request_context():
        from flask_login import login_user

        login_user(admin_b)
        with pytest.raises(Exception) as excinfo:
            access.load_connection_or_404(connection.id, write=True)
        assert excinfo.value.code == 404


def test_roles_required(app, client_a, support_client):
    assert client_a.get("/support/").status_code == 403
    assert support_client.get("/support/").status_code == 200
    assert support_client.get("/").status_code == 302  # support's home is the dashboard


def test_session_of_deleted_user_is_anonymous(app, client_a, admin_a):
    with app.app_context():
        from portal.storage.db import get_db

        get_db().execute("DELETE FROM users WHERE id = ?", [admin_a.id])
    assert client_a.get("/").status_code == 302


def test_decorators_compose_with_a_new_blueprint(app_config):
    """The decorators later blueprints use: login_required, admin_required."""
    from portal import create_app

    app = create_app(app_config)
    bp = Blueprint("probe", __name__)

    @bp.get("/probe")
    @access.admin_required
    def probe():
        return "ok"

    app.register_blueprint(bp)
    assert app.test_client().get("/probe").status_code == 302


@pytest.fixture
def short_sessions(app_config):
    """One hour idle, two hours absolute (instead of 8 and 12): the same rules, quicker."""
    app_config.update(SESSION_HOURS=1, SESSION_MAX_HOURS=2)


def _poll(client):
    """What an htmx fragment that re-requests itself does."""
    return client.get(
        "/connections/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/connections/"},
    )


def test_polling_does_not_keep_a_session_alive_past_its_absolute_lifetime(
    short_sessions, client_a, monkeypatch
):
    import time

    start = time.time()
    for minutes in range(20, 120, 20):  # every poll slides the idle expiry...
        monkeypatch.setattr(time, "time", lambda m=minutes: start + m * 60)
        response = _poll(client_a)
        assert response.status_code == 200 and "HX-Redirect" not in response.headers, minutes
    monkeypatch.setattr(time, "time", lambda: start + 2 * 3600 + 1)  # ...but not the absolute one
    response = _poll(client_a)
    assert response.headers["HX-Redirect"] == "/login?next=/connections/"
    page = client_a.get("/connections/")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")


def test_absolute_lifetime_is_counted_from_the_sign_in(short_sessions, client_a, monkeypatch):
    import time

    start = time.time()
    for seconds in (3000, 6000, 2 * 3600 - 60):  # each within the idle limit of the last
        monkeypatch.setattr(time, "time", lambda s=seconds: start + s)
        assert client_a.get("/connections/").status_code == 200
    monkeypatch.setattr(time, "time", lambda: start + 2 * 3600 + 60)
    assert client_a.get("/connections/").status_code == 302
    # Signing in again starts a new lifetime.
    from tests.conftest import login_as

    assert login_as(client_a, "admin@contoso.example").status_code == 302
    assert client_a.get("/connections/").status_code == 200


def test_session_max_hours_is_a_setting(app):
    assert app.config["SESSION_MAX_HOURS"] == 12
