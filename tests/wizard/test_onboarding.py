"""The customer-owned onboarding wizard: every step and fragment, with htmx and as plain posts.

The portal runs with the simulator's clouds configured (``sim-global``, ``sim-china``, ...);
tenants live in the simulator, so discovery is the real HTTP exchange.
"""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from portal import create_app, storage
from portal.connections import credentials
from portal.storage import db, vault
from tests.conftest import csrf_token
from tests.wizard.helpers import (
    GUID,
    HX,
    connection,
    follow_job,
    ready,
    start_wizard,
    text,
)

# --- Choosing the kind -----------------------------------------------------------------------


def test_new_connection_page_explains_both_kinds(client_a):
    body = text(client_a.get("/connections/new"))
    assert "Customer owned application" in body and "Service provider application" in body
    assert "certificate we create" in body and "no one signs in at run time" in body
    assert "an administrator signs in to Microsoft and consents" in body


def test_create_customer_owned_goes_to_wizard_as_draft(app, client_a, admin_a):
    wizard = start_wizard(client_a)
    item = connection(app, wizard.id)
    assert item.kind == "customer_owned" and item.state == "draft"
    with app.app_context():
        audit = storage.list_audit_events(connection_id=wizard.id, action="connection.create")
    assert audit and audit[0].actor_user_id == admin_a.id
    body = wizard.page()
    for title in (
        "National cloud",
        "Tenant ID and client ID",
        "Register the application",
        "Certificate",
        "Permissions",
        "Link Account",
    ):
        assert title in body


def test_create_service_provider_goes_to_connection_page(app, client_a):
    token = csrf_token(client_a, "/connections/new")
    response = client_a.post(
        "/connections/new", data={"kind": "service_provider", "csrf_token": token}
    )
    assert response.status_code == 302
    assert re.fullmatch(r"/connections/[0-9a-f]{32}", response.headers["Location"])
    assert client_a.get(response.headers["Location"]).status_code == 200


def test_create_needs_a_kind_and_csrf(client_a):
    token = csrf_token(client_a, "/connections/new")
    response = client_a.post("/connections/new", data={"kind": "bogus", "csrf_token": token})
    assert response.headers["Location"] == "/connections/new"
    assert client_a.post("/connections/new", data={"kind": "customer_owned"}).status_code == 400


# --- Step 1: cloud ---------------------------------------------------------------------------


def test_cloud_step_lists_builtin_and_extra_clouds_with_explanations(wizard):
    body = wizard.page()
    for label in (
        "Microsoft Entra ID (global service)",
        "Microsoft Graph for US Government L4",
        "Microsoft Graph for US Government L5 (DoD)",
        "Microsoft Entra China operated by 21Vianet",
        "Simulator: global service",
    ):
        assert label in body
    assert "US Government GCC High (Impact Level 4)" in body
    assert "The separate cloud in China run by a local partner." in body


def test_saving_the_cloud_htmx_returns_the_section_and_dependent_sections(app, wizard):
    response = wizard.cloud("sim-global")
    body = text(response)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert body.lstrip().startswith('<section id="step-cloud"')
    assert "Saved: Simulator: global service." in body
    # Deep links of later sections follow the cloud, out of band.
    for section in (
        "wizard-progress",
        "step-ids",
        "step-register",
        "step-certificate",
        "step-permissions",
        "step-link",
    ):
        assert re.search(rf'id="{section}"[^>]*hx-swap-oob="true"', body), section
    # Only those: a region inside one of them (the checklist in step 6, the lookup's answer in
    # step 2) is swapped with its parent, not pulled out on its own.
    assert body.count("hx-swap-oob") == 6
    assert "/_sim/admin" in body
    item = connection(app, wizard.id)
    assert item.cloud == "sim-global" and item.wizard_step == 2


def test_unknown_cloud_is_a_message_not_an_error(app, wizard):
    response = wizard.cloud("mars")
    assert response.status_code == 200
    assert "Choose one of the clouds listed." in text(response)
    assert connection(app, wizard.id).cloud is None


