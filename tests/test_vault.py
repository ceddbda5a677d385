"""portal.vault: AES-256-GCM, key ids, row-binding AAD, rotation, fail-closed."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal import storage
from portal.connections import credentials
from portal.storage import db, vault

WHERE = {"owner_table": "connections", "owner_id": "abc123", "purpose": "token_cache"}


def test_round_trip_and_fresh_nonce():
    keyring = vault.Keyring.generate()
    one = keyring.seal(b"secret value", **WHERE)
    two = keyring.seal(b"secret value", **WHERE)
    assert one.key_id == keyring.primary_kid
    assert len(one.nonce) == 12
    assert one.nonce != two.nonce and one.ciphertext != two.ciphertext
    assert b"secret value" not in one.ciphertext
    assert keyring.open(one, **WHERE) == b"secret value"


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=64), data=st.data())
def test_any_bit_flip_is_detected(plaintext, data):
    keyring = vault.Keyring.generate()
    sealed = keyring.seal(plaintext, **WHERE)
    field = data.draw(st.sampled_from(["nonce", "ciphertext"]))
    blob = bytearray(getattr(sealed, field))
    bit = data.draw(st.integers(0, len(blob) * 8 - 1))
    blob[bit // 8] ^= 1 << (bit % 8)
    tampered = vault.Sealed(**{**sealed.__dict__, field: bytes(blob)})
    with pytest.raises(vault.SecretUnreadable):
        keyring.open(tampered, **WHERE)


@pytest.mark.parametrize(
    "change",
    [
        {"owner_id": "other-row"},
        {"owner_table": "certificates"},
        {"purpose": "private_key"},
    ],
)
def test_blob_bound_to_its_row_and_purpose(change):
    keyring = vault.Keyring.generate()
    sealed = keyring.seal(b"x", **WHERE)
    with pytest.raises(vault.SecretUnreadable):
        keyring.open(sealed, **{**WHERE, **change})


def test_unknown_key_id_is_a_clear_error():
    sealed = vault.Keyring.generate().seal(b"x", **WHERE)
    with pytest.raises(vault.SecretUnreadable, match="unknown key id"):
        vault.Keyring.generate().open(sealed, **WHERE)


def test_relabelled_key_id_fails():
    old = vault.Keyring.generate()
    both = vault.Keyring.generate(old)
    sealed = old.seal(b"x", **WHERE)
    relabelled = vault.Sealed(both.primary_kid, sealed.nonce, sealed.ciphertext)
    with pytest.raises(vault.SecretUnreadable):
        both.open(relabelled, **WHERE)


def test_keyring_text_round_trip_and_order():
    old = vault.Keyring.generate()
    ring = vault.Keyring.generate(old)
    parsed = vault.Keyring.parse("# comment\n\n" + ring.dumps())
    assert parsed.key_ids == ring.key_ids
    assert parsed.primary_kid == ring.primary_kid != old.primary_kid
    key_material = ring.dumps().splitlines()[0].split(":", 1)[1]
    assert key_material not in repr(ring) and key_material not in str(ring)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nokey",
        "k1:not base64!",
        "k1:" + base64.b64encode(b"short").decode(),
        "k1:{0}\nk1:{0}".format(base64.b64encode(os.urandom(32)).decode()),
        "bad id:" + base64.b64encode(os.urandom(32)).decode(),
    ],
)
def test_bad_keyrings_are_refused(text):
    with pytest.raises(vault.KeyringError):
        vault.Keyring.parse(text)


def test_store_secret_round_trip_and_swap(app_ctx, make_org):
    org = storage.create_organization("A")
    one = storage.create_connection(org.id, "service_provider")
    two = storage.create_connection(org.id, "service_provider")
    storage.put_secret("connections", one.id, "token_cache", b"cache of one")
    storage.put_secret("connections", two.id, "token_cache", b"cache of two")
    assert storage.get_secret("connections", one.id, "token_cache") == b"cache of one"
    assert storage.get_secret("connections", one.id, "missing") is None
    # Copy one's blob into two's row: it must not decrypt there.
    database = db.get_db()
    row = database.execute(
        "SELECT key_id, nonce, ciphertext FROM vault_blobs WHERE owner_id = ?", [one.id]
    ).fetchone()
    database.execute(
        "UPDATE vault_blobs SET key_id = ?, nonce = ?, ciphertext = ? WHERE owner_id = ?",
        [*row, two.id],
    )
    with pytest.raises(vault.SecretUnreadable):
        storage.get_secret("connections", two.id, "token_cache")
    assert storage.delete_secret("connections", one.id, "token_cache")
    assert storage.get_secret("connections", one.id, "token_cache") is None


def test_unreadable_secret_moves_connection_to_needs_reconnect(app_ctx):
    org = storage.create_organization("A")
    connection = storage.create_connection(org.id, "service_provider")
    storage.put_secret("connections", connection.id, "token_cache", b"x")
    # Gone for the customer: a row no keyring can open (ours failing: test_keyring_alarm.py).
    db.get_db().execute("UPDATE vault_blobs SET nonce = zeroblob(4)")
    with pytest.raises(vault.SecretUnreadable):
        credentials.token_cache(connection.id)
    assert storage.get_connection(connection.id).state == "needs_reconnect"
    assert storage.list_health_events(connection.id)[0].outcome == "needs_reconnect"


def test_rotation_moves_every_blob_to_the_primary(app, runner):
    old = app.config["VAULT_KEYS"]
    with app.app_context():
        org = storage.create_organization("A")
        ids = [storage.create_connection(org.id, "service_provider").id for _ in range(3)]
        for i, cid in enumerate(ids):
            storage.put_secret("connections", cid, "token_cache", f"secret {i}".encode())
    new = vault.Keyring.generate(old)
    app.config["VAULT_KEYS"] = new
    with app.app_context():
        assert storage.vault_key_usage() == {old.primary_kid: 3}
        assert storage.get_secret("connections", ids[0], "token_cache") == b"secret 0"
    result = runner.invoke(args=["vault", "rotate"])
    assert result.exit_code == 0, result.output
    assert "3 re-encrypted" in result.output
    with app.app_context():
        assert storage.vault_key_usage() == {new.primary_kid: 3}
    # The old key can now be dropped: everything still decrypts.
    app.config["VAULT_KEYS"] = vault.Keyring.parse(new.dumps().splitlines()[0])
    with app.app_context():
        assert [storage.get_secret("connections", c, "token_cache") for c in ids] == [
            b"secret 0",
            b"secret 1",
            b"secret 2",
        ]
    again = runner.invoke(args=["vault", "rotate"])
    assert "0 re-encrypted, 3 already current" in again.output


def test_vault_add_key_prepends_a_new_primary(tmp_path, app_config):
    from portal import create_app

    app_config.pop("VAULT_KEYS")
    app = create_app(app_config)  # development: generates instance/vault.key
    path = tmp_path / "instance" / "vault.key"
    first = vault.Keyring.parse(path.read_text())
    result = app.test_cli_runner().invoke(args=["vault", "add-key"])
    assert result.exit_code == 0, result.output
    ring = vault.Keyring.parse(path.read_text())
    assert ring.key_ids[1:] == first.key_ids
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    status = app.test_cli_runner().invoke(args=["vault", "status"])
    assert first.primary_kid in status.output
    assert ring.dumps().splitlines()[0].split(":", 1)[1] not in status.output


def test_vault_remove_key_only_when_unused(tmp_path, app_config):
    from portal import create_app

    app_config.pop("VAULT_KEYS")
    create_app(app_config)
    path = tmp_path / "instance" / "vault.key"
    old = vault.Keyring.parse(path.read_text())
    app = create_app(app_config)
    with app.app_context():
        org = storage.create_organization("A")
        connection = storage.create_connection(org.id, "service_provider")
        storage.put_secret("connections", connection.id, "token_cache", b"kept")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["vault", "add-key"]).exit_code == 0
    refused = runner.invoke(args=["vault", "remove-key", old.primary_kid])
    assert refused.exit_code != 0 and "rotate" in refused.output
    app = create_app(app_config)  # restart with the new keyring
    runner = app.test_cli_runner()
    assert runner.invoke(args=["vault", "rotate"]).exit_code == 0
    assert runner.invoke(args=["vault", "remove-key", old.primary_kid]).exit_code == 0
    app = create_app(app_config)
    assert old.primary_kid not in app.config["VAULT_KEYS"]
    with app.app_context():
        assert storage.get_secret("connections", connection.id, "token_cache") == b"kept"
    primary = app.config["VAULT_KEYS"].primary_kid
    assert "primary" in app.test_cli_runner().invoke(args=["vault", "remove-key", primary]).output


# --- Bootstrapping a production instance -------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _flask(instance: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The real ``flask --app portal ...`` of an operator, in production, in a fresh process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    clean.update(
        PORTAL_ENV="production",
        PORTAL_PUBLIC_URL="https://portal.example",
        PORTAL_INSTANCE_PATH=str(instance),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "portal", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_vault_init_bootstraps_production_without_a_started_app(tmp_path):
    instance = tmp_path / "srv" / "instance"
    before = _flask(instance, "init-db")
    assert before.returncode != 0 and "No vault key" in before.stderr  # production refuses

    created = _flask(instance, "vault", "init")
    assert created.returncode == 0, created.stderr
    vault_key, secret_key = instance / "vault.key", instance / "secret_key"
    assert _mode(instance) == "0o700"
    assert _mode(vault_key) == _mode(secret_key) == "0o600"
    keyring = vault.Keyring.parse(vault_key.read_text())
    assert keyring.primary_kid in created.stdout
    output = created.stdout + created.stderr
    assert base64.b64encode(keyring.key(keyring.primary_kid)).decode() not in output
    assert secret_key.read_text().strip() not in output

    started = _flask(instance, "init-db")
    assert started.returncode == 0, started.stderr
    assert "applied m001_initial" in started.stdout


def test_vault_init_never_overwrites_a_key_file(tmp_path):
    instance = tmp_path / "instance"
    assert _flask(instance, "vault", "init").returncode == 0
    keys = {name: (instance / name).read_bytes() for name in ("vault.key", "secret_key")}
    again = _flask(instance, "vault", "init")
    assert again.returncode != 0 and "Already initialised" in again.stderr
    assert keys == {name: (instance / name).read_bytes() for name in keys}


def test_vault_init_creates_only_what_is_missing(tmp_path):
    instance = tmp_path / "instance"
    result = _flask(instance, "vault", "init", PORTAL_SECRET_KEY="s" * 64)
    assert result.returncode == 0, result.stderr
    assert (instance / "vault.key").exists() and not (instance / "secret_key").exists()
    assert "kept what exists" in result.stdout
