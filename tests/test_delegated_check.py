"""Checking a service-provider (delegated) connection: the refresh token redeemed through the
keep-alive's one refresh path (lease, rotation saved), the granted scopes compared with the
required ones, a Graph read, and the report recorded as the connection's last check. Against the
simulator with the real msal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal import storage
from portal.blueprints.link.panel import scopes_to_request
from portal.connections import keepalive
from portal.connections.delegated_check import run_delegated_check
from portal.connections.service_provider import required_scopes
from portal.entra.client import DELEGATED_SCOPE_NAMES
from portal.entra.clouds import load_cloud_table
from portal.entra.permissions import Observed, checklist
from portal.entra.tokens import TokenResult
from portal.entra.verify_delegated import granted_scopes
from tests.conftest import csrf_token
from tests.keepalive_helpers import (
    Provider,
    link_connection,
    stored_refresh_tokens,
    token_calls,
)
from tests.wizard.helpers import HX, connection, follow_job, text


@pytest.fixture
def provider(sim):
    return Provider.register(sim)


@pytest.fixture
def app_config(app_config, sim_server, provider, tmp_path):
    app_config["CLOUDS_FILE"] = str(sim_server.clouds_file(tmp_path / "clouds.json"))
    app_config.update(provider.config())
    return app_config


@pytest.fixture
def linked(app, sim, sim_server, provider, org_a):
    return link_connection(app, sim, sim_server, provider, provider.customer(), org_a)


def check(app, item, trigger="check", actor=None) -> dict:
    with app.app_context():
        return run_delegated_check(storage.get_connection(item.id), trigger, actor)


def test_check_refreshes_records_the_report_and_last_check(app, sim, linked, client_a, admin_a):
    calls = token_calls(sim)
    assert "Last check</dt><dd>—" in text(client_a.get(f"/connections/{linked.connection.id}"))

    assert check(app, linked.connection, actor=admin_a.id) == {"ok": True}

    assert token_calls(sim) == calls + 1  # one redemption, rotated and saved
    assert stored_refresh_tokens(app, linked.connection.id) != [linked.refresh_token]
    item = connection(app, linked.connection.id)
    assert item.last_checked_at and item.refresh_last_ok_at
    report = item.last_check
    assert report["kind"] == "service_provider" and report["ok"]
    assert [i["key"] for i in report["checklist"]] == [
        *(f"scope:{name}" for name in DELEGATED_SCOPE_NAMES),
        "scope:offline_access",
    ]
    assert {i["status"] for i in report["checklist"]} == {"ok"}
    assert "organization" in [s["name"] for s in report["steps"]]  # Graph accepted the token
    assert item.tenant_name  # from /v1.0/organization
    with app.app_context():
        audit = storage.list_audit_events(
            connection_id=item.id, action="connection.check", limit=1
        )[0]
    assert audit.actor_user_id == admin_a.id
    page = text(client_a.get(f"/connections/{linked.connection.id}"))
    assert "Last check</dt><dd>—" not in page
    # Its own lifecycle text, not the certificate's.
    assert "we renew the sign-in every day" in page
    assert "Our certificate exists" not in page and "create a new certificate" not in page


def test_check_again_on_the_page_runs_the_check_as_a_job(app, sim, linked, client_a):
    page = text(client_a.get(f"/connections/{linked.connection.id}"))
    assert "Check again</button>" in page and "Not checked yet." in page
    token = csrf_token(client_a, f"/connections/{linked.connection.id}")
    response = client_a.post(
        f"/connections/{linked.connection.id}/check",
        data={"where": "page", "csrf_token": token},
        headers=HX,
    )
    body = text(follow_job(client_a, response))
    assert "Every item is in place" in body and "Directory.AccessAsUser.All" in body
    item = connection(app, linked.connection.id)
    assert item.last_check["kind"] == "service_provider" and item.last_success_at


def test_a_scope_removed_in_the_tenant_needs_attention_naming_it(app, sim, linked, provider):
    sim.revoke_delegated(linked.connection.tenant_id, provider.client_id, ["Group.ReadWrite.All"])

    outcome = check(app, linked.connection)

    assert outcome == {"ok": False}
    item = connection(app, linked.connection.id)
    assert item.state == "needs_attention"
    missing = [i["key"] for i in item.last_check["checklist"] if i["status"] == "missing"]
    assert missing == ["scope:Group.ReadWrite.All"]
    assert "Group.ReadWrite.All" in item.last_check["problem"]["message"]
    assert "Group.ReadWrite.All" not in item.granted_scopes
    # The consent flow asks for exactly the scope that is missing again.
    required = required_scopes(app.config)
    assert scopes_to_request(item, required) == ["Group.ReadWrite.All"]

    sim.grant_delegated(linked.connection.tenant_id, provider.client_id, ["Group.ReadWrite.All"])
    sim.advance_clock(60)  # replication
    assert check(app, linked.connection) == {"ok": True}
    assert connection(app, linked.connection.id).state == "connected"


def test_the_keep_alive_refresh_is_a_check(app, sim, linked):
    with app.app_context():
        assert keepalive.run_from_app(app, now=datetime.now(UTC)).refreshed == 1
    item = connection(app, linked.connection.id)
    assert item.last_checked_at and item.last_check["kind"] == "service_provider"


def test_transient_and_revoked_answers(app, sim, linked, provider):
    sim.set_fault("token", "status", status=503)
    outcome = check(app, linked.connection)
    assert outcome["transient"] and not outcome["ok"]
    assert connection(app, linked.connection.id).state == "connected"
    sim.clear_faults()
    customer = linked.connection.tenant_domain
    sim.revoke_refresh_tokens(linked.connection.tenant_id, f"admin@{customer}")
    outcome = check(app, linked.connection)
    assert outcome["reconnect"] and not outcome["ok"]
    assert connection(app, linked.connection.id).state == "needs_reconnect"


def test_a_check_waits_for_a_refresh_in_progress(app, sim, linked):
    """Never two redemptions of one refresh token at once: the lease is respected."""
    with app.app_context():
        assert storage.claim_refresh_lease(
            linked.connection.id,
            "keep-alive-run",
            now=datetime.now(UTC).timestamp(),
            ttl=keepalive.LEASE_SECONDS,
        )
    calls = token_calls(sim)
    outcome = check(app, linked.connection)
    assert outcome["transient"] and token_calls(sim) == calls


def test_only_linked_service_provider_connections(app, org_a, make_connection):
    own = make_connection(org_a, "customer_owned", "Own app")
    draft = make_connection(org_a, "service_provider", "Not linked yet")
    assert check(app, own)["message"]
    assert check(app, draft)["message"].startswith("Run Link Account first")


def test_the_checklist_holds_the_operators_extra_scopes_and_reads_full_scope_names():
    cloud = load_cloud_table(None).get("global")
    token = TokenResult(
        True,
        access_token="x",
        granted_scopes=(
            "https://graph.microsoft.com/User.ReadWrite.All",
            "Mail.Send",
            "openid",
            "offline_access",
        ),
    )
    assert granted_scopes(token, cloud) == {"User.ReadWrite.All", "Mail.Send"}
    items = checklist(
        "service_provider",
        Observed(scopes=frozenset({"User.ReadWrite.All", "Mail.Send"}), refresh_token=True),
        cloud,
        scopes=("User.ReadWrite.All", "Mail.Send", "Group.ReadWrite.All"),
    )
    assert [(i.key, i.status) for i in items] == [
        ("scope:User.ReadWrite.All", "ok"),
        ("scope:Mail.Send", "ok"),
        ("scope:Group.ReadWrite.All", "missing"),
        ("scope:offline_access", "ok"),
    ]
