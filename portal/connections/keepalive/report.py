"""What a keep-alive run found: the per-connection results, the counts, the exit code of the
cron job and the lines the CLI prints (ids, labels and Microsoft's codes only)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from portal.connections.keepalive.outcomes import ConnectionResult, Outcome


@dataclass
class RunSummary:
    results: list[ConnectionResult] = field(default_factory=list)
    config_error: str | None = None

    def count(self, *outcomes: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome in outcomes)

    @property
    def refreshed(self) -> int:
        return self.count("refreshed")

    @property
    def relink(self) -> int:
        return self.count("relink")

    @property
    def alarms(self) -> int:
        """Connections support must look at (refreshes failing for days, little life left)."""
        return sum(1 for r in self.results if r.alarm)

    @property
    def transient(self) -> int:
        """Transient failures this run, the ones whose token life just ended included."""
        return self.count("transient", "exhausted")

    @property
    def exhausted(self) -> int:
        return self.count("exhausted")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def operator(self) -> int:
        return self.count("operator")

    @property
    def exit_code(self) -> int:
        """Non-zero only for operator problems (our keyring included): customers' failures and
        Microsoft's are not the cron job's (alarms are for support)."""
        return 1 if self.operator else 0

    def line(self) -> str:
        return (
            f"refreshed {self.refreshed}, re-link needed {self.relink}, "
            f"transient failures {self.transient} (token life over {self.exhausted}), "
            f"alarms {self.alarms}, skipped {self.skipped}, operator problems {self.operator}"
        )


_LABELS = {
    "refreshed": "refreshed",
    "relink": "re-link needed",
    "transient": "transient failure",
    "exhausted": "token life over (re-link needed)",
    "operator": "operator problem",
    "skipped": "skipped",
}


def report_lines(summary: RunSummary, verbose: bool = False) -> list[str]:
    """Lines for the CLI: one per connection that needs someone's attention (all with
    ``verbose``), then the summary. Ids, labels and Microsoft's codes only."""
    lines: list[str] = []
    if summary.config_error:
        lines.append(f"Service provider application not configured: {summary.config_error}.")
    for r in summary.results:
        if r.outcome in ("refreshed", "skipped") and not verbose:
            continue
        detail = f" ({r.reason})" if r.reason else ""
        days = f", failing days {r.failure_days}" if r.failure_days else ""
        alarm = f"; ALARM: {r.alarm}" if r.alarm else ""
        lines.append(
            f"  {r.connection_id} {_one_line(r.label)}: {_LABELS[r.outcome]}{detail}{days}{alarm}"
        )
    lines.append(f"Refresh tokens: {summary.line()}")
    return lines


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)[:80]
