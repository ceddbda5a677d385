"""Setup links through the API: make one for a connection (or a new connection of a kind),
read it, revoke it (portal/guests/setup_links.py has the rules)."""

from __future__ import annotations

import re

from flask import g
from spectree import Response

from portal import storage
from portal.api import bp, lookups
from portal.api.guest_models import SETUP_LINK_ID_PATTERN, SetupLinkIn, SetupLinkOut
from portal.api.openapi import operation
from portal.api.problems import ApiProblem, Problem, ValidationIssue
from portal.guests import setup_links

_LINK_ID = re.compile(SETUP_LINK_ID_PATTERN)


def link_out(link: storage.SetupLink, org: storage.Organization, url: str | None) -> SetupLinkOut:
    assert org.external_id is not None
    return SetupLinkOut(
        id=link.id,
        url=url,
        organization=org.external_id,
        connection_id=link.connection_id,
        created_at=link.created_at,
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
        spent_at=link.spent_at,
        uses=link.uses,
        last_used_at=link.last_used_at,
        microsoft_account=link.microsoft_account,
    )


def _link(link_id: str) -> tuple[storage.SetupLink, storage.Organization]:
    if not _LINK_ID.fullmatch(link_id):
        raise ApiProblem(
            "invalid_request",
            "link_id is not valid.",
            errors=[ValidationIssue(location=["path", "link_id"], message="sl_ and 24 hex")],
        )
    link = storage.get_setup_link(link_id)
    org = storage.get_organization(link.org_id) if link else None
    if link is None or org is None or org.external_id is None:
        raise ApiProblem("not_found", "There is no setup link with this id.")
    return link, org


@bp.post("/setup-links")
@operation(
    "setup_links:write",
    "createSetupLink",
    Response(HTTP_201=SetupLinkOut, HTTP_422=Problem),
    "setup links",
)
def create_setup_link(json: SetupLinkIn):
    """A link to send the customer's IT admin: it opens the setup of one connection.

    Name the connection (``connection_id``), or give ``kind`` to make a new connection for the
    link. The URL is in this answer only. The link works until the connection is linked, the
    link expires (``ttl_days``, default 7, at most 30) or it is revoked.
    """
    org = lookups.organization(json.organization)
    if (json.connection_id is None) == (json.kind is None):
        raise ApiProblem(
            "invalid_request",
            "Give either connection_id or kind.",
            errors=[ValidationIssue(location=["body"], message="connection_id xor kind")],
        )
    key = lookups.api_key_detail(g.api_key)
    if json.connection_id is not None:
        connection, owner = lookups.connection(json.connection_id)
        if owner.id != org.id:
            raise ApiProblem("not_found", "There is no connection with this id.")
    else:
        assert json.kind is not None
        with storage.write_transaction():
            connection = storage.create_connection(org.id, json.kind, json.display_name)
            storage.audit_connection(
                "connection.create",
                connection,
                actor=None,
                detail={"kind": json.kind, "api_key": key},
            )
    issued = setup_links.issue(
        connection, days=json.ttl_days, created_by=f"api_key:{g.api_key.key_id}"
    )
    return link_out(issued.link, org, issued.url), 201


@bp.get("/setup-links/<link_id>")
@operation("setup_links:write", "getSetupLink", Response(HTTP_200=SetupLinkOut), "setup links")
def get_setup_link(link_id: str):
    """A setup link (without its URL, which only its creation shows)."""
    link, org = _link(link_id)
    return link_out(link, org, None)


@bp.delete("/setup-links/<link_id>")
@operation("setup_links:write", "revokeSetupLink", Response(HTTP_200=SetupLinkOut), "setup links")
def revoke_setup_link(link_id: str):
    """Revoke a setup link: the next request of a session it started ends that session.
    Idempotent."""
    link, org = _link(link_id)
    setup_links.revoke(link, revoked_by=f"api_key:{g.api_key.key_id}")
    return link_out(storage.get_setup_link(link.id) or link, org, None)
