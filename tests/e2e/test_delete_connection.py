"""Deleting a linked customer-owned connection in Chromium: the confirmation dialog, the page
that says what to remove at Microsoft (thumbprint, tenant, links), and the list without it."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from portal import storage
from tests.conftest import TEST_PASSWORD
from tests.wizard.helpers import link, ready, start_wizard

pytestmark = pytest.mark.e2e

#: Where the after-delete screenshot goes (kept for a human to look at).
SCREENSHOT_DIR = os.environ.get("PORTAL_E2E_SCREENSHOTS", "")


def linked_connection(portal, admin, sim, tenant) -> tuple[str, str]:
    """Set up and link a connection through the portal's routes (the onboarding itself has its
    own browser test); returns its id and certificate thumbprint."""
    client = portal.app.test_client()
    response = client.post(
        "/login",
        data={"email": admin.email, "password": TEST_PASSWORD, "csrf_token": _token(client)},
    )
    assert response.status_code == 302
    wizard = start_wizard(client)
    cert = ready(portal.app, wizard, sim, tenant)
    assert "Linked." in link(wizard).get_data(as_text=True)
    return wizard.id, cert.thumbprint_sha1


def _token(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)


def test_admin_deletes_a_linked_connection(
    page, live_portal, admin_a, sim, tenant, console_errors, tmp_path
):
    portal = live_portal(CERT_KEY_SIZE=2048)
    connection_id, thumbprint = linked_connection(portal, admin_a, sim, tenant)

    page.goto(portal.url("/login"))
    page.get_by_label("Email").fill(admin_a.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(f'a[href="/connections/{connection_id}"]')).to_be_visible()
    page.goto(portal.url(f"/connections/{connection_id}"))

    dialogs: list[str] = []

    def answer(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss() if len(dialogs) == 1 else dialog.accept()

    page.on("dialog", answer)
    button = page.get_by_role("button", name="Delete connection")
    button.click()  # dismissed: nothing happens
    expect(button).to_be_visible()
    with portal.app.app_context():
        assert storage.get_connection(connection_id).state == "connected"

    button.click()  # accepted
    expect(page.get_by_role("heading", level=1)).to_contain_text("was deleted")
    assert "cannot be undone" in dialogs[0] and len(dialogs) == 2
    expect(page.locator("#alerts")).to_contain_text("was deleted")
    expect(page.locator("code.thumbprint")).to_have_text([thumbprint])
    expect(page.locator("#deleted-tenant")).to_have_text(tenant["id"])
    expect(page.get_by_role("link", name="Open Certificates & secrets")).to_have_attribute(
        "href", re.compile("/Credentials/appId/" + tenant["client_id"])
    )
    expect(page.get_by_role("link", name="Open the app registration")).to_have_attribute(
        "href", re.compile("/Overview/appId/" + tenant["client_id"])
    )
    shot = os.path.join(SCREENSHOT_DIR or str(tmp_path), "after-delete.png")
    page.screenshot(path=shot, full_page=True)

    page.get_by_role("link", name="Back to your connections").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Your Microsoft Entra ID")
    expect(page.locator(f'a[href="/connections/{connection_id}"]')).to_have_count(0)
    expect(page.locator("#connections")).to_contain_text("No connections yet.")
    assert console_errors == []
