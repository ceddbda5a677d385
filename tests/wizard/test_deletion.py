"""Deleting a customer-owned connection from its page: one transaction destroys its secrets,
the row stays as history, nothing acts on it afterwards, the page says what to remove at
Microsoft; who may delete (admin of the organization, with CSRF) and what support sees."""

from __future__ import annotations

import re

import pytest

from portal import storage
from portal.connections import lifecycle
from portal.services import find_cloud
from portal.storage import db
from tests.conftest import csrf_token
from tests.wizard.helpers import connection, link, ready, text


def linked(app, wizard, sim, tenant) -> storage.CertificateRecord:
    cert = ready(app, wizard, sim, tenant)
    link(wizard)
    assert connection(app, wizard.id).state == "connected"
    return cert


def delete(client, connection_id: str, token: str | None = None):
    token = token if token is not None else csrf_token(client, "/")
    return client.post(f"/connections/{connection_id}/delete", data={"csrf_token": token})


def blobs_of(app, connection_id: str) -> list[tuple[str, str, str]]:
    """Every vault blob that belongs to the connection, its certificates or its flows."""
    with app.app_context():
        return [
            (r["owner_table"], r["owner_id"], r["purpose"])
            for r in db.get_db().query(
                "SELECT owner_table, owner_id, purpose FROM vault_blobs WHERE "
                "(owner_table = 'connections' AND owner_id = :id) OR "
                "(owner_table = 'certificates' AND owner_id IN "
                " (SELECT id FROM certificates WHERE connection_id = :id)) OR "
                "(owner_table = 'auth_flows' AND owner_id IN "
                " (SELECT state FROM auth_flows WHERE connection_id = :id))",
                {"id": connection_id},
            )
        ]


def test_the_page_offers_delete_with_a_confirmation(app, wizard, sim, tenant):
    linked(app, wizard, sim, tenant)
    body = text(wizard.client.get(f"/connections/{wizard.id}"))
    form = re.search(r'<form method="post" action="/connections/\w+/delete">.*?</form>', body, re.S)
    assert form and 'name="csrf_token"' in form.group(0)
    assert "data-confirm=" in form.group(0) and "cannot be undone" in form.group(0)


def test_delete_destroys_every_secret_in_one_go_and_keeps_the_history(
    app, wizard, sim, tenant, admin_a
):
    cert = linked(app, wizard, sim, tenant)
    # A rotation in progress and an admin consent started: a second key and a pending flow.
    wizard.post(f"/connections/{wizard.id}/certificate/rotate", htmx=False)
    consent = wizard.post(f"/connections/{wizard.id}/admin-consent", htmx=False)
    assert consent.status_code == 302
    with app.app_context():
        pending = storage.pending_certificate(wizard.id)
        handoff = storage.create_handoff(connection_id=wizard.id, user_id=admin_a.id)
    assert len(blobs_of(app, wizard.id)) == 3  # two private keys, one MSAL flow

    answer = delete(wizard.client, wizard.id, wizard.token)
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/connections/{wizard.id}"

    assert blobs_of(app, wizard.id) == []
    with app.app_context():
        gone = storage.get_connection(wizard.id)
        assert gone.state == "deleted" and gone.deleted_at
        assert gone.draft == {} and gone.tenant_input is None
        assert gone.tenant_id == tenant["id"]  # what the customer must clean up stays known
        assert {c.status for c in storage.list_certificates(wizard.id)} == {"retired"}
        assert storage.get_certificate(cert.id).cert_pem == cert.cert_pem  # public part kept
        flows = list(
            db.get_db().query(
                "SELECT consumed_at FROM auth_flows WHERE connection_id = ?", [wizard.id]
            )
        )
        assert flows and all(f["consumed_at"] for f in flows)
        assert storage.open_handoff(handoff.id, "popup", "token") is None
        assert storage.list_health_events(wizard.id, limit=1)[0].outcome == "deleted"
        audit = storage.deletion_audit(wizard.id)
    assert audit.actor_user_id == admin_a.id and audit.org_id == admin_a.org_id
    assert audit.detail["tenant_id"] == tenant["id"]
    assert set(audit.detail["thumbprints"]) == {cert.thumbprint_sha1, pending.thumbprint_sha1}
    assert audit.detail["destroyed"] == {
        "token_cache": 0,
        "private_keys": 2,
        "flow_secrets": 1,
        "auth_flows_burnt": 1,
        "handoffs_burnt": 1,
        "unconfirmed_sign_ins": 0,
        "held_links": 0,
    }


def test_after_deleting_the_page_says_what_to_remove_at_microsoft(
    app, wizard, sim, tenant, admin_a
):
    cert = linked(app, wizard, sim, tenant)
    page = wizard.client.get(delete(wizard.client, wizard.id).headers["Location"])
    assert page.status_code == 200
    body = text(page)
    assert "was deleted" in body and admin_a.email in body
    assert "Remove it on Microsoft's side" in body
    assert cert.thumbprint_sha1 in body and tenant["id"] in body
    with app.app_context():
        cloud = find_cloud("sim-global")
        assert cloud.app_certificates_url(tenant["client_id"]) in body
        assert cloud.app_overview_url(tenant["client_id"]) in body
    assert "Delete connection" not in body