def test_cloud_without_javascript_redirects_to_the_section(app, wizard):
    response = wizard.cloud("global", htmx=False)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/connections/{wizard.id}/setup#step-cloud")
    assert 'value="global" checked' in wizard.page()


# --- Step 2: live format validation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (GUID, "Looks like a tenant ID."),
        ("{" + GUID.upper() + "}", "Looks like a tenant ID."),
        ("contoso.onmicrosoft.com", "Looks like a domain name"),
        ("72f988bf-86f1-41af-91ab-2d7cd011db4", "it has 31 hexadecimal digits: a tenant ID has 32"),
        ("72f988bf86f141af91ab2d7cd011db47", "it has 32 hexadecimal digits"),
        ("contoso", "A domain needs a dot"),
        ("contoso..com", "That domain name isn't valid."),
        ("contoso.com/evil", "That isn't a tenant ID or domain name."),
        ("10.0.0.1", "must end in letters"),
        ("conto so.com", "Remove the spaces"),
    ],
)
def test_live_tenant_format_messages(client_a, typed, expected):
    response = client_a.get(
        "/connections/validate/tenant", query_string={"tenant_input": typed}, headers=HX
    )
    assert response.status_code == 200
    body = text(response)
    assert body.startswith('<p id="tenant-format"') and expected in body


def test_live_validation_writes_nothing_and_calls_nobody(app, client_a, sim):
    def snapshot():
        with app.app_context():
            database = db.get_db()
            return {
                t: database.execute(f"SELECT * FROM [{t}]").fetchall()
                for t in database.table_names()
            }

    before, calls = snapshot(), len(sim.requests())
    for typed in ("contoso.onmicrosoft.com", GUID, "bad..", ""):
        assert (
            client_a.get(
                "/connections/validate/tenant", query_string={"tenant_input": typed}, headers=HX
            ).status_code
            == 200
        )
        assert (
            client_a.get(
                "/connections/validate/client", query_string={"client_id": typed}, headers=HX
            ).status_code
            == 200
        )
    assert snapshot() == before
    assert len(sim.requests()) == calls


def test_live_validation_needs_sign_in(client):
    response = client.get(
        "/connections/validate/tenant", query_string={"tenant_input": "x"}, headers=HX
    )
    assert response.headers.get("HX-Redirect", "").startswith("/login")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (GUID, "Looks like a client ID."),
        ("my-app", "The Application (client) ID is a GUID"),
        ("contoso.onmicrosoft.com", "The Application (client) ID is a GUID"),
    ],
)
def test_live_client_id_format_messages(client_a, typed, expected):
    body = text(
        client_a.get("/connections/validate/client", query_string={"client_id": typed}, headers=HX)
    )
    assert body.startswith('<p id="client-format"') and expected in body


# --- Step 2: saving and discovery ------------------------------------------------------------


def test_domain_found_shows_the_resolved_guid(app, wizard, tenant):
    wizard.cloud("sim-global")
    response = wizard.ids(tenant["domain"], tenant["client_id"])
    body = text(response)
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="ids-status"')
    assert "Found your tenant in Simulator: global service." in body
    assert f'<code id="tenant-guid">{tenant["id"]}</code>' in body
    assert "(the ID of contoso.onmicrosoft.com)" in body
    assert "Looks like a client ID" in body
    # the live format messages are cleared, the deep links now name the app
    assert re.search(r'id="tenant-format"[^>]*hx-swap-oob="true"', body)
    assert re.search(r'id="step-register"[^>]*hx-swap-oob="true"', body)
    item = connection(app, wizard.id)
    assert item.tenant_id == tenant["id"] and item.tenant_input == tenant["domain"]
    assert item.client_id == tenant["client_id"] and item.wizard_step == 3
    assert item.draft["tenant_input"] == tenant["domain"]


