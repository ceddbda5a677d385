"""A per-cloud circuit breaker for background jobs (health sweep, keep-alive), so that a job stops
sending requests to a cloud that keeps failing and waits as long as Microsoft asked.

After ``failures`` consecutive transient failures in one cloud, the cloud is paused for the
cool-off (at least the largest Retry-After seen); its connections are skipped and counted, and
the pause is logged once. When the cool-off has passed, one connection is let through (half
open): its success closes the breaker, its failure pauses the cloud again. Across connections a
Retry-After is honoured too: nothing goes to that cloud before it ends (a short one is slept, a
long one pauses the cloud). Graph: "Backing off requests using the Retry-After delay is the
fastest way to recover from throttling because Microsoft Graph continues to log resource usage
while a client is being throttled" (https://learn.microsoft.com/graph/throttling).

Pure state with an injectable clock and sleep; the jobs tell it what happened (no storage).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("portal.breaker")

__all__ = ["CloudBreaker", "breaker_from_config"]


@dataclass
class _Cloud:
    """What the breaker remembers of one cloud during a job."""

    failures: int = 0
    #: Paused until this moment (clock seconds); None while closed.
    paused_until: float | None = None
    #: A trial connection is under way after a pause (half open).
    trial: bool = False
    #: Microsoft asked for nothing before this moment.
    not_before: float = 0.0
    largest_retry_after: float = 0.0
    skipped: int = 0
    pauses: int = 0


@dataclass
class CloudBreaker:
    """Decides, per cloud, whether a background job may send the next connection's requests."""

    failures: int = 5
    cooloff: float = 300.0
    #: A Retry-After up to this long is slept; a longer one pauses the cloud instead.
    max_sleep: float = 5.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    clouds: dict[str, _Cloud] = field(default_factory=dict)

    def _of(self, cloud: str) -> _Cloud:
        return self.clouds.setdefault(cloud, _Cloud())

    def admit(self, cloud: str) -> bool:
        """True when the next connection of ``cloud`` may be checked now (after sleeping out a
        short Retry-After); False when the cloud is paused (the connection is counted)."""
        state = self._of(cloud)
        now = self.clock()
        wait = state.not_before - now
        if 0 < wait <= self.max_sleep and state.paused_until is None:
            self.sleep(wait)
            now = self.clock()
        elif wait > self.max_sleep and state.paused_until is None:
            self._pause(cloud, state, wait, f"Microsoft asked to wait {wait:.0f} s")
        if state.paused_until is not None:
            if now < state.paused_until or state.trial:
                state.skipped += 1
                return False
            state.trial = True  # half open: this connection decides
        return True

    def record(self, cloud: str, *, transient: bool, retry_after: float | None = None) -> None:
        """What the admitted connection of ``cloud`` gave: a transient failure or not (an
        answer from Microsoft, good or bad, means the cloud is working)."""
        state = self._of(cloud)
        if retry_after is not None and retry_after > 0:
            state.not_before = max(state.not_before, self.clock() + retry_after)
            state.largest_retry_after = max(state.largest_retry_after, retry_after)
        if not transient:
            if state.paused_until is not None:
                log.info("background job: cloud %s answers again; resumed", cloud)
            state.failures, state.paused_until, state.trial = 0, None, False
            state.largest_retry_after = 0.0
            return
        state.failures += 1
        if state.trial:
            state.trial = False
            self._pause(cloud, state, self.cooloff, "the trial connection failed too")
        elif state.paused_until is None and state.failures >= self.failures:
            why = f"{state.failures} consecutive transient failures"
            self._pause(cloud, state, self.cooloff, why)

    def undecided(self, cloud: str) -> None:
        """The admitted connection made no call (nothing to check): the next one decides."""
        self._of(cloud).trial = False

    def _pause(self, cloud: str, state: _Cloud, seconds: float, why: str) -> None:
        seconds = max(seconds, state.largest_retry_after, state.not_before - self.clock())
        state.paused_until = self.clock() + seconds
        state.pauses += 1
        # One line per pause, never one per skipped connection.
        log.warning(
            "background job: cloud %s paused for %.0f s (%s); its connections are not checked "
            "until then",
            cloud,
            seconds,
            why,
        )

    def skipped(self) -> dict[str, int]:
        """Connections not checked because their cloud was paused, per cloud."""
        return {key: s.skipped for key, s in sorted(self.clouds.items()) if s.skipped}

    def paused(self) -> list[str]:
        """Clouds paused at some time during the job."""
        return sorted(key for key, s in self.clouds.items() if s.pauses)


def breaker_from_config(config: Mapping[str, Any]) -> CloudBreaker:
    """A breaker with the app's BREAKER_* settings (normalised by portal.config)."""
    return CloudBreaker(
        failures=int(config.get("BREAKER_FAILURES", 5)),
        cooloff=float(config.get("BREAKER_COOLOFF_SECONDS", 300.0)),
        max_sleep=float(config.get("BREAKER_MAX_SLEEP_SECONDS", 5.0)),
    )
