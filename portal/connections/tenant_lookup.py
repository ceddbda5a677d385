"""Live tenant validation for the customer-owned setup: the typed tenant (GUID or domain) and
client ID checked while typing (no network), then the tenant looked up in the chosen cloud
(Microsoft's discovery document) and the answer kept in the connection's draft.

Needs an app context (the cloud table and the discovery cache), not a request.
"""

from __future__ import annotations

import re
from typing import Any

from portal import storage
from portal.connections import lifecycle
from portal.entra.clouds import Cloud
from portal.entra.tenant import (
    Discovery,
    TenantInputError,
    TenantRef,
    discover_tenant,
    parse_tenant_input,
)
from portal.services import caches, cloud_table, find_cloud

#: Longest tenant or client text kept (a domain name is at most 253 characters).
MAX_INPUT = 300
EXAMPLE_GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
_GUID_LIKE = re.compile(r"^[{(]?[0-9A-Fa-f-]{8,}[)}]?$")


def parse_tenant(text: str) -> TenantRef:
    """``parse_tenant_input``, with a precise message for a tenant ID that is almost a GUID
    (a missing digit or dash would otherwise read as a domain without a dot)."""
    try:
        return parse_tenant_input(text)
    except TenantInputError:
        stripped = text.strip()
        if _GUID_LIKE.match(stripped) and any(c.isdigit() for c in stripped):
            digits = sum(c in "0123456789abcdefABCDEF" for c in stripped)
            raise TenantInputError(
                f"That looks like a tenant ID, but it has {digits} hexadecimal digits: a tenant "
                f"ID has 32, grouped 8-4-4-4-12 with dashes, like {EXAMPLE_GUID}."
            ) from None
        raise


def tenant_message(text: str) -> tuple[str | None, str]:
    """(level, message) for a tenant being typed; (None, "") when nothing was typed."""
    if not text.strip():
        return None, ""
    try:
        ref = parse_tenant(text)
    except TenantInputError as exc:
        return "error", str(exc)
    if ref.kind == "guid":
        return "ok", "Looks like a tenant ID."
    return "ok", "Looks like a domain name: we will look up its tenant ID."


def client_message(text: str | None) -> tuple[str, str] | None:
    """(level, message) for a typed client ID; None when nothing was typed."""
    if not text or not text.strip():
        return None
    if client_guid(text) is None:
        return (
            "error",
            f"The Application (client) ID is a GUID like {EXAMPLE_GUID} "
            "(8-4-4-4-12 hexadecimal digits).",
        )
    return ("ok", "Looks like a client ID. We prove that it exists when you link the account.")


def client_guid(text: str | None) -> str | None:
    """The client ID as a lower-case GUID, or None when the text is not one."""
    try:
        ref = parse_tenant_input(text or "")
    except TenantInputError:
        return None
    return ref.value if ref.kind == "guid" else None


def is_current(connection: storage.Connection) -> bool:
    """The stored lookup belongs to the current cloud and tenant input (else it is stale)."""
    lookup = connection.draft.get("lookup")
    return (
        isinstance(lookup, dict)
        and lookup.get("cloud") == connection.cloud
        and lookup.get("input") == connection.draft.get("tenant_input")
    )


def look_up(connection: storage.Connection, *, actor: int | None) -> dict[str, Any]:
    """Discover the typed tenant in the connection's cloud; the answer goes to the draft and a
    tenant found becomes the connection's tenant ID (through the lifecycle: a proven connection
    whose tenant changed waits again)."""
    text = connection.draft.get("tenant_input") or ""
    previous = connection.draft.get("lookup") if is_current(connection) else None
    lookup: dict[str, Any] = {
        "input": text,
        "cloud": connection.cloud,
        "tenant_id": None,
        "kind": None,
        "other_cloud": None,
        "other_cloud_name": None,
    }
    try:
        ref = parse_tenant(text)
    except TenantInputError as exc:
        lookup.update(outcome="malformed", message=str(exc))
    else:
        lookup["kind"] = ref.kind
        cloud = find_cloud(connection.cloud)
        if cloud is None:
            lookup.update(outcome="no_cloud", message="Choose the cloud first (step 1).")
        else:
            lookup.update(_discover(cloud, ref))
    if lookup["outcome"] == "error" and previous and previous.get("outcome") == "found":
        # Microsoft did not answer (throttled, 5xx, unreachable): that says nothing about the
        # tenant, so what it said about this same input before stands and the state with it.
        lookup = {**previous, "message": STILL_FOUND}
    tenant_id = lookup["tenant_id"] if lookup["outcome"] == "found" else None
    storage.save_draft(connection.id, {"lookup": lookup})
    lifecycle.identity_changed(connection.id, {"tenant_id": tenant_id}, actor=actor)
    return lookup


#: The lookup's message when Microsoft did not answer again about a tenant it found before.
STILL_FOUND = (
    "Microsoft did not answer just now; the tenant we found for this input before still stands."
)


def _discover(cloud: Cloud, ref: TenantRef) -> dict[str, Any]:
    found = discover_tenant(cloud_table(), cloud.key, ref, cache=caches().discovery)
    answer: dict[str, Any] = {
        "outcome": found.outcome,
        "tenant_id": found.tenant_id,
        "message": _message(found, cloud),
    }
    if found.other_cloud:
        other = find_cloud(found.other_cloud)
        answer.update(
            other_cloud=found.other_cloud,
            other_cloud_name=other.label if other else found.other_cloud,
        )
    return answer


def _message(found: Discovery, cloud: Cloud) -> str:
    if found.outcome == "found":
        return f"Found your tenant in {cloud.label}."
    if found.outcome == "other_cloud":
        other = find_cloud(found.other_cloud)
        return (
            f"This tenant is in another cloud: {other.label if other else found.other_cloud}"
            f", not {cloud.label}."
        )
    if found.outcome == "not_found":
        return (
            f"We couldn't find this tenant in {cloud.label}. Check the tenant ID or domain, "
            "and the cloud."
        )
    if found.outcome == "malformed":
        return "Microsoft says this is neither a valid tenant ID nor a domain name."
    return "We couldn't reach Microsoft to look the tenant up. This is usually brief: try again."
