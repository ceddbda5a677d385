"""A small Microsoft Graph reader: paging and typed errors. Retries (429/503/504 honouring
Retry-After, network errors) are the shared policy of `retry.py`, applied by the session, so a
read is never retried twice.

Throttling guidance: https://learn.microsoft.com/graph/throttling . Paging:
https://learn.microsoft.com/graph/paging .
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from .clouds import Cloud, HostNotAllowedError
from .errors import EntraProblem, SupportCodes, problem
from .retry import RETRY_STATUSES, RetryPolicy, parse_retry_after, track

# parse_retry_after and RETRY_STATUSES live in retry.py; re-exported for older imports.
__all__ = ["GraphClient", "GraphError", "RETRY_STATUSES", "parse_retry_after"]


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
            retry_after=self.retry_after,
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
        retry: RetryPolicy | None = None,
        max_pages: int = 20,
    ) -> None:
        self.session = session
        self.cloud = cloud
        self._token = access_token
        #: A policy for these reads instead of the session's (a `GuardedSession` applies it).
        self.retry = retry
        self.max_pages = max_pages
        self.calls = 0

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith("https://"):
            # Only follow links that stay on this cloud's Graph (e.g. @odata.nextLink).
            if not path_or_url.startswith(self.cloud.graph_base + "/"):
                raise GraphError(None, "refusedLink", "Graph returned a link to another host")
            return path_or_url
        return self.cloud.graph_url(path_or_url)

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

    def _get(self, url: str, params: Mapping[str, str] | None) -> tuple[requests.Response, int]:
        """One logical GET (the session retries it); the response and the attempts it took."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            # One id per logical read, sent with every attempt, so Microsoft support can
            # correlate the retries.
            "client-request-id": str(uuid.uuid4()),
        }
        extra: dict[str, Any] = {"retry": self.retry} if self.retry is not None else {}
        self.calls += 1
        with track() as calls:
            try:
                response = self.session.get(url, headers=headers, params=params, **extra)
            except HostNotAllowedError as exc:
                raise GraphError(None, "refusedHost", str(exc)) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise GraphError(
                    None,
                    type(exc).__name__,
                    "network error or timeout",
                    attempts=max(calls.attempts, 1),
                    network=True,
                ) from None
        return response, max(calls.attempts, 1)

    def get_json(self, path_or_url: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET one resource; a failure (after the session's retries) raises GraphError."""
        response, attempts = self._get(self._url(path_or_url), params)
        if not 200 <= response.status_code < 300:
            wait = parse_retry_after(response.headers.get("Retry-After"), time.time())
            raise self._error_from(response, attempts, wait)
        try:
            data = response.json()
        except ValueError:
            raise GraphError(
                response.status_code,
                "badJson",
                "Graph answered with something that isn't JSON",
                attempts=attempts,
            ) from None
        if not isinstance(data, dict):
            raise GraphError(response.status_code, "badJson", "unexpected JSON", attempts=attempts)
        return data

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
