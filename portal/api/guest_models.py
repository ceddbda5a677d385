"""Requests and responses of guest access: connect sessions (embedding) and setup links."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from portal.api.models import ConnectionId, ExternalId, Kind, Timestamp, _Strict
from portal.guests import connect_sessions, setup_links

#: scheme://host[:port], nothing else (what a browser reports as an origin).
ORIGIN_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$"
Origin = Annotated[str, StringConstraints(pattern=ORIGIN_PATTERN, max_length=200)]
#: An absolute http(s) URL without white space or control characters.
ReturnUrl = Annotated[
    str,
    StringConstraints(
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s\x00-\x1f\x7f]*)?$", max_length=2000
    ),
]
#: The host's id of its user: printable, no white space at the ends.
EndUserId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]
Email = Annotated[
    str, StringConstraints(pattern=r"^[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+$", max_length=320)
]
DisplayName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class EndUser(_Strict):
    """The host's user the session is for; the host vouches for who they are."""

    id: EndUserId = Field(description="The host's own id of the user.")
    email: Email | None = None
    display_name: DisplayName | None = None


class ConnectSessionIn(_Strict):
    organization: ExternalId = Field(description="The organization's external id.")
    end_user: EndUser
    allowed_origins: list[Origin] = Field(
        min_length=1,
        max_length=10,
        description="Origins of the host pages that may open the session; each must be in "
        "the deployment's FRAME_ANCESTORS.",
    )
    kind: Kind | None = Field(None, description="Start a new connection of this kind.")
    connection_id: ConnectionId | None = Field(
        None, description="Open (or reconnect) this connection; it keeps its id."
    )
    return_url: ReturnUrl | None = Field(
        None, description="Where the host page goes when the user closes the portal."
    )
    ttl_seconds: int = Field(
        connect_sessions.DEFAULT_TTL_SECONDS,
        ge=30,
        le=connect_sessions.MAX_TTL_SECONDS,
        description="How long the token may wait to be used.",
    )


class ConnectSessionOut(BaseModel):
    id: str = Field(description="The session's public id (cs_...), as in the audit log.")
    token: str = Field(
        description="Single use; hand it to embed.js in the page (never in a URL). Shown once."
    )
    expires_at: Timestamp
    organization: ExternalId
    allowed_origins: list[str]
    connection_id: ConnectionId | None
    kind: Kind | None


class SetupLinkIn(_Strict):
    organization: ExternalId
    connection_id: ConnectionId | None = Field(
        None, description="The connection to set up; or give kind to make a new one."
    )
    kind: Kind | None = Field(None, description="Make a new connection of this kind.")
    display_name: DisplayName | None = Field(None, description="The new connection's name.")
    ttl_days: int = Field(setup_links.DEFAULT_DAYS, ge=1, le=setup_links.MAX_DAYS)


class SetupLinkOut(BaseModel):
    id: str = Field(description="sl_...: what DELETE /setup-links/{link_id} takes.")
    url: str | None = Field(description="The link to send (shown once, at creation).")
    organization: ExternalId
    connection_id: ConnectionId
    created_at: Timestamp
    expires_at: Timestamp
    revoked_at: Timestamp | None
    spent_at: Timestamp | None = Field(description="When the connection was linked.")
    uses: int
    last_used_at: Timestamp | None
    microsoft_account: str | None = Field(
        description="The Microsoft account the visitor signed in with, once known."
    )


#: A setup link's public id.
SETUP_LINK_ID_PATTERN = r"^sl_[0-9a-f]{24}$"
SetupLinkId = Annotated[str, StringConstraints(pattern=SETUP_LINK_ID_PATTERN)]
