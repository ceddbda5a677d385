"""Two-step sign-in in Chromium: enrol from the QR page, then sign in with the app's code.

Screenshots of the enrolment and second-factor pages go to the test's tmp_path (and to
``$PORTAL_SCREENSHOTS`` when set, to look at them).
"""

from __future__ import annotations

import os
import shutil

import pyotp
import pytest
from playwright.sync_api import expect

from portal import storage
from tests.conftest import TEST_PASSWORD, totp_code
from tests.e2e.test_embedded_link import framed_portal, hosts, sp_cert  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e


def _screenshot(page, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("PORTAL_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(path, os.path.join(keep, path.name))


def _sign_in_with_password(page, portal, email: str) -> None:
    page.goto(portal.url("/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_enrol_from_the_qr_page_then_sign_in_with_the_code(
    page, app, live_portal, admin_a, org_a, tmp_path, console_errors
):
    with app.app_context():
        storage.set_organization_require_mfa(org_a.id, True)
    portal = live_portal()

    _sign_in_with_password(page, portal, admin_a.email)
    expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
    qr = page.get_by_role("img", name="QR code that adds admin@contoso.example")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 100")  # loaded under the CSP
    with app.app_context():
        secret = storage.get_pending_totp_secret(admin_a.id)
    assert page.locator("#totp-secret").inner_text().replace(" ", "") == secret
    _screenshot(page, tmp_path, "enrolment")

    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    expect(page.get_by_role("heading", name="Two-step sign-in is on")).to_be_visible()
    assert page.locator(".recovery-codes li").count() == 10
    page.get_by_role("link", name="I have saved them — continue").click()
    expect(page.get_by_role("heading", name="Your Microsoft Entra ID connections")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    _sign_in_with_password(page, portal, admin_a.email)
    expect(page.get_by_role("heading", name="Two-step sign-in")).to_be_visible()
    _screenshot(page, tmp_path, "second-factor")
    page.get_by_label("Code").fill(totp_code(app, admin_a))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your Microsoft Entra ID connections")).to_be_visible()
    assert secret not in page.content()
    assert console_errors == []


def test_link_account_in_the_iframe_asks_for_the_password_when_the_sign_in_is_old(
    page,
    framed_portal,  # noqa: F811
    hosts,  # noqa: F811
    sim,
    admin_a,
    tmp_path,
    console_errors,
):
    from tests.e2e.test_embedded_link import (
        ADMIN_UPN,
        confirm_in_panel,
        sign_in_in_frame,
        sign_in_in_popup,
    )

    portal, connection, _customer = framed_portal
    frame = sign_in_in_frame(page, hosts[0], portal, connection, admin_a)
    portal.app.config["REAUTH_MINUTES"] = 0  # every sign-in is now too old
    with page.expect_popup() as popup_info:
        frame.get_by_role("button", name="Link Account").click()
    popup = popup_info.value
    # link.js drops the popup it opened and goes to the re-authentication page (the popup may
    # be closed before an event listener could be attached, so poll its state instead).
    expect(frame.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    for _ in range(50):
        if popup.is_closed():
            break
        page.wait_for_timeout(100)
    assert popup.is_closed()
    _screenshot(page, tmp_path, "reauth-in-frame")
    portal.app.config["REAUTH_MINUTES"] = 15
    frame.get_by_label("Password").fill(TEST_PASSWORD)
    frame.get_by_role("button", name="Confirm").click()
    expect(frame.get_by_role("button", name="Link Account")).to_be_visible()  # back again

    sim.set_interaction("sso", user=ADMIN_UPN)
    with page.expect_popup() as popup_info:
        frame.get_by_role("button", name="Link Account").click()
    sign_in_in_popup(popup_info.value, admin_a.email)
    confirm_in_panel(frame.locator("#sp-panel"))
    expect(frame.locator("#sp-panel")).to_have_attribute(
        "data-link-state", "connected", timeout=20000
    )
    # Chromium reports the expected 401 of the handoff as a failed resource load.
    assert [e for e in console_errors if "status of 401" not in e] == []
