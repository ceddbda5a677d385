"""portal.db: migrations, pragmas, transactions, no connection before the first request."""

import os
import sqlite3
import threading

import pytest

from portal import db

TABLES = {"organizations", "users", "login_attempts", "connections", "certificates",
          "vault_blobs", "auth_flows", "handoffs", "health_events", "audit_events"}


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
    assert applied == [m.name for m in db.migrations.pending(db.connect(":memory:"))]
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
                        "INSERT INTO organizations (name, created_at) VALUES ('b', 'n')")
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
