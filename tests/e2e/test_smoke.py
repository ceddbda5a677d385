"""The browser infrastructure itself: Chromium signs in to a live portal over loopback."""

import pytest

pytestmark = pytest.mark.e2e


def test_sign_in_in_chromium(page, live_portal, admin_a, console_errors):
    portal = live_portal()
    page.goto(portal.url("/login"))
    page.get_by_label("Email").fill(admin_a.email)
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/login" not in page.url
    assert page.get_by_text("Contoso").first.is_visible()
    # Development over plain http on loopback: HttpOnly and Lax; Secure is dropped only here.
    cookie = next(c for c in page.context.cookies() if c["name"] == "session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    assert console_errors == []
