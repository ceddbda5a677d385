"""Connect sessions: minted by the host's backend for one of its users, traded once by the
portal's frame for a guest session (docs/architecture.md, "Guest access").

Minting checks everything that can be checked without a browser (the organization, the end
user, that each allowed origin is one the deployment lets frame the portal, the connection to
reconnect, the return URL); the trade checks the rest: the token is known, unused and unexpired,
and the host page's origin as the browser reported it to the portal's own script is among the
token's origins and the deployment's ``FRAME_ANCESTORS``. A token is spent by its first
presentation, whatever comes of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app

from portal import storage
from portal.guests import tokens

log = logging.getLogger("portal.guests")

DEFAULT_TTL_SECONDS = 600
MAX_TTL_SECONDS = 3600


@dataclass(frozen=True)
class EndUser:
    """The host's user the session is for (the host vouches for who it is)."""

    id: str
    email: str | None
    display_name: str | None


class MintRefused(ValueError):
    """The request names something the deployment does not allow; ``code`` is stable."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Minted:
    token: str
    session: storage.ConnectSession


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def guest_key(org_id: int, external_user_id: str) -> str:
    """The unique key in ``users.email`` of the host user ``external_user_id`` of ``org_id``."""
    return f"connect-session/{org_id}/{external_user_id}"


def mint(
    org: storage.Organization,
    end_user: EndUser,
    *,
    allowed_origins: list[str],
    kind: str | None,
    connection: storage.Connection | None,
    return_url: str | None,
    ttl_seconds: int,
    api_key_id: str | None,
) -> Minted:
    configured = current_app.config["FRAME_ANCESTORS"]
    for origin in allowed_origins:
        if origin not in configured:
            raise MintRefused(
                "origin_not_allowed",
                f"{origin} is not allowed to frame the portal: the deployment's FRAME_ANCESTORS "
                "must list it.",
                "allowed_origins",
            )
    if connection is not None and kind is not None and connection.kind != kind:
        raise MintRefused(
            "kind_mismatch", f"The connection is {connection.kind}, not {kind}.", "kind"
        )
    if return_url is not None and _origin_of(return_url) not in allowed_origins:
        raise MintRefused(
            "return_url_not_allowed",
            "The return URL must be on one of the allowed origins.",
            "return_url",
        )
    user = storage.guest_user(
        "connect_session",
        guest_key(org.id, end_user.id),
        org.id,
        external_user_id=end_user.id,
        display_name=end_user.display_name,
        contact_email=end_user.email,
    )
    token = tokens.new_token(tokens.CONNECT_TOKEN)
    with storage.write_transaction():
        created = storage.create_connect_session(
            tokens.new_id(tokens.CONNECT_ID),
            tokens.token_hash(token),
            org_id=org.id,
            user_id=user.id,
            allowed_origins=allowed_origins,
            kind=kind or (connection.kind if connection else None),
            connection_id=connection.id if connection else None,
            return_url=return_url,
            api_key_id=api_key_id,
            expires_at=_iso(_now() + timedelta(seconds=ttl_seconds)),
        )
        storage.record_audit(
            "connect_session.create",
            org_id=org.id,
            connection_id=created.connection_id,
            detail={
                "session": created.id,
                "end_user": end_user.id,
                "allowed_origins": allowed_origins,
                "expires_at": created.expires_at,
                "api_key": api_key_id,
            },
        )
    return Minted(token, created)


def _origin_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Traded:
    """What a presented token came to: ``session`` and ``user`` when ``code`` is None."""

    code: str | None
    message: str
    session: storage.ConnectSession | None = None
    user: storage.User | None = None


_REFUSALS = {
    "invalid_token": "This sign-in link from the host product is not valid.",
    "token_used": "This sign-in from the host product was used already. Open it again there.",
    "token_expired": "This sign-in from the host product has expired. Open it again there.",
    "origin_not_allowed": "The portal cannot be opened from this page.",
    "connection_gone": "The connection this sign-in was for no longer exists.",
}


def refused(code: str) -> Traded:
    return Traded(code, _REFUSALS[code])


def trade(token: object, origin: str) -> Traded:
    """Spend ``token`` for the host page at ``origin``; audited whatever the outcome."""
    if not tokens.is_token(token, tokens.CONNECT_TOKEN):
        return refused("invalid_token")
    found, first = storage.spend_connect_session(tokens.token_hash(str(token)), origin)
    if found is None:
        return refused("invalid_token")
    code = _refusal(found, first, origin)
    storage.record_audit(
        "connect_session.redeem" if code is None else "connect_session.refused",
        actor=found.user_id,
        org_id=found.org_id,
        connection_id=found.connection_id,
        detail={"session": found.id, "origin": origin[:200], "refused": code},
    )
    if code is not None:
        log.warning("connect session %s refused: %s (origin %s)", found.id, code, origin[:200])
        return refused(code)
    user = storage.get_user(found.user_id)
    if user is None:
        return refused("invalid_token")
    return Traded(None, "", found, user)


def _refusal(found: storage.ConnectSession, first: bool, origin: str) -> str | None:
    if not first:
        return "token_used"
    if found.expires_at <= _iso(_now()):
        return "token_expired"
    if origin not in found.allowed_origins or origin not in current_app.config["FRAME_ANCESTORS"]:
        return "origin_not_allowed"
    if found.connection_id is not None:
        connection = storage.get_connection(found.connection_id)
        if connection is None or connection.deleted:
            return "connection_gone"
    return None


def frame_origins(found: storage.ConnectSession) -> tuple[str, ...]:
    """The origins the session's pages may be framed by: the token's, as the deployment allows."""
    configured = current_app.config["FRAME_ANCESTORS"]
    return tuple(origin for origin in found.allowed_origins if origin in configured)
