"""SQLite through sqlite-utils: one connection per worker thread, pragmas, migrations, transactions.

No connection is opened in ``create_app`` (gunicorn forks after it, and a connection carried across
a fork can corrupt the database: https://www.sqlite.org/howtocorrupt.html section 2.6): each
thread opens its connection at its first request and keeps it, and a connection is only ever used
by the process that opened it. Keeping it matters: opening costs the pragmas, and closing the last
connection of a WAL database checkpoints and fsyncs (``synchronous=FULL``), which measured at
several milliseconds per request when every request opened and closed its own. The
connection runs with ``isolation_level=None``: the driver opens no implicit transactions, and
every read-then-write path uses :func:`write_transaction` (``BEGIN IMMEDIATE``, so a writer waits
for the lock with ``busy_timeout`` instead of failing: https://sqlite.org/rescode.html#busy).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator

import sqlite_utils
from flask import current_app, g

from portal.storage.files import make_private_dir

BUSY_TIMEOUT_MS = 5000
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    # Deleted rows are overwritten with zeros instead of lingering in free space, so a removed
    # ciphertext (an old token cache, a retired key) cannot be read back from the file later.
    "PRAGMA secure_delete=ON",
)
#: The database and its -wal / -shm companions hold every stored secret (encrypted) and the
#: audit trail: owner-only, whatever the umask.
PRIVATE_FILE_MODE = 0o600

_migrated: set[str] = set()
_migrated_lock = threading.Lock()


def connect(path: str) -> sqlite_utils.Database:
    """Open ``path`` with the portal's pragmas (no migrations)."""
    if path != ":memory:":
        _prepare_private_file(path)
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return sqlite_utils.Database(conn)


def _prepare_private_file(path: str) -> None:
    """Create the database file owner-only before SQLite opens it: SQLite would create it 0644
    minus the umask, and it gives the -wal and -shm files the mode of the database file. A file
    left readable by an earlier version is tightened."""
    make_private_dir(os.path.dirname(os.path.abspath(path)))
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            if os.stat(name).st_mode & 0o777 != PRIVATE_FILE_MODE:
                os.chmod(name, PRIVATE_FILE_MODE)
        except FileNotFoundError:
            continue


class MigrationError(RuntimeError):
    """A migration left the database inconsistent (its transaction was rolled back)."""


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations under a write lock (safe when several workers start together).

    They run with foreign keys off, as SQLite's procedure for rebuilding a table requires
    (https://www.sqlite.org/lang_altertable.html#otheralter): with them on, dropping a table
    that others reference first deletes its rows and cascades into every child table. The
    pragma is a no-op inside a transaction, so it is switched before ``BEGIN`` and checked;
    ``PRAGMA foreign_key_check`` then proves, before ``COMMIT``, that no reference dangles.
    """
    from portal.storage.migrations import migrations  # the schema needs db's helpers

    if db.conn.in_transaction:
        raise MigrationError("migrations cannot run inside an open transaction")
    db.execute("PRAGMA foreign_keys=OFF")
    try:
        if db.execute("PRAGMA foreign_keys").fetchone()[0]:
            raise MigrationError("could not switch foreign keys off for the migrations")
        with write_transaction(db):
            pending = [m.name for m in migrations.pending(db)]
            migrations.apply(db)
            if pending:
                _check_foreign_keys(db)
    finally:
        db.execute("PRAGMA foreign_keys=ON")
    return pending


def _check_foreign_keys(db: sqlite_utils.Database) -> None:
    broken = db.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise MigrationError(f"migrations left {len(broken)} dangling references in {tables}")


def open_db(path: str) -> sqlite_utils.Database:
    """Connect and, on this process's first open of ``path``, apply migrations."""
    db = connect(path)
    key = os.path.abspath(path)
    if key not in _migrated:
        with _migrated_lock:
            if key not in _migrated:
                apply_migrations(db)
                _migrated.add(key)
    return db


class _ThreadConnection(threading.local):
    """This thread's connection for one app (in ``app.extensions``) and the pid that opened it."""

    db: sqlite_utils.Database | None = None
    pid: int | None = None
    path: str | None = None


#: Connections a forked child found open in its parent: never used, and never closed here either
#: (closing could release the parent's locks); kept referenced so garbage collection leaves them.
_inherited: list[sqlite_utils.Database] = []


def get_db() -> sqlite_utils.Database:
    """The database of the current app context: this thread's connection, opened lazily."""
    if "db" not in g:
        cached = current_app.extensions["portal.db"]
        path = current_app.config["DATABASE"]
        if cached.db is None or cached.pid != os.getpid() or cached.path != path:
            if cached.db is not None and cached.pid != os.getpid():
                _inherited.append(cached.db)
            elif cached.db is not None:
                cached.db.conn.close()
            cached.db, cached.pid, cached.path = open_db(path), os.getpid(), path
        g.db = cached.db
    return g.db


def close_db(exc: BaseException | None = None) -> None:
    """End of an app context: roll back whatever a failed request left open; keep the connection."""
    db = g.pop("db", None)
    if db is not None and db.conn.in_transaction:
        db.conn.execute("ROLLBACK")


def forget_migrated(path: str) -> None:
    """Forget that ``path`` was migrated in this process (tests that delete a database)."""
    _migrated.discard(os.path.abspath(path))


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database | None = None) -> Iterator[sqlite_utils.Database]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); nested calls are savepoints."""
    db = db if db is not None else get_db()
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        with db.atomic():  # inside an open transaction atomic() is a savepoint
            yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        db.conn.execute("COMMIT")


def init_app(app) -> None:
    app.extensions["portal.db"] = _ThreadConnection()
    app.teardown_appcontext(close_db)
