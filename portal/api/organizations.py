"""Organizations by the host's own id: create or rename (``PUT``), read (``GET``)."""

from __future__ import annotations

from flask import g
from spectree import Response

from portal import storage
from portal.api import bp, lookups
from portal.api.models import OrganizationIn, OrganizationOut
from portal.api.openapi import operation
from portal.api.problems import ApiProblem, Problem


def organization_out(org: storage.Organization) -> OrganizationOut:
    assert org.external_id is not None  # only organizations the host named reach here
    return OrganizationOut(external_id=org.external_id, name=org.name, created_at=org.created_at)


@bp.put("/organizations/<external_id>")
@operation(
    "connections:write",
    "putOrganization",
    Response(HTTP_200=OrganizationOut, HTTP_201=OrganizationOut, HTTP_409=Problem),
    "organizations",
)
def put_organization(external_id: str, json: OrganizationIn):
    """Create or rename an organization.

    Idempotent: 201 when it was created, 200 otherwise (renamed, or the same name again).
    409 when another organization already has the name.
    """
    external_id = lookups.external_id(external_id)
    try:
        with storage.write_transaction():
            org, before = storage.put_organization_by_external_id(external_id, json.name)
            if before is None or before.name != org.name:
                storage.record_audit(
                    "organization.create" if before is None else "organization.rename",
                    org_id=org.id,
                    detail={
                        "external_id": external_id,
                        "name": org.name,
                        "previous_name": before.name if before else None,
                        "api_key": lookups.api_key_detail(g.api_key),
                    },
                )
    except storage.OrganizationNameTaken as exc:
        raise ApiProblem("conflict", "Another organization already has this name.") from exc
    return organization_out(org), 201 if before is None else 200


@bp.get("/organizations/<external_id>")
@operation(
    "connections:read", "getOrganization", Response(HTTP_200=OrganizationOut), "organizations"
)
def get_organization(external_id: str):
    """An organization by its external id."""
    return organization_out(lookups.organization(external_id))
