"""m007_connection_deletion on a database with rows in every table: the rebuild of
``connections`` keeps every row of every table (nothing cascades), the references and indexes
still work, ``deleted`` becomes a state, retired certificates lose their private keys."""

from __future__ import annotations

import sqlite3

import pytest

from portal.storage import db, migrations

BEFORE = "m007_connection_deletion"
CONNECTION = "c0ffee00c0ffee00c0ffee00c0ffee00"
NOW = "2026-01-01T00:00:00+00:00"


def _seed(database) -> None:
    """One or more rows in every table, as a database in production has them."""
    run = database.conn.execute
    run("INSERT INTO organizations (id, name, created_at) VALUES (1, 'Contoso', ?)", [NOW])
    run(
        "INSERT INTO users (id, email, org_id, role, password_hash, created_at) "
        "VALUES (1, 'admin@contoso.example', 1, 'admin', 'x', ?)",
        [NOW],
    )
    run(
        "INSERT INTO login_attempts (account, address, at, succeeded) "
        "VALUES ('admin@contoso.example', '127.0.0.1', 1.0, 1)"
    )
    run(
        "INSERT INTO connections (id, org_id, kind, state, health, draft, created_at, "
        "updated_at) VALUES (?, 1, 'customer_owned', 'connected', 'healthy', "
        '\'{"tenant_input": "contoso.onmicrosoft.com"}\', ?, ?)',
        [CONNECTION, NOW, NOW],
    )
    for cert_id, status in (("cert-active", "active"), ("cert-retired", "retired")):
        run(
            "INSERT INTO certificates (id, connection_id, thumbprint_sha1, thumbprint_sha256, "
            "subject, not_before, not_after, cert_pem, status, created_at) "
            "VALUES (?, ?, 'AA', 'BB', 'CN=x', ?, ?, 'pem', ?, ?)",
            [cert_id, CONNECTION, NOW, NOW, status, NOW],
        )
    for table, owner, purpose in (
        ("connections", CONNECTION, "token_cache"),
        ("certificates", "cert-active", "private_key"),
        ("certificates", "cert-retired", "private_key"),
        ("auth_flows", "state-1", "msal_flow"),
    ):
        run(
            "INSERT INTO vault_blobs (owner_table, owner_id, purpose, key_id, nonce, ciphertext, "
            "updated_at) VALUES (?, ?, ?, 'k1', x'00', x'01', ?)",
            [table, owner, purpose, NOW],
        )
    run(
        "INSERT INTO auth_flows (state, kind, connection_id, user_id, browser_binding, "
        "created_at, expires_at) VALUES ('state-1', 'delegated', ?, 1, 'b', 1.0, 2.0)",
        [CONNECTION],
    )
    run(
        "INSERT INTO handoffs (id, connection_id, user_id, created_at, expires_at) "
        "VALUES ('handoff-1', ?, 1, 1.0, 2.0)",
        [CONNECTION],
    )
    run(
        "INSERT INTO link_outcomes (handoff_id, connection_id, outcome, finished_at) "
        "VALUES ('handoff-1', ?, 'connected', 1.0)",
        [CONNECTION],
    )
    run(
        "INSERT INTO health_events (connection_id, at, outcome, health) "
        "VALUES (?, ?, 'ok', 'healthy')",
        [CONNECTION, NOW],
    )
    run(
        "INSERT INTO audit_events (at, actor_user_id, org_id, connection_id, action) "
        "VALUES (?, 1, 1, ?, 'connection.create')",
        [NOW, CONNECTION],
    )
    run(
        "INSERT INTO refresh_leases (connection_id, owner, lease_until) VALUES (?, 'o', 1.0)",
        [CONNECTION],
    )
    run("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (1, 'h', ?)", [NOW])
    run(
        "INSERT INTO link_reviews (id, connection_id, org_id, tenant_id, other_org_ids, "
        "created_at) VALUES ('review-1', ?, 1, 't', '[2]', ?)",
        [CONNECTION, NOW],
    )


def _counts(database) -> dict[str, int]:
    return {
        name: database[name].count for name in database.table_names() if not name.startswith("_")
    }


