"""The lifecycle of a connection as named transitions: the only writer of state and health.

Each transition checks the state it starts from, then writes in ONE transaction the connection's
state and health with the columns that go with them, a health event (the health record: every
check, refresh and change of health) and an audit row (every change of state and every act of a
person).
``TRANSITIONS`` is the table docs/architecture.md shows; later features (events to the host,
health history) hang off these functions, so nothing else may write ``state`` or ``health``
(``storage.write_lifecycle`` is called from here only; a test holds that).

States: ``draft`` → ``waiting`` (setup in progress) → ``connected`` | ``needs_attention``
(something missing) | ``needs_reconnect`` (no usable credential: the customer links again);
any of them → ``deleted`` (terminal). Health: ``unknown`` | ``healthy`` | ``degraded`` |
``failing``.
"""

from __future__ import annotations

from portal.connections.lifecycle.checks import check_interrupted, check_recorded, link_recorded
from portal.connections.lifecycle.common import SETTING_UP
from portal.connections.lifecycle.credential import (
    deleted,
    needs_reconnect,
    our_problem,
    refresh_failed,
    refresh_succeeded,
)
from portal.connections.lifecycle.setup import certificate_issued, identity_changed, link_started
from portal.connections.transitions import (
    CONNECTED,
    DELETED,
    DRAFT,
    IDENTITY_FIELDS,
    LIVE,
    NEEDS_ATTENTION,
    NEEDS_RECONNECT,
    PROVEN,
    TRANSITIONS,
    WAITING,
    Transition,
    TransitionRefused,
)

__all__ = [
    "CONNECTED",
    "DELETED",
    "DRAFT",
    "IDENTITY_FIELDS",
    "LIVE",
    "NEEDS_ATTENTION",
    "NEEDS_RECONNECT",
    "PROVEN",
    "SETTING_UP",
    "TRANSITIONS",
    "WAITING",
    "Transition",
    "TransitionRefused",
    "certificate_issued",
    "check_interrupted",
    "check_recorded",
    "deleted",
    "identity_changed",
    "link_recorded",
    "link_started",
    "needs_reconnect",
    "our_problem",
    "refresh_failed",
    "refresh_succeeded",
]
