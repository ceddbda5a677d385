"""portal.db: migrations, pragmas, transactions, no connection before the first request."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from portal import storage
from portal.storage import db, migrations

ROOT = Path(__file__).resolve().parents[1]

TABLES = {
    "organizations",
    "users",
    "login_attempts",
    "connections",
    "certificates",
    "vault_blobs",
    "auth_flows",
    "handoffs",
    "health_events",
    "audit_events",
}


def test_create_app_opens_no_database(app_config):
    from portal import create_app

    create_app(app_config)
    import os

    assert not os.path.exists(app_config["DATABASE"])


def test_migrations_create_every_table_and_are_idempotent(tmp_path):
    path = str(tmp_path / "m.sqlite3")
    database = db.connect(path)
    applied = db.apply_migrations(database)
    assert applied[0] == "m001_initial"
    assert applied == [m.name for m in migrations.migrations.pending(db.connect(":memory:"))]
    schema = database.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert db.apply_migrations(database) == []
    assert db.apply_migrations(db.connect(path)) == []
    assert database.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
    assert TABLES <= set(database.table_names())


def test_init_db_command_is_idempotent(runner, app):
    first = runner.invoke(args=["init-db"])
    assert first.exit_code == 0, first.output
    assert "applied m001_initial" in first.output
    second = runner.invoke(args=["init-db"])
    assert second.exit_code == 0
    assert "up to date" in second.output


def test_pragmas_on_every_connection(app):
    for _ in range(2):
        with app.app_context():
            conn = db.get_db().conn
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert conn.isolation_level is None


def test_connection_is_kept_per_thread_and_left_clean(app):
    with app.app_context():
        first = db.get_db()
        first.conn.execute("BEGIN IMMEDIATE")  # a request that failed mid-transaction
    assert not first.conn.in_transaction  # teardown rolled it back; the write lock is free
    with app.app_context():
        assert db.get_db() is first  # the next request reuses the thread's connection

    other = []
    thread = threading.Thread(target=lambda: other.append(_connection_in_new_context(app)))
    thread.start()
    thread.join()
    assert other[0] is not first  # sqlite3 connections never cross threads


def _connection_in_new_context(app):
    with app.app_context():
        return db.get_db()


def test_a_forked_process_opens_its_own_connection(app):
    """A connection is only used by the process that opened it (howtocorrupt.html 2.6)."""
    with app.app_context():
        parent = db.get_db()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer whether it got a different connection, then leave at once
        try:
            with app.app_context():
                fresh = db.get_db()
                ok = fresh is not parent and fresh.execute("SELECT 1").fetchone() == (1,)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    with app.app_context():
        assert db.get_db() is parent


def test_write_transaction_begins_immediate_and_commits(app):
    statements = []
    with app.app_context():
        database = db.get_db()
        database.conn.set_trace_callback(statements.append)
        with db.write_transaction():
            database.execute("INSERT INTO organizations (name, created_at) VALUES ('x', 'now')")
        database.conn.set_trace_callback(None)
        assert statements[0] == "BEGIN IMMEDIATE"
        assert statements[-1] == "COMMIT"
        assert database["organizations"].count == 1


def test_write_transaction_rolls_back_on_error(app):
    with app.app_context():
        database = db.get_db()
        with pytest.raises(RuntimeError):
            with db.write_transaction():
                database.execute("INSERT INTO organizations (name, created_at) VALUES ('x', 'n')")
                raise RuntimeError("boom")
        assert database["organizations"].count == 0
        assert not database.conn.in_transaction


def test_nested_write_transaction_is_a_savepoint(app):
    with app.app_context():
        database = db.get_db()
        with db.write_transaction():
            database.execute("INSERT INTO organizations (name, created_at) VALUES ('a', 'n')")
            with pytest.raises(RuntimeError):
                with db.write_transaction():
                    database.execute(
                        "INSERT INTO organizations (name, created_at) VALUES ('b', 'n')"
                    )
                    raise RuntimeError("inner")
        names = [r["name"] for r in database["organizations"].rows]
        assert names == ["a"]


def test_second_writer_waits_instead_of_failing(app, tmp_path):
    """BEGIN IMMEDIATE takes the write lock up front; another writer gets SQLITE_BUSY only
    after busy_timeout (here shortened), never a deadlock halfway through."""
    with app.app_context():
        path = app.config["DATABASE"]
        first = db.open_db(path)
        second = db.connect(path)
        second.conn.execute("PRAGMA busy_timeout=50")
        with db.write_transaction(first):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                second.conn.execute("BEGIN IMMEDIATE")
        second.conn.execute("BEGIN IMMEDIATE")
        second.conn.execute("ROLLBACK")


# --- Files only the owner can read ---------------------------------------------------------

#: Run in a fresh process (the umask is process-wide): create_app, a first request, the modes.
_MODES_SCRIPT = """
import json, os, sys
os.umask(int(sys.argv[2], 8))
from portal import create_app
instance = sys.argv[1]
app = create_app({"TESTING": True, "ENV": "development", "INSTANCE_PATH": instance})
assert app.test_client().get("/healthz").status_code == 200
names = (".", "portal.sqlite3", "portal.sqlite3-wal", "portal.sqlite3-shm", "secret_key",
         "vault.key")
