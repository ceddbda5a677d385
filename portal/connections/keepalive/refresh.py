"""Refreshing one connection: claim its lease (re-checking it is still due), redeem its refresh
token through MSAL against its own cloud and tenant — the check of the connection
(``portal.entra.verify_delegated``) — and hand the result to
:mod:`portal.connections.keepalive.outcomes` to record. This is the one path that redeems a
stored refresh token (the keep-alive and *Check* on a delegated connection alike). Tokens, the
cache and the credential are never logged."""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from portal import storage
from portal.connections import credentials
from portal.connections.keepalive.outcomes import (
    ConnectionResult,
    Failed,
    LeaseLost,
    Outcome,
    record_failure,
    record_success,
)
from portal.connections.keepalive.rules import (
    classify_failure,
    failure_reason,
    is_due,
    is_linked,
    support_codes,
)
from portal.connections.keepalive.settings import Settings
from portal.entra.client import EntraClient, read_stored_sign_in
from portal.entra.clouds import Cloud, CloudTable, http_session
from portal.entra.retry import RetryPolicy
from portal.entra.verify_delegated import DelegatedCheck, verify_delegated
from portal.storage import vault
from portal.storage.db import write_transaction

log = logging.getLogger("portal.keepalive")

#: Graph is only read to prove the new token works: fewer retries than a customer's check, so
#: a run over many connections is not held up by one slow tenant.
GRAPH_OPTIONS = {"retry": RetryPolicy(attempts=2, deadline=10.0)}


def _account_for(cache_text: str, connection: storage.Connection, client_id: str) -> dict[str, Any]:
    """The signed-in admin's account in the stored cache (read locally, no network), checked to
    hold a refresh token of our app."""
    home = (
        f"{connection.consented_by_oid}.{connection.tenant_id}"
        if connection.consented_by_oid and connection.tenant_id
        else None
    )
    try:
        stored = read_stored_sign_in(cache_text, home)
    except ValueError:
        raise Failed("relink", "stored sign-in damaged") from None
    account = stored.account
    if account is None:
        raise Failed("relink", "no stored sign-in")
    if not stored.refresh_token_client_ids:
        raise Failed("relink", "no refresh token stored")
    if client_id not in stored.refresh_token_client_ids:
        raise Failed("operator", "stored sign-in belongs to another client id (SP_CLIENT_ID?)")
    return account


def _refresh(
    cloud: Cloud,
    connection: storage.Connection,
    settings: Settings,
    cache_text: str,
    session: requests.Session,
) -> tuple[DelegatedCheck, EntraClient]:
    account = _account_for(cache_text, connection, settings.client_id)
    client = EntraClient(
        cloud,
        connection.tenant_id or "",
        settings.client_id,
        settings.credential,
        session=session,
        token_cache_text=cache_text,
    )
    # The check redeems the refresh token with force_refresh (the point is to renew it) and
    # `.default` (whatever is granted: a scope withdrawn later doesn't fail the keep-alive, the
    # check reports it missing).
    check = verify_delegated(
        client,
        account,
        session=session,
        tenant_id=connection.tenant_id or "",
        required_scopes=settings.required_scopes,
        graph_options=GRAPH_OPTIONS,
    )
    return check, client


def _claim(
    connection_id: str, owner: str, now: datetime, settings: Settings
) -> tuple[storage.Connection | None, str]:
    """Re-read the connection and take its lease in one BEGIN IMMEDIATE. Returns the connection,
    or None and why not: no longer due (another run refreshed it meanwhile), or another run
    holds the lease right now."""
    with write_transaction():
        connection = storage.get_connection(connection_id)
        if connection is None or not is_linked(connection):
            return None, "no longer linked"
        if not is_due(connection, now, settings.idle):
            return None, "refreshed recently"
        if not storage.claim_refresh_lease(
            connection_id, owner, now=now.timestamp(), ttl=settings.lease_seconds
        ):
            return None, "another run is refreshing it"
        return connection, ""


def _release(connection_id: str, owner: str) -> None:
    try:
        storage.release_refresh_lease(connection_id, owner)
    except sqlite3.Error:
        log.warning(
            "keep-alive: could not release the lease of connection %s (it expires)", connection_id
        )


