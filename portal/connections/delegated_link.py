"""What becomes of a delegated sign-in once Microsoft has answered and the id token is proven.

Three endings (docs/decisions/0004-handoff-bound-to-its-session.md):

- **linked**: the token cache, the consent fields, a health event and an audit row, in one
  transaction (``lifecycle.link_recorded``);
- **waiting for confirmation**: a sign-in run in a popup stays pending until the browser session
  that started it (the iframe polling ``link-status``) confirms the tenant and the Microsoft user
  it is shown (RFC 9700 §4.7: the authorization response must belong to the user agent and the
  user that started the flow); unconfirmed, it expires and its tokens are destroyed;
- **held for the operator**: a tenant that another organization has already linked is never
  linked silently; support sees the hold with both organizations, an operator approves or
  rejects it (``flask link-review``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

from portal import storage
from portal.connections import lifecycle
from portal.guests import setup_links
from portal.storage.db import write_transaction

log = logging.getLogger("portal.delegated_link")

#: Scopes of the OpenID layer: never "granted" product permissions.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


@dataclass(frozen=True)
class SignedIn:
    """What a redeemed sign-in proved (from the validated id token and the token response).
    No secrets: this is stored while a result waits and shown to the person confirming it."""

    tenant_id: str
    object_id: str
    name: str | None
    username: str | None
    cloud: str
    client_id: str
    scopes: tuple[str, ...]
    requested: tuple[str, ...]

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SignedIn:
        return cls(
            **{
                **data,
                "scopes": tuple(data.get("scopes") or ()),
                "requested": tuple(data.get("requested") or ()),
            }
        )

    @property
    def domain(self) -> str | None:
        """The domain of the account's sign-in name (what a person recognises of a tenant)."""
        _user, at, domain = (self.username or "").rpartition("@")
        return domain if at and domain else None


def missing_scopes(connection: storage.Connection, required: tuple[str, ...]) -> list[str]:
    """Required scopes the connection's last consent did not grant (case-insensitive)."""
    granted = {s.lower() for s in connection.granted_scopes}
    return [s for s in required if s.lower() not in granted]


def _link_fields(
    connection: storage.Connection, signed_in: SignedIn, required: tuple[str, ...]
) -> tuple[dict, list[str], list[str]]:
    granted = {s for s in signed_in.scopes if s.lower() not in RESERVED_SCOPES}
    if connection.tenant_id == signed_in.tenant_id:
        # Incremental consent asked only for what was missing; the earlier grant still stands
        # (Entra's scp lists every consented scope of the resource; union is the same set).
        granted |= set(connection.granted_scopes)
    granted_sorted = sorted(granted, key=str.lower)
    missing = missing_scopes(replace(connection, granted_scopes=tuple(granted_sorted)), required)
    now = storage.utcnow()
    fields = {
        "tenant_id": signed_in.tenant_id,
        "cloud": signed_in.cloud,
        "client_id": signed_in.client_id,
        "consented_by_oid": signed_in.object_id,
        "consented_by_name": signed_in.name,
        "granted_scopes": granted_sorted,
        "consented_at": now,
        "refresh_last_ok_at": now,
        "refresh_failure_days": 0,
        "refresh_last_failure_day": None,
    }
    return fields, granted_sorted, missing


def _organization_label(org: storage.Organization | None, org_id: int) -> dict:
    return {"id": org_id, "name": org.name if org else None}


def complete(
    connection: storage.Connection,
    signed_in: SignedIn,
    token_cache: bytes,
    *,
    required: tuple[str, ...],
    actor: int | None,
    handoff_id: str | None = None,
    approved_by: str | None = None,
) -> str:
    """Link, or hold for the operator; returns the outcome (``connected``, ``needs_attention``
    or ``held``). ``approved_by`` (an operator's decision) skips the shared-tenant hold."""
    with write_transaction():
        others = (
            []
            if approved_by
            else storage.organizations_linking_tenant(signed_in.tenant_id, connection.org_id)
        )
        if others:
            _hold(connection, signed_in, token_cache, others, actor=actor, handoff_id=handoff_id)
            return "held"
        fields, granted, missing = _link_fields(connection, signed_in, required)
        audit = {
            "tenant_id": signed_in.tenant_id,
            "consented_by_oid": signed_in.object_id,
            "requested": list(signed_in.requested),
            "granted": granted,
            "missing": missing,
        }
        if approved_by:
            audit["approved_by"] = approved_by
        saved = lifecycle.link_recorded(
            connection.id,
            token_cache=token_cache,
            fields=fields,
            missing=missing,
            actor=actor,
            audit_detail=audit,
            health_summary={
                "granted_scopes": granted,
                "missing_scopes": missing,
                "tenant_id": signed_in.tenant_id,
            },
            handoff_id=handoff_id,
        )
    setup_links.note_microsoft_account(actor, signed_in.username or signed_in.object_id)
    log.info(
        "connection %s linked to tenant %s (missing scopes: %s)",
        saved.id,
        signed_in.tenant_id,
        missing or "none",
    )
    return saved.state


