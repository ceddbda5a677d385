"""The lifecycle's table: its states and the named transitions, each with the states it starts
from, where it leads and what it writes. ``portal.connections.lifecycle`` carries them out;
docs/architecture.md shows the table."""

from __future__ import annotations

from dataclasses import dataclass

DRAFT, WAITING, CONNECTED, NEEDS_ATTENTION, NEEDS_RECONNECT, DELETED = (
    "draft",
    "waiting",
    "connected",
    "needs_attention",
    "needs_reconnect",
    "deleted",
)
#: Every state but the terminal one.
LIVE = (DRAFT, WAITING, CONNECTED, NEEDS_ATTENTION, NEEDS_RECONNECT)
#: Proven against the tenant at least once, with a credential that still works.
PROVEN = (CONNECTED, NEEDS_ATTENTION)
#: Fields that make a proven connection a different one (proven again before it counts).
IDENTITY_FIELDS = frozenset({"cloud", "tenant_id", "client_id"})


class TransitionRefused(RuntimeError):
    """A transition asked of a connection in a state it does not start from."""

    def __init__(self, transition: str, state: str) -> None:
        super().__init__(f"{transition} is not allowed from {state}")
        self.transition = transition
        self.state = state


@dataclass(frozen=True)
class Transition:
    """One row of the lifecycle table."""

    name: str
    sources: tuple[str, ...]
    result: str
    writes: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        "certificate_issued",
        LIVE,
        "draft, needs_reconnect → waiting; other states unchanged (a rotation)",
        "audit certificate.issue (with the state it moved from and to)",
    ),
    Transition(
        "link_started",
        LIVE,
        "draft → waiting; other states unchanged",
        "audit connection.link_started (with the state it moved from and to)",
    ),
    Transition(
        "identity_changed",
        LIVE,
        "connected, needs_attention → waiting when cloud, tenant or client id changed",
        "the changed columns; audit connection.identity_changed when the state changes",
    ),
    Transition(
        "check_recorded",
        LIVE,
        "→ connected (every item present) | needs_attention; draft, waiting stay waiting "
        "(health unknown) while something is missing; health healthy | failing",
        "the report (last_check, tenant facts), the health record (success or failure, its "
        "error class, the items that changed); health event; audit connection.check",
    ),
    Transition(
        "check_interrupted",
        LIVE,
        "state and last report unchanged; health healthy, unknown → degraded when proven",
        "health record: a transient failure; health event check_transient (what Microsoft "
        "answered); audit connection.check",
    ),
    Transition(
        "link_recorded",
        LIVE,
        "→ connected | needs_attention (scopes missing); health healthy | degraded",
        "token cache (vault), consent columns; health event linked; audit "
        "connection.linked; the popup's outcome",
    ),
    Transition(
        "refresh_succeeded",
        PROVEN,
        "state unchanged; health degraded → healthy when keep-alive failures caused it",
        "rotated token cache (vault), refresh columns; health event refresh_ok",
    ),
    Transition(
        "refresh_failed",
        PROVEN,
        "state unchanged; health unknown, healthy → degraded",
        "failure counters; health event refresh_transient",
    ),
    Transition(
        "needs_reconnect",
        LIVE,
        "→ needs_reconnect, failing",
        "the cause's health event; health event and audit connection.needs_reconnect (once)",
    ),
    Transition(
        "our_problem",
        LIVE,
        "state unchanged; health → degraded when proven",
        "health record: an our_config failure; health event our_config (the operator's alarm)",
    ),
    Transition(
        "deleted",
        LIVE,
        "→ deleted, health unknown",
        "every secret destroyed, flows burnt, certificates retired; health event "
        "deleted; audit connection.delete",
    ),
)
