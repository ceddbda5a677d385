"""The SQL helpers every storage module uses, and whole-database reads (counts, ping)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from portal.storage.db import get_db


def utcnow() -> str:
    """Now as ISO 8601 UTC text with seconds, e.g. ``2026-11-26T12:00:00+00:00``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rows(sql: str, params: Sequence | dict = ()) -> list[dict]:
    return list(get_db().query(sql, params))


def _row(sql: str, params: Sequence | dict = ()) -> dict | None:
    rows = _rows(sql, params)
    return rows[0] if rows else None


def _one(sql: str, params: Sequence | dict = ()) -> dict:
    """The one row a caller knows exists (just written in its transaction)."""
    row = _row(sql, params)
    if row is None:
        raise LookupError(sql)
    return row


def _execute(sql: str, params: Sequence | dict = ()):
    return get_db().execute(sql, params)


def table_counts(tables: Iterable[str] | None = None) -> dict[str, int]:
    """Row counts per table (tests and the health check)."""
    db = get_db()
    names = (
        list(tables)
        if tables is not None
        else [t for t in db.table_names() if not t.startswith("_")]
    )
    return {name: db[name].count for name in names}


def ping() -> bool:
    """True when the database answers."""
    return _row("SELECT 1 AS ok") == {"ok": 1}
