"""Deleting a service-provider (delegated) connection: the stored sign-in is destroyed, a sign-in
in progress can no longer complete, keep-alive never refreshes it again, and the page says how
to remove our enterprise application's consent in the customer's tenant."""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

import pytest

from portal import storage
from portal.services import find_cloud
from portal.storage import db
from tests.conftest import csrf_token
from tests.keepalive_helpers import SIM_CLOUD, Provider, link_connection, token_calls

PUBLIC_URL = "https://portal.example.test"


@pytest.fixture
def provider(sim):
    return Provider.register(sim)


@pytest.fixture
def app_config(app_config, sim_server, provider, tmp_path):
    app_config["CLOUDS_FILE"] = str(sim_server.clouds_file(tmp_path / "clouds.json"))
    app_config.update(provider.config(), SP_CLOUDS=[SIM_CLOUD], PUBLIC_URL=PUBLIC_URL)
    return app_config


@pytest.fixture
def linked(app, sim, sim_server, provider, org_a):
    """A Contoso connection consented two days ago (due for a keep-alive refresh)."""
    return link_connection(app, sim, sim_server, provider, provider.customer(), org_a).connection


def delete(client, connection_id):
    return client.post(
        f"/connections/{connection_id}/delete", data={"csrf_token": csrf_token(client, "/")}
    )


def test_delete_destroys_the_sign_in_and_keep_alive_skips_it(app, sim, linked, client_a, runner):
    with app.app_context():
        assert storage.get_secret("connections", linked.id, "token_cache")
    assert delete(client_a, linked.id).status_code == 303
    with app.app_context():
        assert storage.get_secret("connections", linked.id, "token_cache") is None
        assert storage.deletion_audit(linked.id).detail["destroyed"]["token_cache"] == 1
        events = len(storage.list_health_events(linked.id))
    calls = token_calls(sim)

    result = runner.invoke(args=["refresh-tokens", "--verbose", "--idle-hours", "0"])
    assert result.exit_code == 0, result.output
    assert linked.id not in result.output and "refreshed 0" in result.output
    assert token_calls(sim) == calls
    with app.app_context():
        assert len(storage.list_health_events(linked.id)) == events
        assert storage.get_connection(linked.id).state == "deleted"


def test_a_sign_in_started_before_the_deletion_cannot_complete(app, sim, linked, client_a):
    started = client_a.post(
        f"/connections/{linked.id}/link", data={"csrf_token": csrf_token(client_a, "/")}
    )
    assert started.status_code == 303
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    with app.app_context():
        assert storage.get_secret("auth_flows", state, "msal_flow") is not None

    delete(client_a, linked.id)
    with app.app_context():
        assert storage.get_secret("auth_flows", state, "msal_flow") is None
        row = (
            db.get_db()
            .execute("SELECT consumed_at FROM auth_flows WHERE state = ?", [state])
            .fetchone()
        )
    assert row[0] is not None
    calls = token_calls(sim)
    answer = client_a.post("/oauth/callback", data={"state": state, "code": "a-code"})
    assert answer.status_code == 400
    assert token_calls(sim) == calls
    assert (
        client_a.post(
            f"/connections/{linked.id}/link", data={"csrf_token": csrf_token(client_a, "/")}
        ).status_code
        == 404
    )
    assert client_a.get(f"/connections/{linked.id}/link-status").status_code == 404


def test_the_page_says_how_to_remove_our_enterprise_application(app, linked, client_a, provider):
    page = client_a.get(delete(client_a, linked.id).headers["Location"])
    assert page.status_code == 200
    body = html.unescape(page.get_data(as_text=True))
    assert "Remove our application's access to your tenant" in body
    assert linked.tenant_id in body and provider.client_id in body
    with app.app_context():
        assert find_cloud(SIM_CLOUD).enterprise_app_url(provider.client_id) in body


def test_never_consented_means_nothing_to_remove(app, client_a, make_connection, org_a):
    draft = make_connection(org_a, "service_provider", "Not linked yet")
    body = html.unescape(
        client_a.get(delete(client_a, draft.id).headers["Location"]).get_data(as_text=True)
    )
    assert "consent was never given" in body
