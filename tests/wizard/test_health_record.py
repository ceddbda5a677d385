"""The health record beside the lifecycle: last attempt, success and failure, failing since, whose
the failure is, and which checklist items changed, through real checks against the simulator."""

from __future__ import annotations

import re

import pytest

from portal import storage
from portal.connections import health
from portal.entra.problems import problem
from portal.services import caches
from tests.wizard.helpers import USER_ADMIN, connection, link, ready, start_wizard, text


def _item(key, status, label=None):
    return {"key": key, "label": label or key, "status": status}


def test_changes_are_the_items_that_flipped_between_present_and_missing():
    before = {"checklist": [_item("a", "ok"), _item("b", "missing"), _item("c", "ok")]}
    after = [_item("a", "missing", "Role: A"), _item("b", "ok", "B"), _item("c", "unknown")]
    assert health.checklist_changes(before, after) == [
        {"key": "a", "to": "missing", "text": "Role: A removed"},
        {"key": "b", "to": "ok", "text": "B in place again"},
    ]  # c: the second check could not see it, which says nothing about it
    assert health.checklist_changes(None, after) == []


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("transient", "transient"),
        ("our_configuration", "our_config"),
        ("customer_action", "needs_customer"),
        ("wrong_input", "needs_customer"),
    ],
)
def test_error_class_follows_whose_move_it_is(category, expected):
    assert health.error_class_of(problem(category, "t", "m", "f")) == expected
    assert health.error_class_of(None) == "needs_customer"  # finished, something missing


class AdminCenter:
    """The simulator's admin center as a person uses it: forms with their CSRF token."""

    def __init__(self, sim_server):
        from entrasim.testing import trusting_session

        self.http = trusting_session(sim_server.ca_path)
        self.base = sim_server.base_url()

    def post(self, page: str, action: str) -> str:
        form = self.http.get(self.base + page)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        answer = self.http.post(self.base + action, data={"csrf_token": token})
        assert answer.status_code == 200, answer.text[:300]
        return answer.text


def test_a_role_removed_in_the_admin_center_shows_at_the_next_check(
    app, wizard, sim, sim_server, tenant, client_a
):
    ready(app, wizard, sim, tenant)
    link(wizard)
    linked = connection(app, wizard.id)
    assert linked.state == "connected" and linked.error_class is None
    assert linked.last_success_at == linked.last_attempt_at and linked.failing_since is None

    app_page = f"/_sim/admin/tenants/{tenant['id']}/apps/{tenant['client_id']}"
    page = AdminCenter(sim_server).post(app_page, f"{app_page}/roles/{USER_ADMIN}/delete")
    assert "Role assignment removed." in page

    link(wizard)  # Check again
    broken = connection(app, wizard.id)
    assert (broken.state, broken.health) == ("needs_attention", "failing")
    assert broken.error_class == "needs_customer"
    assert broken.failing_since == broken.last_failure_at == broken.last_attempt_at
    assert broken.last_success_at == linked.last_success_at
    assert [c["text"] for c in broken.last_changes] == ["Role: User Administrator removed"]
    page = text(client_a.get(f"/connections/{wizard.id}"))
    assert "Role: User Administrator removed" in page and "Failing since" in page
    with app.app_context():
        event = storage.list_health_events(wizard.id, limit=1)[0]
    assert event.summary["changes"] == ["Role: User Administrator removed"]

    sim.assign_directory_role(tenant["id"], tenant["client_id"], USER_ADMIN)
    link(wizard)
    fixed = connection(app, wizard.id)
    assert (fixed.state, fixed.error_class, fixed.failing_since) == ("connected", None, None)
    assert [c["text"] for c in fixed.last_changes] == ["Role: User Administrator in place again"]


def test_microsoft_refusing_a_check_is_a_failed_attempt_not_a_finding(
    app, wizard, sim, tenant, client_a
):
    ready(app, wizard, sim, tenant)
    link(wizard)
    linked = connection(app, wizard.id)

    sim.set_fault("token", "status", status=503)  # until cleared: every retry is refused too
    try:
        link(wizard)
    finally:
        sim.clear_faults()
    item = connection(app, wizard.id)
    assert item.state == "connected" and item.last_check == linked.last_check
    assert (item.error_class, item.health) == ("transient", "degraded")
    assert item.failing_since == item.last_attempt_at == item.last_failure_at
    assert item.last_success_at == linked.last_success_at
    page = text(client_a.get(f"/connections/{wizard.id}"))
    assert "could not check, will retry" in page

    link(wizard)
    again = connection(app, wizard.id)
    assert (again.error_class, again.failing_since, again.health) == (None, None, "healthy")


def test_a_setup_in_progress_is_setting_up_never_red(app, wizard, sim, tenant, client_a):
    ready(app, wizard, sim, tenant, roles=())
    link(wizard)
    item = connection(app, wizard.id)
    assert (item.state, item.health, item.error_class) == ("waiting", "unknown", "needs_customer")
    listing = text(client_a.get("/connections/"))
    row = listing.split(wizard.id, 1)[1].split("</tr>", 1)[0]
    assert "Setting up" in row and "health-failing" not in row
    page = text(client_a.get(f"/connections/{wizard.id}"))
    assert "Failing since" not in page and "health-failing" not in page
    assert start_wizard(client_a)  # a second, untouched draft lists as setting up too
    assert text(client_a.get("/connections/")).count("Setting up") == 2


def test_microsoft_not_answering_a_tenant_lookup_changes_nothing(app, wizard, sim, tenant):
    """Saving the IDs of a linked connection looks the tenant up again; a lookup Microsoft
    refuses says nothing about the tenant, so the connection stays linked to it."""
    ready(app, wizard, sim, tenant)
    link(wizard)
    linked = connection(app, wizard.id)
    assert linked.state == "connected"
    with app.app_context():
        caches().discovery.clear()  # the answer is cached for a while: ask Microsoft again

    sim.set_fault("openid-configuration", "status", status=503)
    try:
        answer = text(wizard.ids(tenant["domain"], tenant["client_id"]))
    finally:
        sim.clear_faults()
    item = connection(app, wizard.id)
    assert (item.state, item.tenant_id) == ("connected", linked.tenant_id)
    assert "Microsoft did not answer just now" in answer


def test_a_refused_attempt_leaves_the_customers_move_standing(app, wizard, sim, tenant, client_a):
    """Microsoft refusing a check learns nothing: the missing role is still the customer's to
    fix, and the page says both that and that the last attempt could not check."""
    ready(app, wizard, sim, tenant)
    link(wizard)
    sim.remove_directory_role(tenant["id"], tenant["client_id"], USER_ADMIN)
    link(wizard)
    assert connection(app, wizard.id).error_class == "needs_customer"

    sim.set_fault("token", "status", status=503)
    try:
        link(wizard)
    finally:
        sim.clear_faults()
    item = connection(app, wizard.id)
    assert (item.state, item.error_class) == ("needs_attention", "needs_customer")
    assert item.last_attempt_unfinished
    page = text(client_a.get(f"/connections/{wizard.id}"))
    assert "could not check, will retry" in page and "something below needs your action" in page
    assert "nothing for you to do" not in page
