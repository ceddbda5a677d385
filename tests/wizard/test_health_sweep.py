"""flask check-health: re-checks linked customer-owned connections so support sees breakage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal import storage
from tests.wizard.helpers import connection, link, ready, start_wizard


def linked(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    link(wizard)
    assert connection(app, wizard.id).state == "connected"


def test_sweep_finds_a_revoked_permission(app, runner, wizard, sim, tenant, client_a):
    linked(app, wizard, sim, tenant)
    draft = start_wizard(client_a)  # not linked yet: the sweep leaves it to the customer
    sim.revoke_app_role(tenant["id"], tenant["client_id"], "Group.ReadWrite.All")

    result = runner.invoke(args=["check-health"])
    assert result.exit_code == 0, result.output
    assert (
        "Health sweep: checked 1, healthy 0, needs attention 1, could not check 0, "
        "certificates expiring within 30 days 0"
    ) in result.output

    item = connection(app, wizard.id)
    assert item.state == "needs_attention" and item.health == "failing"
    assert "app:Group.ReadWrite.All" in [
        i["key"] for i in item.last_check["checklist"] if i["status"] == "missing"
    ]
    with app.app_context():
        event = storage.list_health_events(wizard.id, limit=1)[0]
        audit = storage.list_audit_events(connection_id=wizard.id, limit=1)[0]
    assert event.summary["trigger"] == "health sweep"
    assert audit.actor_user_id is None  # the sweep, not a person
    assert connection(app, draft.id).state == "draft"

    # Granted again: the next sweep sees it healthy.
    sim.grant_app_role(tenant["id"], tenant["client_id"], "Group.ReadWrite.All")
    again = runner.invoke(args=["check-health"])
    assert "checked 1, healthy 1, needs attention 0" in again.output
    assert connection(app, wizard.id).state == "connected"


def test_sweep_reports_certificates_about_to_expire(app, runner, wizard, sim, tenant):
    linked(app, wizard, sim, tenant)
    with app.app_context():
        cert = storage.active_certificate(wizard.id)
        soon = (datetime.now(UTC) + timedelta(days=5, hours=1)).isoformat()
        storage.get_db().execute(
            "UPDATE certificates SET not_after = ? WHERE id = ?", [soon, cert.id]
        )
    result = runner.invoke(args=["check-health"])
    assert f"{wizard.id}: certificate expires in 5 days" in result.output
    assert "certificates expiring within 30 days 1" in result.output


def test_sweep_counts_what_it_could_not_check(app, runner, wizard, sim, tenant):
    linked(app, wizard, sim, tenant)
    with app.app_context():  # e.g. the cloud was removed from the configuration since
        storage.update_connection(wizard.id, cloud="no-longer-configured")
    result = runner.invoke(args=["check-health"])
    assert "checked 0, healthy 0, needs attention 0, could not check 1" in result.output


def test_sweep_during_an_outage_at_microsoft_changes_no_state(app, runner, wizard, sim, tenant):
    linked(app, wizard, sim, tenant)
    report = connection(app, wizard.id).last_check
    sim.set_fault("token", "status", status=503)
    result = runner.invoke(args=["check-health"])
    assert "checked 0, healthy 0, needs attention 0, could not check 1" in result.output
    item = connection(app, wizard.id)
    assert (item.state, item.health) == ("connected", "degraded")
    assert item.last_check == report
