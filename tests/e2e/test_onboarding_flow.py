"""The whole customer-owned onboarding in Chromium against the simulator, with and without
JavaScript: live messages, the downloaded certificate uploaded to the simulator, Link Account,
a revoked permission seen on Check again, and nothing lost across a reload and a restart."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from playwright.sync_api import expect

from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.e2e

ALL_GRAPH = (
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
    "User.EnableDisableAccount.All",
)
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"


@pytest.fixture
def tenants(sim):
    """The customer's tenant (simulated global cloud) and someone else's in the China cloud."""
    home = sim.create_tenant(
        cloud="global", domains=["contoso.onmicrosoft.com"], display_name="Contoso Ltd"
    )
    app = sim.create_app(home["id"], display_name="HR sync")
    sim.create_tenant(cloud="china", domains=["fabrikam.partner.onmschina.cn"])
    return {"id": home["id"], "domain": "contoso.onmicrosoft.com", "client_id": app["app_id"]}


def sign_in(page, portal, email):
    page.goto(portal.url("/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/$"))


def choose_customer_owned(page, portal):
    page.goto(portal.url("/connections/new"))
    page.get_by_label("Customer owned application").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r".*/connections/[0-9a-f]{32}/setup$"))


def download_cer(page) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("link", name="Certificate (.cer)").click()
    download = info.value
    assert download.suggested_filename.endswith(".cer")
    with open(download.path(), "rb") as fh:
        return fh.read()


def grant_everything(sim, tenants):
    for permission in ALL_GRAPH:
        sim.grant_app_role(tenants["id"], tenants["client_id"], permission)
    sim.assign_directory_role(tenants["id"], tenants["client_id"], USER_ADMIN)


def check_downloaded(der: bytes, page) -> None:
    cert = x509.load_der_x509_certificate(der)
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
    expect(page.locator("#cert-thumbprint")).to_have_text(thumbprint)


def test_onboarding_in_chromium(page, live_portal, admin_a, sim, tenants, console_errors):
    portal = live_portal(CERT_KEY_SIZE=2048)
    sign_in(page, portal, admin_a.email)
    choose_customer_owned(page, portal)

    page.get_by_label("Simulator: global service").check()
    expect(page.locator("#step-cloud")).to_contain_text("Saved: Simulator: global service.")

    tenant = page.locator("#tenant_input")
    # Typed key by key, as a person does: the step was just re-rendered by the cloud save, and a
    # single synthetic input event can arrive before htmx has wired up the new field.
    tenant.press_sequentially("contoso..com")
    expect(page.locator("#tenant-format")).to_contain_text("That domain name isn't valid.")

    tenant.fill("fabrikam.partner.onmschina.cn")
    expect(page.locator("#tenant-format")).to_contain_text("Looks like a domain name")
    tenant.press("Tab")
    expect(page.locator("#ids-status")).to_contain_text(
        "This tenant is in another cloud: Simulator: China"
    )
    expect(page.get_by_role("button", name="Switch to Simulator: China")).to_be_visible()

    tenant.fill(tenants["domain"])
    tenant.press("Tab")
    expect(page.locator("#ids-status")).to_contain_text(
        "Found your tenant in Simulator: global service."
    )
    expect(page.locator("#tenant-guid")).to_have_text(tenants["id"])

    client = page.locator("#client_id")
    client.fill("not-a-guid")
    expect(page.locator("#client-format")).to_contain_text("is a GUID like")
    client.fill(tenants["client_id"])
    expect(page.locator("#client-format")).to_contain_text("Looks like a client ID.")
    client.press("Tab")
    expect(page.locator("#ids-status")).to_contain_text("Client ID: Looks like a client ID.")

    # A reload in the middle of the wizard loses nothing.
    page.reload()
    expect(page.locator("#tenant_input")).to_have_value(tenants["domain"])
    expect(page.locator("#client_id")).to_have_value(tenants["client_id"])
    expect(page.get_by_label("Simulator: global service")).to_be_checked()
    expect(page.locator("#tenant-guid")).to_have_text(tenants["id"])

    page.get_by_role("button", name="I have registered the application: continue").click()
    expect(page.locator("#cert-thumbprint")).to_be_visible()
    der = download_cer(page)
    check_downloaded(der, page)
    sim.upload_certificate(tenants["id"], tenants["client_id"], der)
    grant_everything(sim, tenants)

    # A server restart loses nothing either.
    portal.restart()
    page.reload()
    expect(page.locator("#tenant_input")).to_have_value(tenants["domain"])
    expect(page.locator("#client_id")).to_have_value(tenants["client_id"])
    check_downloaded(der, page)

    # Progress is visible while Microsoft answers slowly (a background job, each step as it
    # completes); the button can't be pressed twice meanwhile.
    sim.set_fault("token", "latency", ms=3000, times=1)
    link = page.get_by_role("button", name="Link Account")
    link.click()
    progress = page.locator("#job-check")
    expect(progress).to_contain_text("Checking with Microsoft…")
    expect(progress).to_contain_text("Find your tenant in the chosen cloud")
    expect(link).to_have_count(0)
    checklist = page.locator("#checklist")
    expect(checklist).to_contain_text("Linked.")
    expect(checklist.locator("li.check.ok")).to_have_count(5)
    expect(checklist.locator("li.check.missing")).to_have_count(0)

    sim.revoke_app_role(tenants["id"], tenants["client_id"], "Directory.ReadWrite.All")
    page.get_by_role("button", name="Check again").click()
    missing = checklist.locator("li.check.missing")
    expect(missing).to_have_count(1)
    expect(missing).to_contain_text("Microsoft Graph: Directory.ReadWrite.All")
    expect(missing).to_contain_text("Application permissions → Directory.ReadWrite.All")
    expect(missing.get_by_role("link")).to_have_attribute(
        "href", re.compile("/appId/" + tenants["client_id"])
    )
    expect(checklist.locator("li.check.ok")).to_have_count(4)
    assert console_errors == []


def test_onboarding_without_javascript(
    browser, browser_context_args, live_portal, admin_a, sim, tenants
):
    context = browser.new_context(**browser_context_args, java_script_enabled=False)
    page = context.new_page()
    try:
        portal = live_portal(CERT_KEY_SIZE=2048)
        sign_in(page, portal, admin_a.email)
        choose_customer_owned(page, portal)

        page.get_by_label("Simulator: global service").check()
        page.get_by_role("button", name="Save cloud").click()
        expect(page.locator("#step-cloud")).to_contain_text("Saved: Simulator: global service.")
        assert page.url.endswith("#step-cloud")

        submit = page.get_by_role("button", name="Save and look up the tenant")
        page.locator("#tenant_input").fill("contoso..com")
        submit.click()
        expect(page.locator("#ids-status")).to_contain_text("That domain name isn't valid.")

        page.locator("#tenant_input").fill("fabrikam.partner.onmschina.cn")
        submit.click()
        expect(page.locator("#ids-status")).to_contain_text(
            "This tenant is in another cloud: Simulator: China"
        )

        page.locator("#tenant_input").fill(tenants["domain"])
        page.locator("#client_id").fill(tenants["client_id"])
        submit.click()
        expect(page.locator("#tenant-guid")).to_have_text(tenants["id"])
        expect(page.locator("#ids-status")).to_contain_text("Client ID: Looks like a client ID.")

        page.get_by_role("button", name="I have registered the application: continue").click()
        der = download_cer(page)
        check_downloaded(der, page)
        sim.upload_certificate(tenants["id"], tenants["client_id"], der)
        grant_everything(sim, tenants)

        portal.restart()
        page.reload()
        expect(page.locator("#client_id")).to_have_value(tenants["client_id"])

        page.get_by_role("button", name="Link Account").click()
        checklist = page.locator("#checklist")
        expect(checklist).to_contain_text("Linked.")
        expect(checklist.locator("li.check.ok")).to_have_count(5)

        sim.revoke_app_role(tenants["id"], tenants["client_id"], "User.ReadWrite.All")
        page.get_by_role("button", name="Check again").click()
        missing = checklist.locator("li.check.missing")
        expect(missing).to_have_count(1)
        expect(missing).to_contain_text("Microsoft Graph: User.ReadWrite.All")
        expect(checklist.locator("li.check.ok")).to_have_count(4)
    finally:
        context.close()


def test_admin_consent_then_the_checklist_polls_until_replicated(
    page, portal_config, sim, admin_a, tenants, console_errors
):
    """The consent button goes to the (simulated) Microsoft and back; grants show up late, so
    the checklist re-checks itself until every item is ✓."""
    import socket

    from portal import create_app
    from tests.e2e.conftest import LiveServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    public = f"http://127.0.0.1:{port}"
    portal = LiveServer(
        lambda: create_app({**portal_config, "CERT_KEY_SIZE": 2048, "PUBLIC_URL": public})
    )
    portal.port = port
    portal.start()
    try:
        app = sim.create_app(
            tenants["id"],
            display_name="HR sync (consent)",
            redirect_uris=[public + "/connections/admin-consent/return"],
        )
        for permission in ALL_GRAPH:
            sim.add_required_permission(app["app_id"], permission)
        sim.create_user(tenants["id"], "it-admin@contoso.onmicrosoft.com", admin=True)
        sim.set_interaction("consent", user="it-admin@contoso.onmicrosoft.com")

        sign_in(page, portal, admin_a.email)
        choose_customer_owned(page, portal)
        page.get_by_label("Simulator: global service").check()
        expect(page.locator("#step-cloud")).to_contain_text("Saved:")
        page.locator("#tenant_input").fill(tenants["domain"])
        page.locator("#client_id").fill(app["app_id"])
        page.locator("#client_id").press("Tab")
        expect(page.locator("#tenant-guid")).to_have_text(tenants["id"])
        page.get_by_role("button", name="I have registered the application: continue").click()
        sim.upload_certificate(tenants["id"], app["app_id"], download_cer(page))
        sim.assign_directory_role(tenants["id"], app["app_id"], USER_ADMIN)

        sim.set_replication_delay(5)
        page.get_by_role("button", name="Grant admin consent with Microsoft").click()
        page.wait_for_url(re.compile(r".*/setup#step-link$"))
        checklist = page.locator("#checklist")
        expect(page.locator("#alerts")).to_contain_text("Admin consent recorded")
        expect(checklist).to_contain_text("We check again in a few seconds")
        expect(checklist).to_contain_text("Linked.", timeout=30_000)
        expect(checklist.locator("li.check.ok")).to_have_count(5)
        expect(checklist).not_to_contain_text("We check again")
        assert console_errors == []
    finally:
        portal.stop()
