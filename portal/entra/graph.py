"""A small Microsoft Graph reader: bounded retries that honour Retry-After, paging, typed errors.

Throttling guidance: https://learn.microsoft.com/graph/throttling ; Retry-After may be seconds or an
HTTP date (RFC 9110 §10.2.3). Paging: https://learn.microsoft.com/graph/paging .
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from .clouds import Cloud, HostNotAllowedError
from .errors import EntraProblem, SupportCodes, problem

__all__ = ["GraphClient", "GraphError", "RETRY_STATUSES", "parse_retry_after"]

# Only these are worth retrying; other 4xx mean the request itself is wrong or not allowed.
RETRY_STATUSES = frozenset({429, 503, 504})


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from Retry-After (delay-seconds or HTTP-date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(eq=False)
class GraphError(Exception):
    """A Graph call that failed for good (after any retries)."""

    status: int | None
    code: str | None
    message: str
    request_id: str | None = None
    client_request_id: str | None = None
    date: str | None = None
    retry_after: float | None = None
    attempts: int = 1
    network: bool = False

    def __str__(self) -> str:
        return f"Graph {self.status or 'network'} {self.code or ''}: {self.message}".strip()

    @property
    def throttled(self) -> bool:
        """True when Graph kept answering 429/503/504."""
        return self.status in RETRY_STATUSES

    @property
    def forbidden(self) -> bool:
        """True for 403: the app lacks the permission this read needs."""
        return self.status == 403

    def to_problem(self) -> EntraProblem:
        """The plain-language problem for this failure."""
        raw = SupportCodes(
            trace_id=self.request_id,
            correlation_id=self.client_request_id,
            timestamp=self.date,
            http_status=self.status,
        )
        if self.network or self.status is None or self.status >= 500 or self.status == 429:
            return problem(
                "transient",
                "Microsoft Graph didn't answer",
                "Microsoft Graph is busy or unreachable right now.",
                "Wait a minute and check again.",
                error=self.code,
                raw=raw,
            )
        if self.status == 403:
            return problem(
                "customer_action",
                "Permission missing",
                "Microsoft Graph refused a read that the application needs.",
                "Grant the application permissions listed below and select Grant admin consent.",
                "api_permissions",
                error=self.code,
                raw=raw,
            )
        return problem(
            "unknown",
            "Microsoft Graph returned an error",
            "Microsoft Graph returned an error we don't have specific guidance for.",
            "Try again; if it persists, contact support and quote the codes below.",
            error=self.code,
            raw=raw,
        )


class GraphClient:
    """Reads Graph of one cloud with one access token over the shared, allowlisted session."""

    def __init__(
        self,
        session: requests.Session,
        cloud: Cloud,
        access_token: str,
        *,
        max_attempts: int = 4,
        deadline: float = 20.0,
        max_pages: int = 20,
        base_backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.session = session
        self.cloud = cloud
        self._token = access_token
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.max_pages = max_pages
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.clock = clock
        self.wall_clock = wall_clock
        self.jitter = jitter
        self.calls = 0

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith("https://"):
            # Only follow links that stay on this cloud's Graph (e.g. @odata.nextLink).
            if not path_or_url.startswith(self.cloud.graph_base + "/"):
                raise GraphError(None, "refusedLink", "Graph returned a link to another host")
            return path_or_url
        return self.cloud.graph_url(path_or_url)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
        return self.jitter() * min(self.max_backoff, self.base_backoff * 2 ** (attempt - 1))

    @staticmethod
    def _error_from(response: requests.Response, attempts: int, wait: float | None) -> GraphError:
        code = None
        message = f"HTTP {response.status_code}"
        inner: Mapping[str, Any] = {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            code = err.get("code") if isinstance(err.get("code"), str) else None
            message = str(err.get("message") or message)
            inner = err.get("innerError") or err.get("innererror") or {}
            if not isinstance(inner, dict):
                inner = {}
        return GraphError(
            status=response.status_code,
            code=code,
            message=message,
            request_id=inner.get("request-id") or response.headers.get("request-id"),
            client_request_id=inner.get("client-request-id")
            or response.headers.get("client-request-id"),
            date=inner.get("date") or response.headers.get("Date"),
            retry_after=wait,
            attempts=attempts,
        )

    def get_json(self, path_or_url: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET one resource, retrying 429/503/504 and network errors within attempts/deadline."""
        url = self._url(path_or_url)
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            # One id per logical read so Microsoft support can correlate retries.
            "client-request-id": str(uuid.uuid4()),
        }
        start = self.clock()
        attempt = 0
        while True:
            attempt += 1
            began = self.clock()
            try:
                self.calls += 1
                response = self.session.get(url, headers=headers, params=params)
            except HostNotAllowedError as exc:
                raise GraphError(None, "refusedHost", str(exc), attempts=attempt) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = GraphError(
                    None,
                    type(exc).__name__,
                    "network error or timeout",
                    attempts=attempt,
                    network=True,
                )
                delay = self._backoff(attempt)
            else:
                if 200 <= response.status_code < 300:
                    try:
                        data = response.json()
                    except ValueError:
                        raise GraphError(
                            response.status_code,
                            "badJson",
                            "Graph answered with something that isn't JSON",
                            attempts=attempt,
                        ) from None
                    if not isinstance(data, dict):
                        raise GraphError(
                            response.status_code, "badJson", "unexpected JSON", attempts=attempt
                        )
                    return data
                wait = parse_retry_after(response.headers.get("Retry-After"), self.wall_clock())
                error = self._error_from(response, attempt, wait)
                if response.status_code not in RETRY_STATUSES:
                    raise error
                delay = wait if wait is not None else self._backoff(attempt)
            took = self.clock() - began
            if attempt >= self.max_attempts:
                raise error
            # Give up now when waiting plus one more attempt would pass the deadline; a long
            # Retry-After is a hint for a background job, not something to sleep on in a request.
            if self.clock() - start + delay + took > self.deadline:
                raise error
            self.sleep(delay)

    def get_all(self, path: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """GET a collection and follow `@odata.nextLink` (bounded), returning every item."""
        items: list[dict[str, Any]] = []
        page = self.get_json(path, params)
        for _ in range(self.max_pages):
            value = page.get("value")
            if isinstance(value, list):
                items.extend(v for v in value if isinstance(v, dict))
            next_link = page.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return items
            page = self.get_json(next_link)
        raise GraphError(None, "tooManyPages", f"more than {self.max_pages} pages")
