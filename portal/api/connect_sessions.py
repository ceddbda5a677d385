"""Connect sessions: the host's backend mints one for its user; the page hands the token to
``embed.js`` (portal/guests/connect_sessions.py has the rules)."""

from __future__ import annotations

from flask import g
from spectree import Response

from portal.api import bp, lookups
from portal.api.guest_models import ConnectSessionIn, ConnectSessionOut
from portal.api.openapi import operation
from portal.api.problems import ApiProblem, Problem, ValidationIssue
from portal.guests import connect_sessions


@bp.post("/connect-sessions")
@operation(
    "sessions:write",
    "createConnectSession",
    Response(HTTP_201=ConnectSessionOut, HTTP_422=Problem),
    "connect sessions",
)
def create_connect_session(json: ConnectSessionIn):
    """Start a connect session for one of the organization's users.

    The token is single use and expires after ``ttl_seconds`` (default 600, at most 3600).
    Give it to ``EntraPortal.open({token})`` in a page on one of ``allowed_origins``; the
    portal's frame trades it for a session bound to this user, the organization and that
    page's origin. 422 when an origin is not in the deployment's FRAME_ANCESTORS.
    """
    org = lookups.organization(json.organization)
    connection = None
    if json.connection_id is not None:
        connection, owner = lookups.connection(json.connection_id)
        if owner.id != org.id:
            raise ApiProblem("not_found", "There is no connection with this id.")
    try:
        minted = connect_sessions.mint(
            org,
            connect_sessions.EndUser(
                json.end_user.id, json.end_user.email, json.end_user.display_name
            ),
            allowed_origins=list(dict.fromkeys(json.allowed_origins)),
            kind=json.kind,
            connection=connection,
            return_url=json.return_url,
            ttl_seconds=json.ttl_seconds,
            api_key_id=g.api_key.key_id,
        )
    except connect_sessions.MintRefused as refused:
        raise ApiProblem(
            refused.code,
            str(refused),
            errors=[ValidationIssue(location=["body", refused.field], message=str(refused))],
        ) from refused
    found = minted.session
    assert org.external_id is not None
    return (
        ConnectSessionOut(
            id=found.id,
            token=minted.token,
            expires_at=found.expires_at,
            organization=org.external_id,
            allowed_origins=list(found.allowed_origins),
            connection_id=found.connection_id,
            kind=found.kind,  # type: ignore[arg-type]  # checked by the table
        ),
        201,
    )
