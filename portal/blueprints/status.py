"""A customer's connections and one connection's page (filled in by later work)."""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from portal import htmx, store
from portal.access import load_connection_or_404, login_required
from portal.security import embeddable

bp = Blueprint("status", __name__, url_prefix="/connections")


@bp.get("/")
@login_required
@embeddable
def connections():
    """The list of connections (the page, or its ``connections`` block for htmx)."""
    if current_user.is_support:
        items = store.list_all_connections()
    else:
        items = store.list_connections(current_user.org_id)
    return htmx.render_page_or_fragment("pages/connections.html", "connections",
                                        connections=items)


@bp.get("/<connection_id>")
@login_required
@embeddable
def connection(connection_id: str):
    """One connection: state, health, last check and recent events (``status`` block)."""
    item = load_connection_or_404(connection_id)
    events = store.list_health_events(item.id, limit=10)
    return htmx.render_page_or_fragment(
        "pages/connection.html", "status", connection=item, events=events,
        organization=store.get_organization(item.org_id))
