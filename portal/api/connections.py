"""Connections of an organization: list, read, delete (the same deletion as the portal's)."""

from __future__ import annotations

import base64
import binascii

from flask import current_app, g
from spectree import Response

from portal import storage
from portal.api import bp, lookups
from portal.api.models import (
    ChecklistChange,
    ChecklistSummary,
    CleanupStep,
    ConnectionOut,
    ConnectionPage,
    DeletionOut,
    HealthRecord,
    ListQuery,
    Tenant,
)
from portal.api.openapi import operation
from portal.api.problems import ApiProblem, ValidationIssue
from portal.connections import deletion


def connection_out(connection: storage.Connection, org: storage.Organization) -> ConnectionOut:
    """The connection as the host sees it: built field by field (no secret is ever a field)."""
    assert org.external_id is not None
    certificate = storage.active_certificate(connection.id)
    return ConnectionOut(
        id=connection.id,
        organization=org.external_id,
        kind=connection.kind,  # type: ignore[arg-type]  # storage.KINDS, checked on insert
        display_name=connection.display_name,
        cloud=connection.cloud,
        tenant=Tenant(
            id=connection.tenant_id, name=connection.tenant_name, domain=connection.tenant_domain
        ),
        state=connection.state,  # type: ignore[arg-type]  # a live state (deleted ones 404)
        health=connection.health,  # type: ignore[arg-type]
        health_record=HealthRecord(
            last_attempt_at=connection.last_attempt_at,
            last_success_at=connection.last_success_at,
            last_failure_at=connection.last_failure_at,
            failing_since=connection.failing_since,
            error_class=connection.error_class,  # type: ignore[arg-type]
            last_changes=[ChecklistChange(**change) for change in connection.last_changes],
        ),
        last_checked_at=connection.last_checked_at,
        checklist=checklist_summary(connection.last_check),
        certificate_expires_at=certificate.not_after if certificate else None,
        created_at=connection.created_at,
        updated_at=connection.updated_at,
    )


def checklist_summary(report: dict | None) -> ChecklistSummary | None:
    """Counts and the missing keys of a stored report (``VerificationReport.as_dict``)."""
    if not report:
        return None
    items = [i for i in report.get("checklist") or () if isinstance(i, dict)]
    status = [i.get("status") for i in items]
    return ChecklistSummary(
        total=len(items),
        ok=status.count("ok"),
        missing=status.count("missing"),
        unknown=len(items) - status.count("ok") - status.count("missing"),
        missing_items=[str(i.get("key")) for i in items if i.get("status") == "missing"],
    )


def _cursor(connection: storage.Connection) -> str:
    raw = f"{connection.created_at}|{connection.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _after(cursor: str) -> tuple[str, str]:
    """The (created_at, id) a cursor points after; 400 for anything we did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    created_at, _, connection_id = raw.partition("|")
    if not created_at or not lookups.is_connection_id(connection_id):
        raise ApiProblem(
            "invalid_request",
            "The cursor is not one this API gave.",
            errors=[ValidationIssue(location=["query", "cursor"], message="unknown cursor")],
        )
    return created_at, connection_id


@bp.get("/organizations/<external_id>/connections")
@operation("connections:read", "listConnections", Response(HTTP_200=ConnectionPage), "connections")
def list_connections(external_id: str, query: ListQuery):
    """The organization's connections, oldest first, a page at a time (deleted ones left out)."""
    org = lookups.organization(external_id)
    connections = storage.list_connections(org.id)
    if query.cursor:
        after = _after(query.cursor)
        connections = [c for c in connections if (c.created_at, c.id) > after]
    page = connections[: query.limit]
    more = len(connections) > query.limit
    return ConnectionPage(
        items=[connection_out(c, org) for c in page],
        next_cursor=_cursor(page[-1]) if more else None,
    )


@bp.get("/connections/<connection_id>")
@operation("connections:read", "getConnection", Response(HTTP_200=ConnectionOut), "connections")
def get_connection(connection_id: str):
    """One connection."""
    return connection_out(*lookups.connection(connection_id))


@bp.delete("/connections/<connection_id>")
@operation("connections:write", "deleteConnection", Response(HTTP_200=DeletionOut), "connections")
def delete_connection(connection_id: str):
    """Delete a connection: every secret we hold for it is destroyed (the portal's Delete).

    Nothing is removed at Microsoft: ``microsoft_cleanup`` lists what the customer may remove
    in their tenant. A deleted connection is not found afterwards.
    """
    connection, _org = lookups.connection(connection_id)
    with storage.write_transaction():
        receipt = deletion.delete_connection(connection, actor=None)
        # The lifecycle's own connection.delete row has no user to name; this row, written in
        # the same transaction, names the key that asked.
        storage.audit_connection(
            "api.connection.delete",
            connection,
            actor=None,
            detail={"api_key": lookups.api_key_detail(g.api_key)},
        )
    config = current_app.config
    cleanup = deletion.microsoft_cleanup(
        storage.get_connection_or_raise(connection.id),
        config.get("SP_CLIENT_ID"),
        config.get("SP_CLOUDS"),
    )
    return DeletionOut(
        id=receipt.connection_id,
        deleted_at=receipt.deleted_at,
        destroyed=receipt.destroyed,
        certificate_thumbprints=list(receipt.thumbprints),
        microsoft_cleanup=[CleanupStep(title=s.title, how=s.how, url=s.url) for s in cleanup.steps],
    )
