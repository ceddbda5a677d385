"""The typed requests and responses of the host API (pydantic); the OpenAPI document is
generated from these (``portal.api.openapi``). Nothing here can hold a secret: a response is
built field by field from the stored records, never by dumping a row."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: The host's id of an organization: 1 to 64 of ``A-Z a-z 0-9 . _ -`` (RFC 3986 unreserved, so
#: it is a URL path segment as is), starting with a letter or digit. Checked before any SQL.
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: Connection ids are ``secrets.token_hex(16)``.
CONNECTION_ID_PATTERN = r"^[0-9a-f]{32}$"
#: A cursor is what ``next_cursor`` gave: base64url, bounded.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"

ExternalId = Annotated[str, StringConstraints(pattern=EXTERNAL_ID_PATTERN)]
ConnectionId = Annotated[str, StringConstraints(pattern=CONNECTION_ID_PATTERN)]
#: No control characters, no leading or trailing white space, at most 200 characters.
OrganizationName = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f\s]([^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?$",
    ),
]
Timestamp = Annotated[str, Field(description="ISO 8601, UTC.")]

Kind = Literal["customer_owned", "service_provider"]
State = Literal["draft", "waiting", "connected", "needs_attention", "needs_reconnect"]
Health = Literal["unknown", "healthy", "degraded", "failing"]
ErrorClass = Literal["transient", "needs_customer", "our_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrganizationIn(_Strict):
    """Create the organization with this name, or rename it."""

    name: OrganizationName


class OrganizationOut(BaseModel):
    external_id: ExternalId
    name: str
    created_at: Timestamp


class ListQuery(BaseModel):
    """Unknown query parameters are ignored (a cache buster must not break a client); bodies
    are strict."""

    limit: int = Field(50, ge=1, le=100, description="At most this many connections.")
    cursor: Annotated[str, StringConstraints(pattern=CURSOR_PATTERN)] | None = Field(
        None, description="The next_cursor of the previous page."
    )


class Tenant(BaseModel):
    id: str | None = Field(description="The Entra tenant id (a GUID) once known.")
    name: str | None
    domain: str | None = Field(description="The tenant's default domain.")


class ChecklistChange(BaseModel):
    key: str
    to: str
    text: str


class HealthRecord(BaseModel):
    """How the last attempts to reach the tenant went, apart from the state."""

    last_attempt_at: Timestamp | None
    last_success_at: Timestamp | None
    last_failure_at: Timestamp | None
    failing_since: Timestamp | None
    error_class: ErrorClass | None = Field(
        description="Whose move a failure is: transient (nobody's yet), needs_customer, "
        "our_config (ours)."
    )
    last_changes: list[ChecklistChange]


class ChecklistSummary(BaseModel):
    """The permission checklist of the last finished check."""

    total: int
    ok: int
    missing: int
    unknown: int
    missing_items: list[str] = Field(description="Keys of the items found missing.")


class ConnectionOut(BaseModel):
    id: ConnectionId
    organization: ExternalId
    kind: Kind
    display_name: str | None
    cloud: str | None
    tenant: Tenant
    state: State
    health: Health
    health_record: HealthRecord
    last_checked_at: Timestamp | None
    checklist: ChecklistSummary | None = Field(description="None until a check finished.")
    certificate_expires_at: Timestamp | None = Field(
        description="not_after of the certificate in use (customer owned)."
    )
    created_at: Timestamp
    updated_at: Timestamp


class ConnectionPage(BaseModel):
    items: list[ConnectionOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; None: last.")


class CleanupStep(BaseModel):
    title: str
    how: str
    url: str | None


class DeletionOut(BaseModel):
    """What deleting destroyed, and what is left for the customer to remove at Microsoft."""

    id: ConnectionId
    deleted_at: Timestamp
    destroyed: dict[str, int]
    certificate_thumbprints: list[str]
    microsoft_cleanup: list[CleanupStep]
