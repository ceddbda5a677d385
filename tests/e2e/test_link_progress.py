"""Link Account in Chromium while Microsoft is slow: the request answers at once, the progress
region shows each step as it completes (polling the job), then the checklist with the result."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.conftest import TEST_PASSWORD
from tests.wizard.helpers import ready, start_wizard

pytestmark = pytest.mark.e2e

#: Where the screenshots go (kept for a human to look at).
SCREENSHOT_DIR = os.environ.get("PORTAL_E2E_SCREENSHOTS", "")


def set_up(portal, admin, sim, tenant) -> str:
    """Walk the wizard to step 6 through the portal's routes (the onboarding has its own
    browser test); the app is set up in the simulator as the customer would."""
    client = portal.app.test_client()
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', login).group(1)
    response = client.post(
        "/login", data={"email": admin.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    wizard = start_wizard(client)
    ready(portal.app, wizard, sim, tenant)
    return wizard.id


def keep(shot, name: str) -> None:
    if SCREENSHOT_DIR:
        os.makedirs(SCREENSHOT_DIR, exist_ok=True)
        shutil.copy(shot, os.path.join(SCREENSHOT_DIR, name))


def test_link_account_shows_each_step_then_the_result(
    page, live_portal, admin_a, sim, tenant, console_errors, tmp_path
):
    portal = live_portal(CERT_KEY_SIZE=2048)
    connection_id = set_up(portal, admin_a, sim, tenant)
    page.goto(portal.url("/login"))
    page.get_by_label("Email").fill(admin_a.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/$"))
    page.goto(portal.url(f"/connections/{connection_id}/setup#step-link"))

    # Microsoft is slow to issue the token, and slow again to list the roles.
    sim.set_fault("token", "latency", ms=2500, times=1)
    sim.set_fault("graph.roleassignments", "latency", ms=2500, times=1)
    page.get_by_role("button", name="Link Account").click()
    progress = page.locator("#job-check")
    expect(progress).to_contain_text("Checking with Microsoft…")
    steps = progress.locator("li.step-ok")
    expect(progress.locator("li.step-waiting")).to_be_visible()
    expect(steps.filter(has_text="Find your tenant")).to_have_count(1)
    expect(steps.filter(has_text="Get a token from Microsoft")).to_have_count(0)  # still slow
    expect(steps.filter(has_text="Get a token from Microsoft")).to_have_count(1, timeout=10_000)
    expect(steps.filter(has_text="Read the permissions granted")).to_have_count(1)
    expect(steps.filter(has_text="Read the roles assigned")).to_have_count(0)  # still slow
    during = tmp_path / "link-progress.png"
    page.locator("#step-link").screenshot(path=str(during))
    keep(during, "link-progress.png")

    checklist = page.locator("#checklist")
    expect(checklist).to_contain_text("Linked.", timeout=15_000)
    expect(checklist.locator("li.check.ok")).to_have_count(5)
    expect(checklist.locator("[hx-trigger]")).to_have_count(0)  # nothing polls any more
    summary = checklist.locator("details.job-steps summary")
    expect(summary).to_contain_text("Steps of the last check")
    summary.click()
    expect(checklist.locator("details.job-steps li.step-ok")).to_have_count(10)
    after = tmp_path / "link-result.png"
    page.locator("#step-link").screenshot(path=str(after))
    keep(after, "link-result.png")

    page.reload()  # the result is in the database
    expect(page.locator("#checklist")).to_contain_text("Linked.")
    assert console_errors == []
