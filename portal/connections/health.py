"""A connection's health record, apart from its lifecycle state: when it was last checked, when a
check last succeeded and failed, since when it has been failing, whose the failure is, and what
changed since the check before.

Pure functions of a connection and an outcome; the lifecycle writes what they return in the
transition's transaction (``portal.connections.lifecycle``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from portal import storage
from portal.entra.problems import EntraProblem

#: Whose move a failed check is: nobody's yet (Microsoft was busy, unreachable or slow: the next
#: attempt will tell), the customer's (something in their tenant is missing or wrong) or ours
#: (our keyring, our app's credential, our network: support is alarmed, the customer is not
#: asked to change anything).
ErrorClass = Literal["transient", "needs_customer", "our_config"]
ERROR_CLASSES: tuple[ErrorClass, ...] = ("transient", "needs_customer", "our_config")


def error_class_of(problem: EntraProblem | None) -> ErrorClass:
    """The error class of a check or refresh that did not succeed (``problem`` None: the check
    finished and found items missing, which is the customer's to fix)."""
    if problem is None:
        return "needs_customer"
    if problem.category == "transient":
        return "transient"
    if problem.category == "our_configuration":
        return "our_config"
    return "needs_customer"


def succeeded(now: str) -> dict[str, Any]:
    """The health columns of an attempt that proved the connection works."""
    return {
        "last_attempt_at": now,
        "last_attempt_unfinished": False,
        "last_success_at": now,
        "failing_since": None,
        "error_class": None,
    }


def failed(
    before: storage.Connection, error_class: ErrorClass, now: str, *, finished: bool
) -> dict[str, Any]:
    """The health columns of an attempt that did not prove it: failing since the first failure
    after the last success; ``finished`` False when the attempt could not end (a transient
    answer, our side). ``error_class`` is whose move the standing failure is: an attempt
    Microsoft did not let finish learns nothing, so a failure the customer or we have to fix
    stands over it (the page still says the last attempt could not check)."""
    if error_class == "transient" and before.error_class in ("needs_customer", "our_config"):
        error_class = before.error_class  # type: ignore[assignment]
    return {
        "last_attempt_at": now,
        "last_attempt_unfinished": not finished,
        "last_failure_at": now,
        "failing_since": before.failing_since or now,
        "error_class": error_class,
    }


def checklist_changes(
    previous: Mapping[str, Any] | None, current: Iterable[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """Items whose status went from present to missing or back since ``previous`` (a stored
    report). An item either check could not observe (``unknown``) is not a change: nothing was
    learnt about it."""
    if not previous:
        return []
    before = {i.get("key"): i for i in previous.get("checklist") or () if isinstance(i, Mapping)}
    changes = []
    for item in current:
        old = before.get(item.get("key"))
        if old is None:
            continue
        was, now = old.get("status"), item.get("status")
        if {was, now} == {"ok", "missing"}:
            label = str(item.get("label") or item.get("key"))
            verb = "removed" if now == "missing" else "in place again"
            changes.append({"key": str(item.get("key")), "to": str(now), "text": f"{label} {verb}"})
    return changes
