"""Support dashboard: every organization's connections, read-only, never a secret."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, request
from flask_login import current_user

from portal import regions, storage
from portal.access import load_connection_or_404, support_required
from portal.connections import keepalive

bp = Blueprint("support", __name__, url_prefix="/support")

#: Healths, the most urgent first: the dashboard's order and its filter's.
HEALTH_ORDER = ("failing", "degraded", "unknown", "healthy")
ORDER = {health: rank for rank, health in enumerate(HEALTH_ORDER)}


@bp.get("/")
@support_required
def dashboard():
    """All connections, the broken ones first; filter with ?state= or ?health=. Deleted
    connections need no watching: they are left out (with their count) unless asked for with
    ?state=deleted, and shown read-only, marked as deleted."""
    organizations = {org.id: org for org in storage.list_organizations()}
    state = request.args.get("state")
    health = request.args.get("health")
    everything = storage.list_all_connections(include_deleted=True)
    hidden_deleted = 0 if state == storage.DELETED else sum(c.deleted for c in everything)
    rows = [
        c
        for c in everything
        if (state not in storage.STATES or c.state == state)
        and (health not in storage.HEALTHS or c.health == health)
        and (state == storage.DELETED or not c.deleted)
    ]
    rows.sort(
        key=lambda c: (
            ORDER.get(c.health, 9),
            c.state != "needs_reconnect",
            organizations[c.org_id].name,
            c.created_at,
        )
    )
    storage.record_audit(
        "support.view_dashboard",
        actor=current_user.id,
        detail={"state": state, "health": health} if state or health else None,
    )
    return regions.page_or_region(
        "support/dashboard.html",
        "support/_table.html",
        states=storage.STATES,
        healths=(*HEALTH_ORDER,),
        rows=rows,
        organizations=organizations,
        held=storage.list_link_reviews("held"),
        hidden_deleted=hidden_deleted,
        state=state if state in storage.STATES else None,
        health=health if health in storage.HEALTHS else None,
    )


@bp.get("/connections/<connection_id>")
@support_required
def connection(connection_id: str):
    """One customer's connection as support sees it (the loader writes the audit row)."""
    item = load_connection_or_404(connection_id, deleted_ok=True)
    deletion = storage.deletion_audit(item.id) if item.deleted else None
    actor = (
        storage.get_user(deletion.actor_user_id) if deletion and deletion.actor_user_id else None
    )
    events = storage.list_health_events(item.id, limit=50)
    return regions.page_or_region(
        "support/connection.html",
        "support/_status.html",
        connection=item,
        organization=storage.get_organization(item.org_id),
        events=events,
        alarms=alarms(item, events),
        certificates=storage.list_certificates(item.id),
        deletion=deletion,
        deleted_by=actor.email if actor else None,
    )


#: Outcomes after which an earlier operator alarm no longer stands (a check or refresh worked).
_CLEARS_ALARM = frozenset({"ok", "needs_attention", "refresh_ok", "linked"})


def alarms(item: storage.Connection, events: list[storage.HealthEvent]) -> list[str]:
    """What support must act on: our keyring failing to read the connection's secret (until a
    check or refresh works again) and the keep-alive's alarm (refreshes failing for days,
    little of the token's life left)."""
    found = []
    for event in events:
        if event.outcome in _CLEARS_ALARM:
            break
        if event.summary.get("operator_problem"):
            found.append(
                f"Operator problem ({event.summary['operator_problem']}): we cannot read the "
                f"{event.summary.get('secret', 'secret')} ({event.summary.get('reason', '')})."
            )
            break
    if item.kind == "service_provider" and not item.deleted:
        keepalive_alarm = keepalive.alarm(item, datetime.now(UTC))
        if keepalive_alarm:
            found.append(f"Keep-alive: {keepalive_alarm}.")
    return found
