"""One retry policy for every call to Microsoft: bounded attempts, exponential back-off with full
jitter, Retry-After honoured, and a deadline per call that no attempt and no wait goes past.

Applied inside `outbound.GuardedSession.request`, so our tenant discovery, MSAL's (its tenant
discovery and the token endpoint: MSAL calls `http_client.get/post`, our session) and Graph all
get the same rules and nothing retries twice.

Microsoft's guidance:
- Graph: 429 carries Retry-After; wait that long, then retry; without it back off exponentially
  (https://learn.microsoft.com/graph/throttling). 503 and 504 are temporary: 503 "may be
  specified in a Retry-After header" (https://learn.microsoft.com/graph/errors).
- Token endpoint: when overloaded the STS answers 429 with Retry-After (seconds or a date); for
  client credentials "429 Too Many Requests, with a Retry-After: 60 header"; apps bring their
  own retries when they pass their own HTTP client
  (https://learn.microsoft.com/entra/msal/dotnet/advanced/client-and-server-throttling ,
  https://learn.microsoft.com/entra/msal/python/advanced/msal-error-handling-python ; entra.md
  §7 `http_client`).
- Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
Back-off with full jitter: https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
"""

from __future__ import annotations

import contextvars
import datetime as dt
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

__all__ = [
    "DEFAULT_POLICY",
    "RETRY_STATUSES",
    "CallRecord",
    "ContextPool",
    "Replay",
    "RetryPolicy",
    "Tracker",
    "call_with_retries",
    "parse_retry_after",
    "replay_of",
    "track",
]

log = logging.getLogger("portal.outbound")

T = TypeVar("T")

#: Answers worth another attempt: throttled (429), unavailable (503), gateway timeout (504).
#: Any other 4xx means the request itself is wrong or refused; a 500 is a fault that an
#: identical request usually meets again (the classification still calls it transient).
RETRY_STATUSES = frozenset({429, 503, 504})
#: For a request that must not run twice, only answers saying it was not processed.
NOT_PROCESSED_STATUSES = frozenset({429, 503})

#: ``always``: safe to send again whatever happened (GET, client-credentials and refresh-token
#: grants). ``answered``: only when the server answered that it did not process it, or the
#: connection never opened (an authorization code is single use).
Replay = Literal["always", "answered"]

#: Token grants that may be sent twice. A client-credentials request has no state at Microsoft;
#: a refresh token stays valid when it is redeemed again (an old refresh token is not revoked
#: when a new one is issued: entra.md §9 "RTs replace themselves on each use and the old one
#: isn't revoked"). An authorization code is redeemable once
#: (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow): a second
#: redemption after the first reached Microsoft fails with invalid_grant and hides the real
#: outcome, so it is "answered" only.
REPEATABLE_GRANTS = frozenset({"client_credentials", "refresh_token"})

