"""Link reviews: a delegated link to a tenant that another organization has linked, held."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from portal.storage.db import write_transaction
from portal.storage.records import Connection
from portal.storage.sql import _execute, _row, _rows, utcnow
from portal.storage.vault_blobs import delete_secret, get_secret, put_secret


@dataclass(frozen=True)
class LinkReview:
    """A delegated link held for the operator: its tenant is already linked elsewhere."""

    id: str
    connection_id: str
    org_id: int
    tenant_id: str
    other_org_ids: tuple[int, ...]
    requested_by: int | None
    detail: dict
    status: str
    created_at: str
    decided_at: str | None
    decided_by: str | None


def _link_review(row: dict | None) -> LinkReview | None:
    if row is None:
        return None
    row = dict(row)
    row["other_org_ids"] = tuple(json.loads(row["other_org_ids"]))
    row["detail"] = json.loads(row["detail"] or "{}")
    return LinkReview(**row)


def create_link_review(
    connection: Connection,
    *,
    tenant_id: str,
    other_org_ids: Sequence[int],
    requested_by: int | None,
    detail: dict,
    token_cache: bytes,
) -> LinkReview:
    """Hold a link for the operator (inside the caller's transaction or its own)."""
    # Hex: an id typed on a command line must never start with "-" (read as an option).
    review_id = secrets.token_hex(12)
    now = utcnow()
    with write_transaction():
        _execute(
            "INSERT INTO link_reviews (id, connection_id, org_id, tenant_id, other_org_ids, "
            "requested_by, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                review_id,
                connection.id,
                connection.org_id,
                tenant_id,
                json.dumps(list(other_org_ids)),
                requested_by,
                json.dumps(detail, sort_keys=True),
                now,
            ],
        )
        put_secret("link_reviews", review_id, "token_cache", token_cache)
    review = get_link_review(review_id)
    assert review is not None
    return review


def get_link_review(review_id: str) -> LinkReview | None:
    return _link_review(_row("SELECT * FROM link_reviews WHERE id = ?", [str(review_id)]))


def list_link_reviews(
    status: str | None = "held", connection_id: str | None = None
) -> list[LinkReview]:
    """Reviews, oldest first (``status=None``: every status)."""
    clauses, params = [], []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if connection_id is not None:
        clauses.append("connection_id = ?")
        params.append(str(connection_id))
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = _rows(f"SELECT * FROM link_reviews {where} ORDER BY created_at, rowid", params)
    return [r for r in (_link_review(row) for row in rows) if r is not None]


def decide_link_review(
    review_id: str, *, approve: bool, decided_by: str
) -> tuple[LinkReview, bytes | None] | None:
    """Inside the caller's transaction: mark a held review decided and take its token cache out
    of the vault (destroyed; returned only when approved). None unless it is still held."""
    row = _row("SELECT * FROM link_reviews WHERE id = ? AND status = 'held'", [str(review_id)])
    if row is None:
        return None
    token_cache = get_secret("link_reviews", review_id, "token_cache")
    delete_secret("link_reviews", review_id, "token_cache")
    _execute(
        "UPDATE link_reviews SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?",
        ["approved" if approve else "rejected", utcnow(), decided_by, str(review_id)],
    )
    review = get_link_review(review_id)
    assert review is not None
    return review, (token_cache if approve else None)