print(json.dumps({n: oct(os.stat(os.path.join(instance, n)).st_mode & 0o777) for n in names}))
"""


@pytest.mark.parametrize("umask", ["022", "000"])
def test_instance_files_are_owner_only_whatever_the_umask(tmp_path, umask):
    instance = tmp_path / "deep" / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    result = subprocess.run(
        [sys.executable, "-c", _MODES_SCRIPT, str(instance), umask],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout)
    assert modes.pop(".") == "0o700"
    assert modes == dict.fromkeys(modes, "0o600")


def test_a_database_left_readable_is_tightened(tmp_path):
    path = tmp_path / "old.sqlite3"
    sqlite3.connect(path).close()
    os.chmod(path, 0o644)
    db.connect(str(path)).conn.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _blob_left_after_delete(path: Path, database, ciphertext: bytes, delete) -> bool:
    """Whether ``ciphertext`` is still in the database file (or its WAL) after ``delete()``."""
    database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert ciphertext[-64:] in path.read_bytes()  # the probe sees the stored blob
    delete()
    database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    on_disk = path.read_bytes() + Path(f"{path}-wal").read_bytes()
    return ciphertext[:64] in on_disk or ciphertext[-64:] in on_disk


def test_the_probe_finds_a_deleted_blob_without_secure_delete(tmp_path):
    """The control: without secure_delete, SQLite leaves a deleted row's bytes in the page
    (many builds default to that; Debian's libsqlite3 happens to default to secure_delete)."""
    path = tmp_path / "plain.sqlite3"
    database = db.connect(str(path))
    database.execute("PRAGMA secure_delete=OFF")
    database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
    ciphertext = os.urandom(1500)
    database.execute("INSERT INTO t VALUES (1, ?)", [ciphertext])
    assert _blob_left_after_delete(
        path, database, ciphertext, lambda: database.execute("DELETE FROM t")
    )


def test_a_deleted_secret_leaves_no_ciphertext_in_the_file(app_ctx, make_org):
    """secure_delete on every connection: the bytes of a deleted blob are zeroed, whatever the
    SQLite build's default."""
    org = make_org()
    connection = storage.create_connection(org.id, "service_provider")
    storage.put_secret("connections", connection.id, "token_cache", b"refresh-token " * 100)
    database = db.get_db()
    assert database.execute("PRAGMA secure_delete").fetchone() == (1,)
    (ciphertext,) = database.execute(
        "SELECT ciphertext FROM vault_blobs WHERE owner_id = ?", [connection.id]
    ).fetchone()
    assert not _blob_left_after_delete(
        Path(app_ctx.config["DATABASE"]),
        database,
        ciphertext,
        lambda: storage.delete_secret("connections", connection.id, "token_cache"),
    )