def test_a_deleted_connection_leaves_the_list_and_nothing_acts_on_it(
    app, wizard, sim, tenant, runner
):
    linked(app, wizard, sim, tenant)
    assert wizard.id in wizard.client.get("/").get_data(as_text=True)
    delete(wizard.client, wizard.id, wizard.token)
    assert wizard.id not in wizard.client.get("/").get_data(as_text=True)
    assert wizard.id not in wizard.client.get("/connections/").get_data(as_text=True)
    with app.app_context():
        events = len(storage.list_health_events(wizard.id))
        calls = len(sim.requests(endpoint="token"))

    base = f"/connections/{wizard.id}"
    assert wizard.client.get(f"{base}/setup").status_code == 404
    assert wizard.client.get(f"{base}/certificate.pem").status_code == 404
    for path, data in (
        (f"{base}/check", {}),
        (f"{base}/setup/cloud", {"cloud": "sim-global"}),
        (f"{base}/setup/ids", {"tenant_input": "x"}),
        (f"{base}/setup/certificate", {"replace": "1"}),
        (f"{base}/certificate/rotate", {}),
        (f"{base}/admin-consent", {}),
        (f"{base}/delete", {}),
    ):
        assert wizard.post(path, data, htmx=False).status_code == 404, path
    # An htmx fragment of the deleted page loads the whole page instead.
    assert wizard.client.get(base, headers={"HX-Request": "true"}).headers["HX-Redirect"] == base

    sweep = runner.invoke(args=["check-health"])
    assert sweep.exit_code == 0 and "checked 0" in sweep.output
    with app.app_context():
        assert len(storage.list_health_events(wizard.id)) == events
        assert storage.get_connection(wizard.id).state == "deleted"
    assert len(sim.requests(endpoint="token")) == calls  # nobody asked Microsoft for a token


def test_only_an_admin_of_the_organization_deletes_with_csrf(
    app, wizard, sim, tenant, client_b, support_client
):
    linked(app, wizard, sim, tenant)
    assert delete(client_b, wizard.id).status_code == 404
    assert (
        delete(support_client, wizard.id, csrf_token(support_client, "/support/")).status_code
        == 403
    )
    assert wizard.client.post(f"/connections/{wizard.id}/delete").status_code == 400  # no CSRF
    assert wizard.client.get(f"/connections/{wizard.id}/delete").status_code == 405
    assert connection(app, wizard.id).state == "connected"
    assert len(blobs_of(app, wizard.id)) == 1


def test_support_sees_deleted_connections_only_when_asked_and_read_only(
    app, wizard, sim, tenant, support_client, admin_a
):
    cert = linked(app, wizard, sim, tenant)
    delete(wizard.client, wizard.id, wizard.token)

    board = text(support_client.get("/support/"))
    assert wizard.id not in board
    assert "1 deleted connection not shown" in board and "?state=deleted" in board
    deleted = text(support_client.get("/support/?state=deleted"))
    assert f"/support/connections/{wizard.id}" in deleted
    assert "badge state-deleted" in deleted and "not shown" not in deleted

    page = support_client.get(f"/support/connections/{wizard.id}")
    assert page.status_code == 200
    body = text(page)
    assert "Deleted" in body and admin_a.email in body and cert.thumbprint_sha1 in body
    assert "retired" in body
    status_page = text(support_client.get(f"/connections/{wizard.id}"))
    assert "was deleted" in status_page and "Back to your connections" not in status_page


def test_deleting_a_draft_has_nothing_to_clean_up_at_microsoft(app, wizard):
    page = wizard.client.get(delete(wizard.client, wizard.id).headers["Location"])
    body = text(page)
    assert page.status_code == 200 and "no certificate was issued" in body


def test_the_store_refuses_any_change_to_a_deleted_connection(app, wizard, admin_a):
    with app.app_context():
        with pytest.raises(ValueError):
            storage.update_connection(wizard.id, state="deleted")
        storage.delete_connection_and_secrets(wizard.id, actor=admin_a.id)
        with pytest.raises(storage.ConnectionDeleted):
            storage.update_connection(wizard.id, display_name="renamed")
        with pytest.raises(storage.ConnectionDeleted):
            storage.write_lifecycle(wizard.id, state="connected", health="healthy")
        with pytest.raises(storage.ConnectionDeleted):
            lifecycle.check_recorded(
                wizard.id, ok=True, health="healthy", fields={}, summary={}, actor=None, detail={}
            )
        with pytest.raises(storage.ConnectionDeleted):
            storage.delete_connection_and_secrets(wizard.id, actor=admin_a.id)
        assert lifecycle.needs_reconnect(wizard.id, "late").state == "deleted"
        with pytest.raises(KeyError):
            storage.delete_connection_and_secrets("0" * 32, actor=admin_a.id)


def test_destroyed_ciphertext_does_not_linger_in_the_database_file(
    app, wizard, sim, tenant, app_config
):
    linked(app, wizard, sim, tenant)
    with app.app_context():
        (ciphertext,) = [
            r["ciphertext"]
            for r in db.get_db().query(
                "SELECT ciphertext FROM vault_blobs WHERE owner_table = 'certificates'"
            )
        ]
    delete(wizard.client, wizard.id, wizard.token)
    with app.app_context():
        db.get_db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(app_config["DATABASE"], "rb") as fh:
        assert ciphertext[:64] not in fh.read()


def test_a_write_racing_the_deletion_is_refused_as_not_found(app, wizard, admin_a, monkeypatch):
    """A request that passed the loader just before the deletion committed."""
    from portal.blueprints import wizard as wizard_views

    real_loader = wizard_views.load_connection_or_404

    def load_then_delete(connection_id, write=False):
        item = real_loader(connection_id, write=write)
        storage.delete_connection_and_secrets(item.id, actor=admin_a.id)
        return item

    monkeypatch.setattr(wizard_views, "load_connection_or_404", load_then_delete)
    answer = wizard.cloud("sim-global", htmx=False)
    assert answer.status_code == 404
    with app.app_context():
        assert storage.get_connection(wizard.id).cloud is None