#: The longest wait a Retry-After is taken for (msal throttled_http_client caps at 3600 too).
MAX_RETRY_AFTER = 3600.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from Retry-After (delay-seconds or HTTP-date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        # RFC 9110 says whole seconds; a decimal is accepted rather than ignored.
        seconds = float(value)
    except ValueError:
        pass
    else:
        # Capped like MSAL's own parser (an hour): a larger value is a broken header.
        return min(seconds, MAX_RETRY_AFTER) if seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return min(MAX_RETRY_AFTER, max(0.0, when.timestamp() - now))


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how long and how patiently one call to Microsoft is tried."""

    attempts: int = 4
    #: Seconds one call may take, its waits included. Below gunicorn's 30 s worker timeout, so
    #: a request that Microsoft keeps busy still gets an answer page.
    deadline: float = 20.0
    base_backoff: float = 0.5
    max_backoff: float = 8.0
    #: No attempt is started with less time left than this (it could only time out).
    min_attempt: float = 0.25
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    wall_clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to base * 2^(attempt-1), capped."""
        return self.jitter() * min(self.max_backoff, self.base_backoff * 2 ** (attempt - 1))


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class CallRecord:
    """One logical call (all its attempts), as trackers see it: no URL, no header, no body."""

    cloud: str
    endpoint: str
    attempts: int
    status: int | None
    error: str | None
    waited: float
    #: Retry-After of the last answer when the call gave up with it (a hint for later callers).
    retry_after: float | None

    @property
    def failed(self) -> bool:
        """True when the call ended without an answer or with a retryable status."""
        return self.error is not None or self.status in RETRY_STATUSES


class Tracker:
    """Collects the calls made while it is active (in this thread and in `ContextPool` tasks)."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self._lock = threading.Lock()

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self.calls.append(record)

    @property
    def attempts(self) -> int:
        """HTTP attempts of every call (1 per call without retries)."""
        return sum(c.attempts for c in self.calls)

    @property
    def waited(self) -> float:
        """Seconds slept between attempts."""
        return sum(c.waited for c in self.calls)

    def retry_after(self, cloud: str | None = None) -> float | None:
        """The largest Retry-After a failed call (of that cloud) was left with, if any."""
        found = [
            c.retry_after
            for c in self.calls
            if c.retry_after is not None and (cloud is None or c.cloud == cloud)
        ]
        return max(found) if found else None


_trackers: contextvars.ContextVar[tuple[Tracker, ...]] = contextvars.ContextVar(
    "portal_outbound_trackers", default=()
)


@contextmanager
def track() -> Iterator[Tracker]:
    """Record every outbound call made inside the block (nested blocks each see theirs)."""
    tracker = Tracker()
    token = _trackers.set((*_trackers.get(), tracker))
    try:
        yield tracker
    finally:
        _trackers.reset(token)


class ContextPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context, so the calls they
    make reach the submitter's trackers (a plain pool starts each task with an empty one)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)


def replay_of(method: str, endpoint: str, data: Any) -> Replay:
    """Whether a request may be sent again after it may have reached Microsoft."""
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return "always"
    if endpoint == "token" and isinstance(data, dict):
        if data.get("grant_type") in REPEATABLE_GRANTS:
            return "always"
    return "answered"


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the connection never opened, so Microsoft cannot have seen the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)
        return isinstance(reason, NewConnectionError | ConnectTimeoutError)
    return False


def _retryable_error(exc: requests.RequestException, replay: Replay) -> bool:
    # A TLS failure is our configuration (or an interception): the same handshake fails again.
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.InvalidURL):
        return False
    if not isinstance(exc, requests.ConnectionError | requests.Timeout):
        return False
    # A read timeout or a reset after sending: the request may have been processed.
    return replay == "always" or _never_sent(exc)


def _clip(timeout: Any, left: float) -> Any:
    """The attempt's timeout, no part of it longer than the time left."""
    if isinstance(timeout, tuple):
        return tuple(None if t is None else min(float(t), left) for t in timeout)
    return left if timeout is None else min(float(timeout), left)


@dataclass
class _Call:
    """The state of one logical call while its attempts run."""

    policy: RetryPolicy
    cloud: str
    endpoint: str
    replay: Replay
    started: float
    attempt: int = 0
    waited: float = 0.0

    def left(self) -> float:
        return self.policy.deadline - (self.policy.clock() - self.started)

    def finish(self, status: int | None, error: str | None, retry_after: float | None) -> None:
        record = CallRecord(
            self.cloud, self.endpoint, self.attempt, status, error, self.waited, retry_after
        )
        for tracker in _trackers.get():
            tracker.add(record)

    def wait_or_stop(self, delay: float, what: str) -> bool:
        """Sleep ``delay`` and return True, or return False when the call must end now: no
        attempts left, or the wait would leave too little time (never sleep past the
        deadline: a long Retry-After goes back to the caller as the answer)."""
        policy = self.policy
        if self.attempt >= policy.attempts or delay + policy.min_attempt > self.left():
            return False
        log.warning(
            "outbound retry: cloud %s, %s endpoint, %s; attempt %d of %d in %.2f s",
            self.cloud,
            self.endpoint,
            what,
            self.attempt + 1,
            policy.attempts,
            delay,
        )
        policy.sleep(delay)
        self.waited += delay
        return True


def call_with_retries(
    send: Callable[[Any], requests.Response],
    *,
    timeout: Any,
    policy: RetryPolicy = DEFAULT_POLICY,
    replay: Replay = "always",
    cloud: str = "unknown",
    endpoint: str = "other",
) -> requests.Response:
    """Run ``send(timeout)`` until it gives a final answer, within the policy's attempts and
    deadline. Returns the last response (a throttled one included, for the caller to classify
    with its Retry-After) or raises the last connection error."""
    call = _Call(policy, cloud, endpoint, replay, policy.clock())
    statuses = RETRY_STATUSES if replay == "always" else NOT_PROCESSED_STATUSES
    while True:
        call.attempt += 1
        try:
            response = send(_clip(timeout, max(call.left(), 0.001)))
        except requests.RequestException as exc:
            if not _retryable_error(exc, replay) or not call.wait_or_stop(
                policy.backoff(call.attempt), type(exc).__name__
            ):
                call.finish(None, type(exc).__name__, None)
                raise
            continue
        status = response.status_code
        if status not in statuses:
            call.finish(status, None, None)
            return response
        hint = parse_retry_after(response.headers.get("Retry-After"), policy.wall_clock())
        delay = hint if hint is not None else policy.backoff(call.attempt)
        if not call.wait_or_stop(delay, f"status {status}"):
            call.finish(status, None, hint)
            return response
        response.close()  # hand the connection back before the next attempt
