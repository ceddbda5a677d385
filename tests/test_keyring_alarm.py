"""A mistake in our own vault keyring is an operator alarm, never a customer re-link: the
connection's state stays, the cron commands exit non-zero and count it, support sees it, the
customer reads that it is ours to fix, and the next run after the keyring is fixed restores the
connection. "Key removed" is what `flask vault rotate` does before the web workers restart:
every blob re-encrypted under a new primary key this process's keyring does not hold."""

from __future__ import annotations

import logging

import pytest

from portal import storage
from portal.connections import credentials
from portal.connections.delegated_check import run_delegated_check
from portal.storage import vault
from tests.keepalive_helpers import Provider, link_connection, stored_refresh_tokens
from tests.wizard.helpers import check_again, connection, link, ready, start_wizard, text


@pytest.fixture
def provider(sim):
    return Provider.register(sim)


@pytest.fixture
def app_config(app_config, sim_server, provider, tmp_path):
    app_config["CLOUDS_FILE"] = str(sim_server.clouds_file(tmp_path / "clouds.json"))
    app_config["CERT_KEY_SIZE"] = 2048
    app_config["PUBLIC_URL"] = "https://portal.example"
    app_config.update(provider.config())
    return app_config


@pytest.fixture
def linked(app, sim, sim_server, provider, org_a):
    return link_connection(app, sim, sim_server, provider, provider.customer(), org_a)


@pytest.fixture
def tenant(sim):
    t = sim.create_tenant(cloud="global", domains=["tailspin.onmicrosoft.com"])
    app = sim.create_app(t["id"], display_name="HR sync")
    return {"id": t["id"], "domain": "tailspin.onmicrosoft.com", "client_id": app["app_id"]}


def rotate_elsewhere(app) -> vault.Keyring:
    """Another process ran `flask vault rotate`: the blobs are under a key we do not hold."""
    rotated = vault.Keyring.generate(existing=app.config["VAULT_KEYS"])
    with app.app_context():
        assert storage.rotate_secrets(rotated)["rotated"] >= 1
    return rotated


def alarm_logged(caplog) -> bool:
    return any(
        r.levelno == logging.ERROR and "operator alarm" in r.getMessage() for r in caplog.records
    )


def test_a_key_missing_from_the_keyring_alarms_and_the_fix_restores(
    app, runner, linked, caplog, client_a, support_client
):
    rotated = rotate_elsewhere(app)

    result = runner.invoke(args=["refresh-tokens"])

    assert result.exit_code == 1, result.output
    assert "operator problems 1" in result.output
    assert "vault keyring cannot read the stored sign-in (unknown key id" in result.output
    assert alarm_logged(caplog)
    item = connection(app, linked.connection.id)
    assert (item.state, item.health) == ("connected", "degraded")
    page = text(client_a.get(f"/connections/{linked.connection.id}"))
    # No reconnect alert, and the lifecycle's current step is still "Connected" (the list of
    # states always explains "Needs reconnect", so that word alone says nothing).
    assert "needs to be reconnected" not in page
    assert 'aria-current="step"><strong>Connected' in page
    assert credentials.OUR_SIDE_TITLE in page
    support = text(support_client.get(f"/support/connections/{linked.connection.id}"))
    assert "Operator problem (vault keyring)" in support

    app.config["VAULT_KEYS"] = rotated  # the workers restarted with the new keyring
    result = runner.invoke(args=["refresh-tokens"])
    assert result.exit_code == 0, result.output
    assert "refreshed 1" in result.output
    item = connection(app, linked.connection.id)
    assert (item.state, item.health) == ("connected", "healthy")
    assert stored_refresh_tokens(app, linked.connection.id) != [linked.refresh_token]
    support = text(support_client.get(f"/support/connections/{linked.connection.id}"))
    assert "Operator problem" not in support


def test_a_key_that_cannot_decrypt_is_ours_too(app, runner, linked, caplog):
    """The keyring holds a key of that id that does not open the blob (GCM tag)."""
    with app.app_context():
        storage.get_db().execute(
            "UPDATE vault_blobs SET ciphertext = zeroblob(length(ciphertext)) "
            "WHERE owner_id = ? AND purpose = 'token_cache'",
            [linked.connection.id],
        )
    result = runner.invoke(args=["refresh-tokens"])
    assert result.exit_code == 1 and "(authentication failed)" in result.output
    assert alarm_logged(caplog)
    assert connection(app, linked.connection.id).state == "connected"


def test_check_on_a_delegated_connection_says_it_is_ours(app, linked):
    rotate_elsewhere(app)
    with app.app_context():
        outcome = run_delegated_check(linked.connection, trigger="check")
    assert outcome == {"ok": False, "message": credentials.OUR_SIDE_MESSAGE}
    assert "reconnect" not in outcome["message"].lower()
    assert connection(app, linked.connection.id).state == "connected"


def test_a_certificate_key_missing_from_the_keyring_in_check_health(
    app, runner, sim, tenant, client_a, caplog
):
    wizard = start_wizard(client_a)
    ready(app, wizard, sim, tenant)
    link(wizard)
    assert connection(app, wizard.id).state == "connected"
    rotated = rotate_elsewhere(app)

    result = runner.invoke(args=["check-health"])

    assert result.exit_code == 1, result.output
    assert "operator problems 1" in result.output
    assert alarm_logged(caplog)
    item = connection(app, wizard.id)
    assert (item.state, item.health) == ("connected", "degraded")
    # The customer presses Check again: a problem on our side, not "reconnect".
    body = text(check_again(wizard))  # a background job, followed to its end
    assert credentials.OUR_SIDE_MESSAGE in body
    assert "needs to be reconnected" not in body and "Create a new certificate" not in body
    page = text(client_a.get(f"/connections/{wizard.id}"))
    assert "needs to be reconnected" not in page
    assert "a problem on our side that we are fixing" in page
    item = connection(app, wizard.id)
    assert (item.state, item.error_class) == ("connected", "our_config")

    app.config["VAULT_KEYS"] = rotated
    result = runner.invoke(args=["check-health"])
    assert result.exit_code == 0, result.output
    assert "healthy 1" in result.output and "operator problems 0" in result.output
    item = connection(app, wizard.id)
    assert (item.state, item.health) == ("connected", "healthy")


def test_a_secret_gone_for_the_customer_still_asks_to_reconnect(app, runner, linked):
    """A row no keyring can open (a damaged nonce) is not ours to fix: re-link."""
    with app.app_context():
        storage.get_db().execute(
            "UPDATE vault_blobs SET nonce = zeroblob(3) WHERE owner_id = ?",
            [linked.connection.id],
        )
    result = runner.invoke(args=["refresh-tokens"])
    assert result.exit_code == 0 and "re-link needed 1" in result.output
    assert connection(app, linked.connection.id).state == "needs_reconnect"


def test_vault_errors_say_whose_they_are():
    keyring = vault.Keyring.generate()
    where = {"owner_table": "connections", "owner_id": "x", "purpose": "token_cache"}
    sealed = keyring.seal(b"secret", **where)
    other = vault.Keyring.generate()
    with pytest.raises(vault.KeyringMismatch) as unknown:
        other.open(sealed, **where)
    assert unknown.value.our_config and "unknown key id" in unknown.value.reason
    with pytest.raises(vault.KeyringMismatch):
        keyring.open(vault.Sealed(sealed.key_id, sealed.nonce, b"x" * 32), **where)
    with pytest.raises(vault.SecretUnreadable) as malformed:
        keyring.open(vault.Sealed(sealed.key_id, b"123", sealed.ciphertext), **where)
    assert not malformed.value.our_config
