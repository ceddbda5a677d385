"""Deleting a connection: every secret destroyed and the row kept, in one transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence

from portal.storage.certificates import list_certificates
from portal.storage.connections import ConnectionDeleted, get_connection
from portal.storage.db import write_transaction
from portal.storage.events import add_health_event, list_audit_events, record_audit
from portal.storage.records import AuditEvent, DeletionReceipt
from portal.storage.sql import _execute, _rows, utcnow


def delete_connection_and_secrets(connection_id: str, actor: int | None) -> DeletionReceipt:
    """Delete a connection, in one transaction: every secret it owns is destroyed (token cache,
    every certificate's private key, the MSAL flows of pending sign-ins), pending flows and
    handoffs are burnt, certificates retired, the raw typed inputs cleared, the state set to
    ``deleted``; a health event and an audit row record it. The row stays (history, audit,
    support). Raises KeyError for an unknown connection and ConnectionDeleted for a deleted one.
    """
    connection_id = str(connection_id)
    with write_transaction():
        connection = get_connection(connection_id)
        if connection is None:
            raise KeyError(connection_id)
        if connection.deleted:
            raise ConnectionDeleted(connection_id)
        certificates = list_certificates(connection_id)
        now, at = time.time(), utcnow()
        destroyed = {
            "token_cache": _destroy_secrets("connections", [connection_id]),
            "private_keys": _destroy_secrets("certificates", [c.id for c in certificates]),
            **_burn_pending_sign_ins(connection_id, now),
            **_drop_unlinked_results(connection_id, at),
        }
        retired = _execute(
            "UPDATE certificates SET status = 'retired' "
            "WHERE connection_id = ? AND status != 'retired'",
            [connection_id],
        ).rowcount
        _execute("DELETE FROM refresh_leases WHERE connection_id = ?", [connection_id])
        _mark_deleted(connection_id, at)
        receipt = DeletionReceipt(
            connection_id,
            connection.org_id,
            connection.kind,
            connection.cloud,
            connection.tenant_id,
            connection.client_id,
            at,
            tuple(c.thumbprint_sha1 for c in certificates),
            destroyed,
        )
        add_health_event(
            connection_id,
            "deleted",
            "unknown",
            {"destroyed": destroyed, "certificates_retired": retired},
            at=at,
        )
        record_audit(
            "connection.delete",
            actor=actor,
            org_id=connection.org_id,
            connection_id=connection_id,
            detail=_deletion_detail(receipt, retired),
        )
    return receipt


def _mark_deleted(connection_id: str, at: str) -> None:
    """Set the row to ``deleted`` and clear what was typed. The draft and tenant_input are free
    text as typed (anything pasted lands there); the validated identifiers stay: support and the
    clean-up steps need them."""
    _execute(
        "UPDATE connections SET state = 'deleted', health = 'unknown', deleted_at = ?, "
        "updated_at = ?, draft = '{}', tenant_input = NULL WHERE id = ?",
        [at, at, connection_id],
    )


def _drop_unlinked_results(connection_id: str, at: str) -> dict[str, int]:
    """Sign-ins redeemed but never linked: a popup result waiting for its confirmation, a link
    held for the operator. Their token caches are destroyed; the holds are closed."""
    handoffs = [
        r["id"] for r in _rows("SELECT id FROM handoffs WHERE connection_id = ?", [connection_id])
    ]
    reviews = [
        r["id"]
        for r in _rows(
            "SELECT id FROM link_reviews WHERE connection_id = ? AND status = 'held'",
            [connection_id],
        )
    ]
    _execute(
        "UPDATE link_reviews SET status = 'rejected', decided_at = ?, "
        "decided_by = 'connection deleted' WHERE connection_id = ? AND status = 'held'",
        [at, connection_id],
    )
    return {
        "unconfirmed_sign_ins": _destroy_secrets("handoffs", handoffs),
        "held_links": _destroy_secrets("link_reviews", reviews),
    }


def _destroy_secrets(owner_table: str, owner_ids: Sequence[str]) -> int:
    """Delete every vault blob of these owners (all purposes); returns how many."""
    count = 0
    for owner_id in owner_ids:
        count += _execute(
            "DELETE FROM vault_blobs WHERE owner_table = ? AND owner_id = ?",
            [owner_table, str(owner_id)],
        ).rowcount
    return count


def _burn_pending_sign_ins(connection_id: str, now: float) -> dict[str, int]:
    """Consume every unused auth flow and handoff of the connection and destroy the flows'
    secrets, so a sign-in started before the deletion can never complete after it."""
    states = [
        r["state"]
        for r in _rows("SELECT state FROM auth_flows WHERE connection_id = ?", [connection_id])
    ]
    flows = _execute(
        "UPDATE auth_flows SET consumed_at = ? WHERE connection_id = ? AND consumed_at IS NULL",
        [now, connection_id],
    ).rowcount
    handoffs = _execute(
        "UPDATE handoffs SET consumed_at = ? WHERE connection_id = ? AND consumed_at IS NULL",
        [now, connection_id],
    ).rowcount
    return {
        "flow_secrets": _destroy_secrets("auth_flows", states),
        "auth_flows_burnt": flows,
        "handoffs_burnt": handoffs,
    }


def _deletion_detail(receipt: DeletionReceipt, retired: int) -> dict:
    return {
        "kind": receipt.kind,
        "cloud": receipt.cloud,
        "tenant_id": receipt.tenant_id,
        "client_id": receipt.client_id,
        "thumbprints": list(receipt.thumbprints),
        "destroyed": receipt.destroyed,
        "certificates_retired": retired,
    }


def deletion_audit(connection_id: str) -> AuditEvent | None:
    """The audit row of the connection's deletion (who deleted it, and what was destroyed)."""
    events = list_audit_events(
        connection_id=str(connection_id), action="connection.delete", limit=1
    )
    return events[0] if events else None