def refresh_connection(
    connection_id: str,
    *,
    settings: Settings,
    cloud_table: CloudTable,
    now: datetime,
    owner: str | None = None,
    session_for: Callable[[Cloud], requests.Session] | None = None,
    trigger: str = "keep-alive",
    actor: int | None = None,
) -> ConnectionResult:
    """Refresh one connection if it is due and nobody else is at it; record the outcome and the
    report of the check the refresh is (``trigger`` and ``actor`` go into its audit row)."""
    owner = owner or secrets.token_hex(16)
    own_session: requests.Session | None = None
    if session_for is None:

        def session_for(cloud: Cloud) -> requests.Session:
            nonlocal own_session
            own_session = own_session or http_session(cloud_table, cloud)
            return own_session

    run = _Run(settings, cloud_table, now, owner, session_for, trigger, actor)
    try:
        return _refresh_claimed(connection_id, run)
    except sqlite3.Error as exc:
        # Recording an outcome failed (the refresh itself, if any, was not stored): the
        # previous token is kept; an operator has to look at the database.
        log.error(
            "keep-alive: connection %s: database error %s: %s",
            connection_id,
            exc.__class__.__name__,
            exc,
        )
        _release(connection_id, owner)
        return ConnectionResult(connection_id, connection_id, "operator", "database error")
    finally:
        if own_session is not None:
            own_session.close()


@dataclass(frozen=True)
class _Run:
    """What one refresh needs besides the connection."""

    settings: Settings
    cloud_table: CloudTable
    now: datetime
    owner: str
    session_for: Callable[[Cloud], requests.Session]
    trigger: str
    actor: int | None


def _refresh_claimed(connection_id: str, run: _Run) -> ConnectionResult:
    claimed, why = _claim(connection_id, run.owner, run.now, run.settings)
    if claimed is None:
        current = storage.get_connection(connection_id)
        label = current.label if current else connection_id
        return ConnectionResult(connection_id, label, "skipped", why)
    connection = claimed
    try:
        try:
            outcome, reason, check_ok = _redeem_and_store(connection, run)
            return ConnectionResult(
                connection_id, connection.label, outcome, reason, check_ok=check_ok
            )
        except Failed as failure:
            return record_failure(connection, failure, run.now)
    finally:
        _release(connection_id, run.owner)


def _stored_sign_in(connection: storage.Connection) -> bytes | None:
    """The connection's token cache (None: none stored); our keyring failing is a
    :class:`Failed` of ``our_config``."""
    try:
        return credentials.token_cache(connection.id)
    except credentials.KeyringAlarm as alarm:
        # Our keyring, not the customer's sign-in: the state stays, the operator is alarmed.
        raise Failed(
            "our_config",
            f"vault keyring cannot read the stored sign-in ({alarm.reason})",
            alarm.summary(),
        ) from None


def _redeem_and_store(
    connection: storage.Connection, run: _Run
) -> tuple[Outcome, str, bool | None]:
    """Redeem the claimed connection's refresh token and store the rotated one with the check's
    report; a failure Microsoft (or the stored sign-in) gave is raised as :class:`Failed`."""
    try:
        cloud = run.cloud_table.get(connection.cloud or "")
    except KeyError:
        raise Failed("operator", f"unknown cloud {connection.cloud!r}") from None
    if not connection.tenant_id:
        raise Failed("relink", "no tenant stored")
    try:
        blob = _stored_sign_in(connection)
    except vault.SecretUnreadable as exc:
        # Gone for the customer: credentials.token_cache has moved it to needs_reconnect.
        return "relink", f"stored sign-in unreadable ({exc.reason})", None
    if not blob:
        raise Failed("relink", "no stored sign-in")
    check, client = _refresh(cloud, connection, run.settings, blob.decode(), run.session_for(cloud))
    token = check.token
    if not token.ok:
        problem = token.problem
        if problem is None:
            raise Failed("operator", "token request failed without a reason")
        raise Failed(classify_failure(problem), failure_reason(problem), support_codes(problem))
    tid = token.claims.get("tid")
    if tid is not None and str(tid).lower() != connection.tenant_id.lower():
        raise Failed("operator", "token issued for another tenant; not stored")
    try:
        check_ok = record_success(
            connection, run.owner, client, check, run.now, trigger=run.trigger, actor=run.actor
        )
    except LeaseLost:
        return (
            "skipped",
            "changed meanwhile (re-linked, found unusable or lease lost); discarded",
            None,
        )
    except sqlite3.Error as exc:
        # Nothing of the success transaction landed: the previous token is still stored and
        # still valid at Entra (old refresh tokens are not revoked), so the next run works.
        log.error(
            "keep-alive: storing the refreshed sign-in of connection %s failed (%s); "
            "the previous one is kept",
            connection.id,
            exc.__class__.__name__,
        )
        return "operator", "database write failed; previous sign-in kept", None
    log.info("keep-alive: connection %s refreshed", connection.id)
    return "refreshed", "", check_ok
