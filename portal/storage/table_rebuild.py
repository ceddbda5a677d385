"""Helpers of migrations that rebuild a table (SQLite cannot alter a CHECK constraint): the
stored definition of a table with its indexes and triggers, and m007's new ``connections``."""

from __future__ import annotations

import sqlite_utils

from portal.storage.db import MigrationError

LIVE_STATES_CHECK = (
    "CHECK (state IN ('draft', 'waiting', 'connected', 'needs_attention', 'needs_reconnect'))"
)


def schema_of(db: sqlite_utils.Database, table: str) -> tuple[str, list[str]]:
    """The table's CREATE statement and those of its indexes and triggers (dropped with it)."""
    rows = db.execute(
        "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
        "ORDER BY type = 'table' DESC, rowid",
        [table],
    ).fetchall()
    if not rows or rows[0][0] != "table":
        raise MigrationError(f"table {table} not found")
    return rows[0][1], [sql for kind, sql in rows[1:] if kind in ("index", "trigger")]


def connections_with_deletion(table_sql: str) -> str:
    """``connections_new``: the stored definition with ``deleted`` allowed and ``deleted_at``."""
    if table_sql.count(LIVE_STATES_CHECK) != 1 or not table_sql.rstrip().endswith(")"):
        raise MigrationError("connections has an unexpected definition; m007 changes nothing")
    sql = table_sql.replace(
        LIVE_STATES_CHECK,
        LIVE_STATES_CHECK.replace("'needs_reconnect'", "'needs_reconnect', 'deleted'"),
    )
    head, _, rest = sql.partition("(")
    if head.split() != ["CREATE", "TABLE", "connections"]:
        raise MigrationError("connections has an unexpected definition; m007 changes nothing")
    body = rest.rstrip()[:-1].rstrip()
    return (
        f"CREATE TABLE connections_new ({body},\n"
        "    deleted_at TEXT,\n"
        "    CHECK ((state = 'deleted') = (deleted_at IS NOT NULL))\n)"
    )
