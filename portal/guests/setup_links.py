"""Setup links: the customer (or the host, through the API) sends the IT admin who owns the
Entra tenant a link to the setup of one connection.

The link is a bearer credential that lives for days (``DEFAULT_DAYS``, at most ``MAX_DAYS``), so
it does as little as it can: it opens a landing page that names the organization and the
connection and signs nobody in until the visitor clicks Continue (a mail scanner's GET does
nothing); the token is posted in the form, never kept in a URL the portal redirects to; the
guest session it starts reaches that one connection only, for ``GUEST_SESSION_MINUTES``, and
ends on the next request after the link is revoked or expires. Once the connection is linked the
link is spent: no new visit, and the visitor's session is read-only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app

from portal import storage
from portal.guests import tokens

log = logging.getLogger("portal.guests")

DEFAULT_DAYS = 7
MAX_DAYS = 30
#: States in which the setup is done (the link has nothing left to open).
LINKED_STATES = frozenset({"connected"})


@dataclass(frozen=True)
class Issued:
    url: str
    link: storage.SetupLink


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def url_of(token: str) -> str:
    """The link's address on the portal's public URL (never the request's Host)."""
    return current_app.config["PUBLIC_URL"].rstrip("/") + "/setup/" + token


def issue(connection: storage.Connection, *, days: int, created_by: str) -> Issued:
    """A new link to ``connection``'s setup; ``created_by`` names who asked (audit)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a setup link lives 1 to {MAX_DAYS} days")
    token = tokens.new_token(tokens.SETUP_TOKEN)
    with storage.write_transaction():
        link = storage.create_setup_link(
            tokens.new_id(tokens.SETUP_ID),
            tokens.token_hash(token),
            org_id=connection.org_id,
            connection_id=connection.id,
            created_by=created_by,
            expires_at=_iso(datetime.now(UTC) + timedelta(days=days)),
        )
        storage.audit_connection(
            "setup_link.create",
            connection,
            actor=int(created_by[5:]) if created_by.startswith("user:") else None,
            detail={"link": link.id, "expires_at": link.expires_at, "created_by": created_by},
        )
    return Issued(url_of(token), link)


def revoke(link: storage.SetupLink, *, revoked_by: str) -> bool:
    with storage.write_transaction():
        done = storage.revoke_setup_link(link.id)
        if done:
            storage.record_audit(
                "setup_link.revoke",
                org_id=link.org_id,
                connection_id=link.connection_id,
                detail={"link": link.id, "revoked_by": revoked_by},
            )
    return done


def find(token: object) -> storage.SetupLink | None:
    if not tokens.is_token(token, tokens.SETUP_TOKEN):
        return None
    return storage.find_setup_link(tokens.token_hash(str(token)))


def why_unusable(link: storage.SetupLink | None, *, for_session: bool = False) -> str | None:
    """None if the link may be used; else a stable reason (``revoked``, ``expired``, ``linked``,
    ``gone``). A session the link started goes on (read-only) once the connection is linked."""
    if link is None:
        return "unknown"
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= _iso(datetime.now(UTC)):
        return "expired"
    connection = storage.get_connection(link.connection_id)
    if connection is None or connection.deleted:
        return "gone"
    if link.spent_at is None and connection.state in LINKED_STATES:
        storage.spend_setup_links(connection.id)
        link = storage.get_setup_link(link.id) or link
    if link.spent_at is not None and not for_session:
        return "linked"
    return None


def guest_key(link: storage.SetupLink) -> str:
    return f"setup-link/{link.id}"


def open_link(link: storage.SetupLink, *, address: str) -> storage.User:
    """The visitor continues: the link's guest user, its use counted and audited."""
    user = storage.guest_user(
        "setup_link",
        guest_key(link),
        link.org_id,
        external_user_id=link.id,
        only_connection_id=link.connection_id,
        contact_email=link.microsoft_account,
    )
    with storage.write_transaction():
        storage.note_setup_link_use(link.id, user.id)
        storage.record_audit(
            "setup_link.use",
            actor=user.id,
            org_id=link.org_id,
            connection_id=link.connection_id,
            detail={"link": link.id, "address": address},
        )
    return user


def note_microsoft_account(actor_id: int | None, account: str | None) -> None:
    """A setup link's visitor signed in at Microsoft: the link's record names the account."""
    if actor_id is None or not account:
        return
    user = storage.get_user(actor_id)
    if user is None or user.sign_in != "setup_link" or not user.external_user_id:
        return
    storage.note_setup_link_account(user.external_user_id, account)
    log.info("setup link %s used by Microsoft account %s", user.external_user_id, account)
