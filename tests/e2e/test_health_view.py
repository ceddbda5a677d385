"""The health record as a customer and support see it in Chromium: a linked connection whose role
was removed reads "Needs attention", since when it has been failing and what changed; a check
Microsoft refused reads "could not check, will retry" and keeps the last result."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests.conftest import TEST_PASSWORD, totp_code
from tests.e2e.test_delete_connection import linked_connection
from tests.wizard.helpers import USER_ADMIN

pytestmark = pytest.mark.e2e

SCREENSHOT_DIR = os.environ.get("PORTAL_E2E_SCREENSHOTS", "")


def sign_in(page, portal, user) -> None:
    page.goto(portal.url("/login"))
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if user.is_support:  # support signs in with a second factor
        page.get_by_label("Code").fill(totp_code(portal.app, user))
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Sign in")


def test_a_removed_role_and_a_refused_check_read_as_they_are(
    page, live_portal, admin_a, support_user, sim, tenant, console_errors, tmp_path
):
    portal = live_portal(CERT_KEY_SIZE=2048)
    connection_id, _ = linked_connection(portal, admin_a, sim, tenant)
    sim.remove_directory_role(tenant["id"], tenant["client_id"], USER_ADMIN)

    sign_in(page, portal, admin_a)
    page.goto(portal.url(f"/connections/{connection_id}"))
    status = page.locator("#connection-status")
    expect(status).to_contain_text("Healthy")
    page.get_by_role("button", name="Check again").click()
    expect(status).to_contain_text("Needs attention", timeout=20_000)
    expect(status).to_contain_text("Failing since")
    expect(status).to_contain_text("Role: User Administrator removed")
    expect(status).to_contain_text("something below needs your action")
    shots = SCREENSHOT_DIR or str(tmp_path)
    page.screenshot(path=os.path.join(shots, "health-role-removed.png"), full_page=True)

    sim.set_fault("token", "status", status=503)  # until cleared: every retry refused too
    try:
        page.get_by_role("button", name="Check again").click()
        expect(status).to_contain_text("could not check, will retry", timeout=30_000)
    finally:
        sim.clear_faults()
    # The last finished result still stands: the missing role is still listed, and it is
    # still the customer's to fix (the refused attempt learnt nothing).
    expect(status).to_contain_text("Needs attention")
    expect(status).to_contain_text("something below needs your action")
    expect(page.locator("li.check.missing")).to_contain_text("User Administrator")
    page.screenshot(path=os.path.join(shots, "health-transient.png"), full_page=True)

    context = page.context.browser.new_context(ignore_https_errors=True)
    support = context.new_page()
    sign_in(support, portal, support_user)
    support.goto(portal.url("/support/"))
    row = support.locator("tr", has_text="Contoso")
    expect(row).to_contain_text("Needs the customer")
    support.goto(portal.url(f"/support/connections/{connection_id}"))
    expect(support.locator("#connection-status")).to_contain_text("could not check, will retry")
    expect(support.locator("#connection-status")).to_contain_text("needs_customer")
    support.screenshot(path=os.path.join(shots, "health-support.png"), full_page=True)
    context.close()
    assert console_errors == []