def test_guid_found(app, wizard, tenant):
    wizard.cloud("sim-global")
    body = text(wizard.ids(tenant["id"].upper()))
    assert f'<code id="tenant-guid">{tenant["id"]}</code>' in body
    assert "(the ID of" not in body
    assert connection(app, wizard.id).tenant_id == tenant["id"]


def test_tenant_not_found_in_this_cloud(app, wizard, sim):
    wizard.cloud("sim-global")
    body = text(wizard.ids("nobody.onmicrosoft.com"))
    assert "We couldn't find this tenant in Simulator: global service." in body
    assert connection(app, wizard.id).tenant_id is None


def test_tenant_in_another_cloud_offers_a_one_click_switch(app, wizard, sim):
    china = sim.create_tenant(cloud="china", domains=["fabrikam.partner.onmschina.cn"])
    wizard.cloud("sim-global")
    body = text(wizard.ids("fabrikam.partner.onmschina.cn"))
    assert "This tenant is in another cloud: Simulator: China" in body
    assert 'name="cloud" value="sim-china"' in body
    assert "Switch to Simulator: China" in body
    assert connection(app, wizard.id).tenant_id is None
    # The switch posts the cloud change; the typed tenant is looked up again there.
    switched = text(wizard.cloud("sim-china"))
    assert "Found your tenant in Simulator: China" in switched
    item = connection(app, wizard.id)
    assert item.cloud == "sim-china" and item.tenant_id == china["id"]


def test_malformed_tenant_is_not_sent_anywhere(app, wizard, sim):
    wizard.cloud("sim-global")
    calls = len(sim.requests())
    body = text(wizard.ids("contoso..com", "not-a-guid"))
    assert "That domain name isn't valid." in body
    assert "The Application (client) ID is a GUID" in body
    assert len(sim.requests()) == calls
    item = connection(app, wizard.id)
    assert item.tenant_id is None and item.client_id is None
    assert item.draft["tenant_input"] == "contoso..com"  # what was typed is kept
    assert "it has 31 hexadecimal digits" in text(wizard.ids(GUID[:-1]))
    assert len(sim.requests()) == calls


def test_microsoft_unreachable_is_transient_with_try_again(app, wizard, sim):
    wizard.cloud("sim-global")
    sim.set_fault("openid-configuration", "status", status=503)
    body = text(wizard.ids("contoso.onmicrosoft.com"))
    assert "We couldn't reach Microsoft to look the tenant up." in body
    assert 'form="ids-form">Try again' in body


def test_tenant_before_cloud_asks_for_the_cloud(wizard):
    body = text(wizard.ids("contoso.onmicrosoft.com"))
    assert "Choose the cloud first (step 1)." in body


def test_ids_without_javascript_redirect_and_show_the_lookup(app, wizard, tenant):
    wizard.cloud("sim-global", htmx=False)
    response = wizard.ids(tenant["domain"], tenant["client_id"], htmx=False)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("#step-ids")
    body = wizard.page()
    assert f'value="{tenant["domain"]}"' in body and f'value="{tenant["client_id"]}"' in body
    assert f'<code id="tenant-guid">{tenant["id"]}</code>' in body


def test_every_input_survives_a_server_restart(app_config, wizard, tenant):
    wizard.cloud("sim-global")
    wizard.ids(tenant["domain"], "half-typed-client")
    restarted = create_app(dict(app_config))  # same instance folder and database
    client = restarted.test_client()
    client.set_cookie("session", wizard.client.get_cookie("session").value)
    body = client.get(wizard.url).get_data(as_text=True)
    assert 'value="sim-global" checked' in body
    assert f'value="{tenant["domain"]}"' in body and 'value="half-typed-client"' in body
    assert f'<code id="tenant-guid">{tenant["id"]}</code>' in body
    assert 'aria-current="step"' in body


# --- Steps 3 and 4: registration, certificate ------------------------------------------------


