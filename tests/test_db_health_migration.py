"""m008_health on a database with connections: the health record's columns, filled from what the
old columns already tell, and only the three error classes accepted."""

from __future__ import annotations

import sqlite3

import pytest

from portal.storage import db, migrations

BEFORE = "m008_health"
NOW = "2026-01-01T00:00:00+00:00"


def test_m008_adds_the_health_record_from_the_old_columns(tmp_path):
    database = db.connect(str(tmp_path / "old.sqlite3"))
    database.execute("PRAGMA foreign_keys=OFF")
    with db.write_transaction(database):
        migrations.migrations.apply(database, stop_before=BEFORE)
    database.execute("PRAGMA foreign_keys=ON")
    run = database.conn.execute
    run("INSERT INTO organizations (id, name, created_at) VALUES (1, 'Contoso', ?)", [NOW])
    for connection_id, health, checked in (
        ("good", "healthy", NOW),
        ("bad", "failing", NOW),
        ("new", "unknown", None),
    ):
        run(
            "INSERT INTO connections (id, org_id, kind, state, health, draft, "
            "last_checked_at, created_at, updated_at) "
            "VALUES (?, 1, 'customer_owned', 'connected', ?, '{}', ?, ?, ?)",
            [connection_id, health, checked, NOW, NOW],
        )

    assert BEFORE in db.apply_migrations(database)

    rows = {
        r[0]: r[1:]
        for r in run(
            "SELECT id, last_attempt_at, last_success_at, failing_since, error_class, "
            "last_changes FROM connections"
        )
    }
    assert rows == {
        "good": (NOW, NOW, None, None, None),
        "bad": (NOW, None, None, None, None),
        "new": (None, None, None, None, None),
    }
    with pytest.raises(sqlite3.IntegrityError):
        run("UPDATE connections SET error_class = 'nobody' WHERE id = 'good'")
