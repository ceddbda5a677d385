"""Certificate rotation from the connection page: the connection keeps working throughout, the
new certificate replaces the old one only once every item is proven with it; expiry warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from portal import storage
from portal.connections import verification
from tests.wizard.helpers import connection, link, ready, text


def connected(app, wizard, sim, tenant):
    """A linked customer-owned connection; returns its certificate record."""
    cert = ready(app, wizard, sim, tenant)
    link(wizard)
    assert connection(app, wizard.id).state == "connected"
    return cert


def rotate(wizard):
    return wizard.post(f"/connections/{wizard.id}/certificate/rotate", htmx=False)


def confirm(wizard):
    return wizard.post(f"/connections/{wizard.id}/certificate/confirm", htmx=False)


def page(wizard) -> str:
    return text(wizard.client.get(f"/connections/{wizard.id}"))


def test_rotation_keeps_the_connection_working_and_switches_only_when_proven(
    app, wizard, sim, tenant
):
    old = connected(app, wizard, sim, tenant)
    assert "Start certificate rotation" in page(wizard)

    answer = rotate(wizard)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("#certificate")
    with app.app_context():
        new = storage.pending_certificate(wizard.id)
        assert new is not None and new.id != old.id
        assert storage.active_certificate(wizard.id).id == old.id  # still signing with the old one
    body = page(wizard)
    assert "Rotation in progress" in body and new.thumbprint_sha1 in body
    assert "which=pending" in body  # the new certificate's downloads
    again = rotate(wizard)  # a second click does not pile up certificates
    assert again.status_code == 302
    with app.app_context():
        assert [c.status for c in storage.list_certificates(wizard.id)].count("pending") == 1

    # Meanwhile the connection is checked with the old certificate, as before.
    assert "Linked." in text(link(wizard))

    # Not uploaded yet: nothing changes, the old certificate stays in use.
    confirm(wizard)
    assert "not in use yet" in page(wizard)
    with app.app_context():
        assert storage.active_certificate(wizard.id).id == old.id
    assert connection(app, wizard.id).state == "connected"

    downloaded = wizard.client.get(f"/connections/{wizard.id}/certificate.pem?which=pending")
    assert downloaded.status_code == 200
    sha1 = x509.load_pem_x509_certificate(downloaded.data).fingerprint(hashes.SHA1())
    assert sha1.hex().upper() == new.thumbprint_sha1  # the download is the new certificate
    sim.upload_certificate(tenant["id"], tenant["client_id"], downloaded.data)
    confirm(wizard)
    body = page(wizard)
    assert "now in use" in body and old.thumbprint_sha1 in body  # tells which one to delete
    with app.app_context():
        assert storage.active_certificate(wizard.id).id == new.id
        assert storage.get_certificate(old.id).status == "retired"
        assert storage.pending_certificate(wizard.id) is None
        actions = [e.action for e in storage.list_audit_events(connection_id=wizard.id)]
    assert "certificate.rotate" in actions

    # The customer deletes the old certificate: the connection keeps working with the new one.
    sim.remove_certificate(tenant["id"], tenant["client_id"], old.thumbprint_sha1)
    assert "Linked." in text(link(wizard))
    assert connection(app, wizard.id).state == "connected"


def test_expiry_warning_shows_early(app, wizard, sim, tenant):
    connected(app, wizard, sim, tenant)
    with app.app_context():
        cert = storage.active_certificate(wizard.id)
    soon = (datetime.now(UTC) + timedelta(days=10, hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with app.app_context():
        storage.get_db().execute(
            "UPDATE certificates SET not_after = ? WHERE id = ?", [soon, cert.id]
        )
    assert "expires in 10 days" in page(wizard)
    with app.app_context():
        storage.get_db().execute(
            "UPDATE certificates SET not_after = ? WHERE id = ?", [past, cert.id]
        )
    assert "has expired" in page(wizard)
    assert verification.days_left(past) < 0


def test_support_sees_the_rotation_but_cannot_act(app, wizard, sim, tenant, support_client):
    connected(app, wizard, sim, tenant)
    rotate(wizard)
    body = text(support_client.get(f"/connections/{wizard.id}"))
    assert "Rotation in progress" in body
    assert "Check the new certificate</button>" not in body
    assert "Start certificate rotation" not in body


def test_other_organization_cannot_rotate(app, wizard, sim, tenant, client_b):
    from tests.conftest import csrf_token

    connected(app, wizard, sim, tenant)
    token = csrf_token(client_b, "/")
    assert (
        client_b.post(
            f"/connections/{wizard.id}/certificate/rotate", data={"csrf_token": token}
        ).status_code
        == 404
    )
    with app.app_context():
        assert storage.pending_certificate(wizard.id) is None


def test_replacing_a_linked_certificate_in_the_wizard_rotates_instead(app, wizard, sim, tenant):
    old = connected(app, wizard, sim, tenant)
    section = wizard.client.get(f"{wizard.url}?section=certificate")
    assert "Rotate the certificate" in text(section) and 'name="replace"' not in text(section)
    answer = wizard.post(f"{wizard.url}/certificate", {"replace": "1"})  # e.g. a stale page
    assert answer.headers["HX-Redirect"].endswith(f"/connections/{wizard.id}#certificate")
    with app.app_context():
        assert storage.active_certificate(wizard.id).id == old.id  # still signing
        assert storage.pending_certificate(wizard.id) is not None
    assert "Linked." in text(link(wizard))


def test_rotation_destroys_the_old_private_key_and_keeps_its_public_part(app, wizard, sim, tenant):
    old = connected(app, wizard, sim, tenant)
    rotate(wizard)
    with app.app_context():
        new = storage.pending_certificate(wizard.id)
        assert storage.get_secret("certificates", old.id, "private_key") is not None
    downloaded = wizard.client.get(f"/connections/{wizard.id}/certificate.pem?which=pending")
    sim.upload_certificate(tenant["id"], tenant["client_id"], downloaded.data)
    confirm(wizard)
    with app.app_context():
        retired = storage.get_certificate(old.id)
        assert retired.status == "retired" and retired.cert_pem == old.cert_pem  # history
        assert storage.get_secret("certificates", old.id, "private_key") is None
        assert storage.get_secret("certificates", new.id, "private_key") is not None
        assert storage.table_counts(["vault_blobs"])["vault_blobs"] == 1  # the new key only

    # Only the new certificate is left at Microsoft: the connection verifies with it.
    sim.remove_certificate(tenant["id"], tenant["client_id"], old.thumbprint_sha1)
    assert "Linked." in text(link(wizard))
    assert connection(app, wizard.id).state == "connected"


def test_replacing_an_unlinked_certificate_destroys_the_old_key(app, wizard, sim, tenant):
    old = ready(app, wizard, sim, tenant, upload=False)
    wizard.post(f"{wizard.url}/certificate", {"replace": "1"})
    with app.app_context():
        assert storage.get_certificate(old.id).status == "retired"
        assert storage.get_secret("certificates", old.id, "private_key") is None
        assert storage.active_certificate(wizard.id).id != old.id