@pytest.fixture
def before_m007(tmp_path):
    """A database migrated up to (not including) m007, with rows in every table."""
    database = db.connect(str(tmp_path / "old.sqlite3"))
    database.execute("PRAGMA foreign_keys=OFF")
    with db.write_transaction(database):
        migrations.migrations.apply(database, stop_before=BEFORE)
    database.execute("PRAGMA foreign_keys=ON")
    _seed(database)
    empty = [name for name, n in _counts(database).items() if n == 0]
    assert not empty, f"add a row of these tables to _seed: {empty}"
    return database


def test_m007_keeps_every_row_and_every_reference(before_m007):
    database = before_m007
    counts = _counts(database)
    assert db.apply_migrations(database)[0] == BEFORE  # and any later ones

    counts["vault_blobs"] -= 1  # the retired certificate's private key
    after = _counts(database)
    assert {name: after[name] for name in counts} == counts  # later migrations add tables
    keys = {
        r[0]
        for r in database.conn.execute(
            "SELECT owner_id FROM vault_blobs WHERE purpose = 'private_key'"
        )
    }
    assert keys == {"cert-active"}
    row = database.conn.execute("SELECT state, draft, deleted_at FROM connections").fetchone()
    assert row == ("connected", '{"tenant_input": "contoso.onmicrosoft.com"}', None)

    # Foreign keys are on again and every child still references the rebuilt table.
    assert database.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert database.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    for child in (
        "certificates",
        "auth_flows",
        "handoffs",
        "health_events",
        "link_outcomes",
        "refresh_leases",
        "link_reviews",
    ):
        parents = {r[2] for r in database.conn.execute(f"PRAGMA foreign_key_list({child})")}
        assert "connections" in parents, child
    assert "connections_org" in {i.name for i in database["connections"].indexes}
    with pytest.raises(sqlite3.IntegrityError):
        database.conn.execute(
            "INSERT INTO certificates (id, connection_id, thumbprint_sha1, "
            "thumbprint_sha256, subject, not_before, not_after, cert_pem, "
            "created_at) VALUES ('x', 'no-such', 'a', 'b', 's', ?, ?, 'p', ?)",
            [NOW, NOW, NOW],
        )


def test_deleted_is_a_state_only_with_its_time(before_m007):
    database = before_m007
    db.apply_migrations(database)
    run = database.conn.execute
    with pytest.raises(sqlite3.IntegrityError):
        run("UPDATE connections SET state = 'deleted'")
    with pytest.raises(sqlite3.IntegrityError):
        run("UPDATE connections SET deleted_at = ?", [NOW])
    with pytest.raises(sqlite3.IntegrityError):
        run("UPDATE connections SET state = 'gone'")
    run("UPDATE connections SET state = 'deleted', deleted_at = ?", [NOW])
    # The row is kept; deleting it for good still cascades as before.
    run("DELETE FROM connections")
    assert database["certificates"].count == 0 and database["health_events"].count == 0


def test_m007_refuses_to_run_with_foreign_keys_on(before_m007):
    """With foreign keys on, dropping the old table would cascade into every child table."""
    database = before_m007
    counts = _counts(database)
    with pytest.raises(db.MigrationError):
        migrations.m007_connection_deletion(database)
    assert _counts(database) == counts


def test_migrations_refuse_an_open_transaction(before_m007):
    """Inside a transaction the foreign_keys pragma would silently stay on."""
    database = before_m007
    database.conn.execute("BEGIN")
    with pytest.raises(db.MigrationError):
        db.apply_migrations(database)
    database.conn.execute("ROLLBACK")
    assert [m.name for m in migrations.migrations.pending(database)][0] == BEFORE


def test_a_dangling_reference_rolls_every_pending_migration_back(before_m007):
    database = before_m007
    database.execute("PRAGMA foreign_keys=OFF")
    database.conn.execute(
        "INSERT INTO health_events (connection_id, at, outcome, health) "
        "VALUES ('gone', ?, 'ok', 'healthy')",
        [NOW],
    )
    database.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(db.MigrationError, match="health_events"):
        db.apply_migrations(database)
    assert [m.name for m in migrations.migrations.pending(database)][0] == BEFORE
    assert database.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
