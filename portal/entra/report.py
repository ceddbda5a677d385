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
from .tenant import Discovery
from .tokens import TokenResult

__all__ = ["Step", "StepTimer", "TenantFacts", "VerificationReport", "token_outcome"]

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """One timed step of a check, for the report and for support."""

    name: str
    ms: float
    outcome: str


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
                {"name": s.name, "ms": round(s.ms, 1), "outcome": s.outcome} for s in self.steps
            ],
            "problem": self.problem.as_dict() if self.problem else None,
            "support": self.support,
            "pending_replication": self.pending_replication,
        }


class StepTimer:
    """Collects step timings from several threads."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.support: list[dict[str, Any]] = []

    def run(self, name: str, fn: Callable[[], T], outcome: Callable[[T], str]) -> T:
        began = time.perf_counter()
        try:
            value = fn()
        except GraphError as exc:
            self.steps.append(
                Step(name, (time.perf_counter() - began) * 1000, f"error {exc.status}")
            )
            self.note(name, exc.to_problem().raw)
            raise
        self.steps.append(Step(name, (time.perf_counter() - began) * 1000, outcome(value)))
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
