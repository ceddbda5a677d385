"""The report of a check (`VerificationReport`: checklist, tenant facts, timed steps, the
blocking problem, support codes) and `StepTimer`, which collects the steps while it runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .errors import EntraProblem, SupportCodes
from .graph import GraphError
from .permissions import ChecklistItem
from .retry import track
from .tenant import Discovery
from .tokens import TokenResult

__all__ = ["Progress", "Step", "StepTimer", "TenantFacts", "VerificationReport", "token_outcome"]

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """One timed step of a check, for the report and for support."""

    name: str
    ms: float
    outcome: str
    #: HTTP attempts the step made (more than its calls when Microsoft made us retry).
    attempts: int = 0


@dataclass(frozen=True)
class TenantFacts:
    """What we learned about the tenant."""

    id: str | None = None
    name: str | None = None
    default_domain: str | None = None


@dataclass(frozen=True)
class VerificationReport:
    """The result of a check: checklist, tenant facts, timings, the blocking problem and codes."""

    ok: bool
    kind: Literal["customer_owned", "service_provider"]
    cloud_key: str
    checklist: list[ChecklistItem]
    tenant: TenantFacts
    steps: list[Step]
    problem: EntraProblem | None = None
    support: list[dict[str, Any]] = field(default_factory=list)
    discovery: Discovery | None = field(default=None, compare=False)
    pending_replication: bool = False

    @property
    def missing(self) -> list[ChecklistItem]:
        """Items that are not ok."""
        return [item for item in self.checklist if item.status != "ok"]

    @property
    def total_ms(self) -> float:
        """Wall time of the whole check."""
        return sum(s.ms for s in self.steps if s.name == "total")

    def as_dict(self) -> dict[str, Any]:
        """JSON for the connection's `last_check` column (no tokens, no keys)."""
        return {
            "ok": self.ok,
            "kind": self.kind,
            "cloud": self.cloud_key,
            "tenant": {
                "id": self.tenant.id,
                "name": self.tenant.name,
                "default_domain": self.tenant.default_domain,
            },
            "checklist": [
                {
                    "key": i.key,
                    "label": i.label,
                    "status": i.status,
                    "why": i.why,
                    "fix": i.fix,
                    "fix_url": i.fix_url,
                    "note": i.note,
                }
                for i in self.checklist
            ],
            "steps": [
                {
                    "name": s.name,
                    "ms": round(s.ms, 1),
                    "outcome": s.outcome,
                    "attempts": s.attempts,
                }
                for s in self.steps
            ],
            "problem": self.problem.as_dict() if self.problem else None,
            "support": self.support,
            "pending_replication": self.pending_replication,
        }


#: Told about each step as soon as it has finished (from any of the check's threads).
Progress = Callable[[Step], None]


class StepTimer:
    """Collects step timings from several threads; ``progress`` hears of each finished step
    (a background job shows them while the check runs)."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.steps: list[Step] = []
        self.support: list[dict[str, Any]] = []
        self._progress = progress

    def add(self, step: Step) -> None:
        """Record a finished step and report it."""
        self.steps.append(step)
        self.announce(step)

    def announce(self, step: Step) -> None:
        """Report a step to ``progress`` only (e.g. one checklist item; not a timed step)."""
        if self._progress is not None:
            self._progress(step)

    def run(self, name: str, fn: Callable[[], T], outcome: Callable[[T], str]) -> T:
        """Run one step, timing it and counting the HTTP attempts it made."""
        began = time.perf_counter()
        with track() as calls:
            try:
                value = fn()
            except GraphError as exc:
                self.note(name, exc.to_problem().raw)
                ms = (time.perf_counter() - began) * 1000
                self.add(Step(name, ms, f"error {exc.status}", calls.attempts))
                raise
        self.add(Step(name, (time.perf_counter() - began) * 1000, outcome(value), calls.attempts))
        return value

    def note(self, step: str, raw: SupportCodes) -> None:
        if raw.error_codes or raw.trace_id or raw.correlation_id or raw.http_status:
            self.support.append({"step": step, **raw.as_dict()})


def token_outcome(result: TokenResult) -> str:
    """The outcome of a token step as the report shows it."""
    if result.ok:
        return f"ok ({result.source or 'identity_provider'})"
    assert result.problem is not None
    return f"failed {result.problem.code or result.problem.error or result.problem.category}"