def _hold(
    connection: storage.Connection,
    signed_in: SignedIn,
    token_cache: bytes,
    others: list[storage.Organization],
    *,
    actor: int | None,
    handoff_id: str | None,
) -> storage.LinkReview:
    review = storage.create_link_review(
        connection,
        tenant_id=signed_in.tenant_id,
        other_org_ids=[o.id for o in others],
        requested_by=actor,
        detail={"signed_in": signed_in.as_dict()},
        token_cache=token_cache,
    )
    storage.audit_connection(
        "connection.link_held",
        connection,
        actor=actor,
        detail={
            "review_id": review.id,
            "tenant_id": signed_in.tenant_id,
            "consented_by_oid": signed_in.object_id,
            "organization": _organization_label(
                storage.get_organization(connection.org_id), connection.org_id
            ),
            "other_organizations": [_organization_label(o, o.id) for o in others],
        },
    )
    if handoff_id is not None:
        storage.record_link_outcome(handoff_id, connection.id, "held", {"review_id": review.id})
    log.warning(
        "link of connection %s held for the operator: tenant %s is already linked by "
        "organization(s) %s (review %s)",
        connection.id,
        signed_in.tenant_id,
        [o.id for o in others],
        review.id,
    )
    return review


def await_confirmation(
    handoff_id: str,
    connection: storage.Connection,
    signed_in: SignedIn,
    token_cache: bytes,
    *,
    actor: int | None,
) -> None:
    """A popup's redeemed sign-in: nothing is linked until the starting session confirms."""
    with write_transaction():
        storage.hold_for_confirmation(
            handoff_id,
            connection.id,
            token_cache=token_cache,
            pending={"signed_in": signed_in.as_dict()},
        )
        storage.audit_connection(
            "connection.link_redeemed",
            connection,
            actor=actor,
            detail={
                "tenant_id": signed_in.tenant_id,
                "consented_by_oid": signed_in.object_id,
                "awaiting": "confirmation by the starting session",
            },
        )


def confirm(
    connection: storage.Connection,
    handoff_id: str,
    session_binding: str,
    *,
    required: tuple[str, ...],
    actor: int | None,
) -> str | None:
    """The starting session confirms what it was shown: link (or hold). None when there is
    nothing of this session's to confirm (expired, already answered, another session's)."""
    with write_transaction():
        taken = storage.take_pending_link(handoff_id, connection.id, session_binding)
        if taken is None:
            return None
        pending, token_cache = taken
        signed_in = SignedIn.from_dict(pending["signed_in"])
        storage.audit_connection(
            "connection.link_confirmed",
            connection,
            actor=actor,
            detail={"tenant_id": signed_in.tenant_id, "consented_by_oid": signed_in.object_id},
        )
        return complete(
            connection,
            signed_in,
            token_cache,
            required=required,
            actor=actor,
            handoff_id=handoff_id,
        )


def cancel(
    connection: storage.Connection, handoff_id: str, session_binding: str, *, actor: int | None
) -> bool:
    """The starting session refuses what it was shown: the tokens are destroyed."""
    with write_transaction():
        taken = storage.take_pending_link(handoff_id, connection.id, session_binding)
        if taken is None:
            return False
        pending, _tokens = taken
        signed_in = SignedIn.from_dict(pending["signed_in"])
        storage.discard_pending_link(handoff_id, connection.id, "cancelled")
        storage.audit_connection(
            "connection.link_cancelled",
            connection,
            actor=actor,
            detail={"tenant_id": signed_in.tenant_id, "consented_by_oid": signed_in.object_id},
        )
    return True


def decide_review(
    review_id: str, *, approve: bool, decided_by: str, required: tuple[str, ...]
) -> str | None:
    """An operator's decision on a held link; returns the outcome, None if not held."""
    with write_transaction():
        decided = storage.decide_link_review(review_id, approve=approve, decided_by=decided_by)
        if decided is None:
            return None
        review, token_cache = decided
        storage.record_audit(
            "connection.link_review_" + ("approved" if approve else "rejected"),
            org_id=review.org_id,
            connection_id=review.connection_id,
            detail={
                "review_id": review.id,
                "tenant_id": review.tenant_id,
                "other_org_ids": list(review.other_org_ids),
                "decided_by": decided_by,
            },
        )
        connection = storage.get_connection(review.connection_id)
        if not approve or token_cache is None or connection is None:
            return "rejected"
        return complete(
            connection,
            SignedIn.from_dict(review.detail["signed_in"]),
            token_cache,
            required=required,
            actor=review.requested_by,
            approved_by=decided_by,
        )