def test_registration_instructions_follow_the_cloud(wizard, tenant):
    wizard.cloud("sim-global")
    body = wizard.page()
    assert "single tenant" in body and "Leave the <strong>Redirect URI</strong> empty" in body
    assert "https://portal.example/connections/admin-consent/return" in body
    assert re.search(
        r'href="https://127\.0\.0\.1:\d+/_sim/admin/?#view/'
        r'Microsoft_AAD_RegisteredApps/ApplicationsListBlade"',
        body,
    )


def test_continue_creates_the_certificate_and_waits(app, wizard, tenant):
    wizard.cloud("sim-global")
    wizard.ids(tenant["domain"], tenant["client_id"])
    response = wizard.post(f"{wizard.url}/registered")
    body = text(response)
    assert body.lstrip().startswith('<section id="step-certificate"')
    with app.app_context():
        cert = storage.active_certificate(wizard.id)
        key = credentials.private_key(cert)
    assert b"PRIVATE KEY" in key and "PRIVATE KEY" not in body
    assert f'<code id="cert-thumbprint">{cert.thumbprint_sha1}</code>' in body
    assert "Certificates & secrets → Certificates → Upload certificate" in body
    assert f"/appId/{tenant['client_id']}" in body  # deep link to this app's Credentials blade
    item = connection(app, wizard.id)
    assert item.state == "waiting" and item.wizard_step == 4
    # A second continue keeps the same certificate.
    wizard.post(f"{wizard.url}/registered")
    with app.app_context():
        assert [c.id for c in storage.list_certificates(wizard.id)] == [cert.id]


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("cer", "application/pkix-cert"),
        ("pem", "application/x-pem-file"),
        ("crt", "application/x-x509-ca-cert"),
    ],
)
def test_certificate_downloads(app, wizard, fmt, mime):
    wizard.post(f"{wizard.url}/certificate")
    with app.app_context():
        cert = storage.active_certificate(wizard.id)
    response = wizard.client.get(f"/connections/{wizard.id}/certificate.{fmt}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == mime
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    assert response.headers["Content-Disposition"].endswith(f'.{fmt}"')
    data = response.data
    parsed = (
        x509.load_der_x509_certificate(data)
        if fmt == "cer"
        else x509.load_pem_x509_certificate(data)
    )
    assert parsed.fingerprint(hashes.SHA1()).hex().upper() == cert.thumbprint_sha1
    assert b"PRIVATE" not in data
    assert parsed.public_key().key_size == 2048


def test_no_certificate_no_download(wizard):
    assert wizard.client.get(f"/connections/{wizard.id}/certificate.cer").status_code == 404
    wizard.post(f"{wizard.url}/certificate")
    assert wizard.client.get(f"/connections/{wizard.id}/certificate.pfx").status_code == 404


def test_changing_cloud_tenant_or_client_keeps_the_certificate(app, wizard, tenant, sim):
    wizard.cloud("sim-global")
    wizard.ids(tenant["domain"], tenant["client_id"])
    wizard.post(f"{wizard.url}/certificate")
    with app.app_context():
        before = storage.active_certificate(wizard.id)
    wizard.cloud("sim-china")
    wizard.ids("other.onmicrosoft.com", GUID)
    with app.app_context():
        assert storage.active_certificate(wizard.id) == before


def test_replacing_the_certificate_retires_the_old_one(app, wizard):
    wizard.post(f"{wizard.url}/certificate")
    with app.app_context():
        old = storage.active_certificate(wizard.id)
    wizard.post(f"{wizard.url}/certificate", {"replace": "1"})
    with app.app_context():
        new = storage.active_certificate(wizard.id)
        statuses = {c.id: c.status for c in storage.list_certificates(wizard.id)}
    assert new.id != old.id and statuses == {new.id: "active", old.id: "retired"}


def test_certificate_without_javascript(app, wizard):
    response = wizard.post(f"{wizard.url}/certificate", htmx=False)
    assert response.headers["Location"].endswith("#step-certificate")
    assert "Download:" in wizard.page()


# --- Step 5: permissions ---------------------------------------------------------------------


def test_permissions_with_the_products_reasons(wizard):
    body = wizard.page()
    for name, why in (
        ("User.ReadWrite.All", "We read and update user profiles without a signed-in user."),
        ("Group.ReadWrite.All", "We create groups, and read and change their properties"),
        ("Directory.ReadWrite.All", "Needed to reset passwords."),
        ("User.EnableDisableAccount.All", "We enable and disable user accounts."),
    ):
        assert f"<code>{name}</code>" in body and why in body
    assert "User Administrator" in body
    assert "Required together with enabling and disabling accounts." in body


def test_exchange_toggle_is_saved(app, wizard):
    body = text(wizard.post(f"{wizard.url}/exchange", {"exchange": "1"}))
    assert body.lstrip().startswith('<section id="step-permissions"')
    assert "Exchange.ManageAsApp" in body and "Exchange Administrator → Add assignments" in body
    assert connection(app, wizard.id).exchange_enabled is True
    wizard.post(f"{wizard.url}/exchange", {}, htmx=False)
    assert connection(app, wizard.id).exchange_enabled is False


# --- Access ----------------------------------------------------------------------------------


def test_other_organization_gets_404_everywhere(client_b, wizard):
    token = csrf_token(client_b, "/connections/new")
    base = f"/connections/{wizard.id}"
    for path in (f"{base}/setup", f"{base}/certificate.cer"):
        assert client_b.get(path).status_code == 404
    for path in (
        f"{base}/setup/cloud",
        f"{base}/setup/ids",
        f"{base}/setup/registered",
        f"{base}/setup/certificate",
        f"{base}/setup/uploaded",
        f"{base}/setup/exchange",
        f"{base}/admin-consent",
        f"{base}/check",
    ):
        assert (
            client_b.post(
                path, data={"csrf_token": token, "cloud": "global"}, headers=HX
            ).status_code
            == 404
        ), path


def test_support_is_read_only(app, support_client, wizard):
    wizard.post(f"{wizard.url}/certificate")
    response = support_client.get(wizard.url)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/connections/{wizard.id}"
    body = support_client.get(f"/connections/{wizard.id}").get_data(as_text=True)
    assert "<form" not in body.split("<main", 1)[1]
    assert "PRIVATE KEY" not in body
    token = csrf_token(support_client, f"/connections/{wizard.id}")
    for path in ("setup/cloud", "setup/certificate", "admin-consent", "check"):
        assert (
            support_client.post(
                f"/connections/{wizard.id}/{path}", data={"csrf_token": token}
            ).status_code
            == 403
        )
    assert support_client.get("/connections/new").status_code == 403


# --- Page plumbing ---------------------------------------------------------------------------


def test_one_section_as_a_fragment(wizard):
    response = wizard.client.get(wizard.url, query_string={"section": "permissions"}, headers=HX)
    body = text(response)
    assert body.lstrip().startswith('<section id="step-permissions"')
    assert "<html" not in body and "hx-swap-oob" not in body
    assert "<html" in wizard.page()


def test_service_provider_connection_has_no_wizard(client_a, org_a, make_connection):
    item = make_connection(org_a, kind="service_provider")
    response = client_a.get(f"/connections/{item.id}/setup")
    assert response.headers["Location"] == f"/connections/{item.id}"


@pytest.fixture
def framed_config(app_config):
    app_config["FRAME_ANCESTORS"] = ["https://host.example"]
    return app_config


def test_wizard_pages_may_be_framed_by_the_host_product(framed_config, client_a):
    wizard = start_wizard(client_a)
    for path in ("/connections/new", wizard.url, f"/connections/{wizard.id}"):
        response = client_a.get(path)
        assert (
            "frame-ancestors https://host.example" in response.headers["Content-Security-Policy"]
        ), path
        assert "X-Frame-Options" not in response.headers


def test_continue_after_upload_checks_the_certificate_then_moves_to_the_permissions(
    app, wizard, sim, tenant
):
    """ "I have uploaded": Microsoft issues a token signed with the certificate, step 4 says
    so and step 5 opens; nothing is recorded as a check of the connection."""
    ready(app, wizard, sim, tenant, grants=(), roles=())
    response = wizard.post(f"{wizard.url}/uploaded")
    assert 'hx-trigger="every 1s"' in text(response)  # the progress, at once
    body = text(follow_job(wizard.client, response))
    assert body.lstrip().startswith('<section id="step-certificate"')
    assert "Certificate accepted." in body and "every 1s" not in body
    assert re.search(r'id="step-permissions" class="step current"[^>]*hx-swap-oob="true"', body)
    item = connection(app, wizard.id)
    assert item.wizard_step == 5 and item.last_check is None
    with app.app_context():
        assert storage.list_health_events(wizard.id) == []
    response = wizard.post(f"{wizard.url}/uploaded", htmx=False)
    assert response.headers["Location"].endswith("#step-certificate")


def test_continue_before_the_upload_says_microsoft_refused_the_certificate(
    app, wizard, sim, tenant
):
    ready(app, wizard, sim, tenant, grants=(), roles=(), upload=False)
    body = text(follow_job(wizard.client, wizard.post(f"{wizard.url}/uploaded")))
    assert "Microsoft did not accept the certificate." in body
    assert "Certificate accepted." not in body
    assert connection(app, wizard.id).wizard_step == 4


@pytest.mark.parametrize(
    "path, data",
    [
        ("setup/cloud", {"cloud": "sim-china"}),
        ("setup/ids", {"tenant_input": "contoso.onmicrosoft.com", "client_id": GUID}),
        ("setup/registered", {}),
        ("setup/certificate", {"replace": "1"}),
        ("setup/uploaded", {}),
        ("setup/exchange", {"exchange": "1"}),
        ("admin-consent", {}),
        ("certificate/rotate", {}),
        ("certificate/confirm", {}),
    ],
)
def test_wizard_steps_refuse_a_service_provider_connection(
    app, client_a, org_a, make_connection, path, data
):
    """404 like another organization's connection, and nothing written: these steps would set
    a customer-owned application's tenant, client, certificate or state on it."""
    item = make_connection(
        org_a,
        kind="service_provider",
        cloud="sim-global",
        tenant_id="3f2c9c52-6f0a-4a55-9d1a-2a7f7e1c0b11",
        client_id=GUID,
    )
    token = csrf_token(client_a, "/connections/new")
    for headers in (HX, {}):
        response = client_a.post(
            f"/connections/{item.id}/{path}", data={**data, "csrf_token": token}, headers=headers
        )
        assert response.status_code == 404
        assert "portal_consent" not in response.headers.get("Set-Cookie", "")
    with app.app_context():
        assert storage.get_connection(item.id) == item
        assert storage.list_certificates(item.id) == []
        assert storage.list_audit_events(connection_id=item.id) == []


def test_the_upload_check_with_a_key_our_keyring_lacks_says_it_is_ours(app, wizard, sim, tenant):
    """Another process rotated the keyring: the upload check cannot sign, which is our
    problem (alarm, health record), never the customer's ("try again", "new certificate")."""
    ready(app, wizard, sim, tenant, grants=(), roles=())
    rotated = vault.Keyring.generate(existing=app.config["VAULT_KEYS"])
    with app.app_context():
        assert storage.rotate_secrets(rotated)["rotated"] >= 1
    body = text(follow_job(wizard.client, wizard.post(f"{wizard.url}/uploaded")))
    assert credentials.OUR_SIDE_MESSAGE in body
    assert "We can't read the private key" not in body and "Please try again" not in body
    item = connection(app, wizard.id)
    assert (item.state, item.error_class) == ("waiting", "our_config")
