"""Support dashboard: every organization, read-only, never a secret, audited."""

import pytest
from flask import Blueprint

from portal import create_app, storage
from portal.connections import credentials

SECRET = b"SUPPORT-MUST-NOT-SEE-THIS"


@pytest.fixture
def fleet(app, org_a, org_b, make_connection):
    healthy = make_connection(
        org_a, display_name="A healthy", state="connected", health="healthy", cloud="global"
    )
    broken = make_connection(
        org_b, display_name="B broken", state="needs_attention", health="failing", cloud="usgov-l4"
    )
    with app.app_context():
        storage.put_secret("connections", healthy.id, "token_cache", SECRET)
        storage.add_health_event(
            broken.id, "check_failed", "failing", {"missing": "User.ReadWrite.All"}
        )
    return healthy, broken


def test_dashboard_lists_every_org_broken_first(support_client, fleet):
    html = support_client.get("/support/").get_data(as_text=True)
    assert "Contoso" in html and "Fabrikam" in html
    assert html.index("B broken") < html.index("A healthy")
    assert SECRET.decode() not in html


def test_dashboard_filters(support_client, fleet):
    html = support_client.get("/support/?health=failing").get_data(as_text=True)
    assert "B broken" in html and "A healthy" not in html
    fragment = support_client.get("/support/?state=connected", headers={"HX-Request": "true"})
    assert b"<html" not in fragment.data and b"A healthy" in fragment.data


def test_connection_detail_is_read_only_and_audited(app, support_client, support_user, fleet):
    healthy, broken = fleet
    response = support_client.get(f"/support/connections/{broken.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "User.ReadWrite.All" in html and "Read-only" in html
    assert '<form method="post"' not in html.split("<main", 1)[1]
    assert SECRET.decode() not in support_client.get(f"/support/connections/{healthy.id}").get_data(
        as_text=True
    )
    with app.app_context():
        events = storage.list_audit_events(action="support.view_connection")
    assert [(e.actor_user_id, e.connection_id) for e in events] == [
        (support_user.id, healthy.id),
        (support_user.id, broken.id),
    ]


def test_dashboard_view_is_audited(app, support_client, support_user):
    support_client.get("/support/")
    with app.app_context():
        assert (
            storage.list_audit_events(action="support.view_dashboard")[0].actor_user_id
            == support_user.id
        )


def test_support_list_of_every_connection_is_audited(
    app, support_client, support_user, client_a, fleet
):
    assert "B broken" in support_client.get("/connections/").get_data(as_text=True)
    support_client.get("/connections/", headers={"HX-Request": "true"})
    client_a.get("/connections/")  # a customer's list of its own connections is not a support read
    with app.app_context():
        events = storage.list_audit_events(action="support.view_connections")
    assert [e.actor_user_id for e in events] == [support_user.id, support_user.id]


def test_customers_cannot_open_the_dashboard(client, client_a, fleet):
    assert client_a.get("/support/").status_code == 403
    assert client_a.get(f"/support/connections/{fleet[1].id}").status_code == 403
    assert client.get("/support/").status_code == 302


def test_dashboard_is_never_framed(app_config, make_user):
    app_config["FRAME_ANCESTORS"] = ["https://host.example"]
    app = create_app(app_config)
    from werkzeug.security import generate_password_hash

    from tests.conftest import FAST_HASH, enrol_totp, login_as, pass_second_factor

    with app.app_context():
        user = storage.create_user(
            "s@example.com", "support", generate_password_hash("pw-123456", FAST_HASH)
        )
    enrol_totp(app, user)
    client = app.test_client()
    login_as(client, "s@example.com", "pw-123456")
    pass_second_factor(client, app, user)
    response = client.get("/support/")
    assert response.status_code == 200
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_unreadable_secret_renders_needs_reconnect_not_500(app_config, make_user):
    """A view that reads a tampered secret gets the "needs reconnect" page, never a 500."""
    app = create_app(app_config)
    probe = Blueprint("probe", __name__)

    @probe.get("/probe/<connection_id>")
    def read_secret(connection_id):
        credentials.token_cache(connection_id)
        return "unreachable"

    app.register_blueprint(probe)
    with app.app_context():
        org = storage.create_organization("A")
        connection = storage.create_connection(org.id, "service_provider")
        storage.put_secret("connections", connection.id, "token_cache", b"x")
        from portal.storage.db import get_db

        # A malformed nonce: no keyring can open the row, the secret is gone for the customer
        # (our keyring failing to open a row is an operator alarm: test_keyring_alarm.py).
        get_db().execute("UPDATE vault_blobs SET nonce = zeroblob(4)")
    response = app.test_client().get(f"/probe/{connection.id}")
    assert response.status_code == 409
    assert b"needs to be reconnected" in response.data
    htmx = app.test_client().get(f"/probe/{connection.id}", headers={"HX-Request": "true"})
    assert htmx.status_code == 409 and htmx.headers["HX-Retarget"] == "#alerts"
    with app.app_context():
        assert storage.get_connection(connection.id).state == "needs_reconnect"
