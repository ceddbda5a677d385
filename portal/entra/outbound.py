"""The one HTTP session factory for outbound calls: host allowlist, timeouts, no redirects,
and the retry policy of `retry.py`.

Every request to Microsoft (or the simulator) goes through `http_session`, so a URL outside the
cloud table is refused before a connection is opened, and every call (ours, MSAL's, Graph's) is
retried by the same rules in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from urllib3.util import parse_url

from .retry import DEFAULT_POLICY, RetryPolicy, call_with_retries, replay_of

if TYPE_CHECKING:
    from .cloud import Cloud
    from .clouds import CloudTable

__all__ = [
    "DEFAULT_TIMEOUT",
    "GuardedSession",
    "HostNotAllowedError",
    "OutboundCall",
    "Origin",
    "endpoint_of",
    "http_session",
    "observe_calls",
    "origin_of",
]

log = logging.getLogger("portal.outbound")

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10)


class HostNotAllowedError(requests.exceptions.InvalidURL):
    """An outbound request targeted a host outside the cloud table (refused before connecting)."""


Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    """Return (scheme, host, port) of an absolute URL, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if scheme == "https" else 80 if scheme == "http" else 0)
    return scheme, host, port


def endpoint_of(url: str, graph_origins: frozenset[Origin] = frozenset()) -> str:
    """The kind of Microsoft endpoint a URL names, for metrics and logs (never the URL itself,
    which holds tenant ids): ``discovery``, ``keys``, ``token``, ``graph`` or ``other``."""
    # By path first: the simulator serves login and Graph from one origin.
    path = urlsplit(url).path
    if path.endswith("/.well-known/openid-configuration") or path.endswith("/discovery/instance"):
        return "discovery"
    if path.endswith("/discovery/v2.0/keys") or path.endswith("/discovery/keys"):
        return "keys"
    if path.endswith("/oauth2/v2.0/token") or path.endswith("/oauth2/token"):
        return "token"
    if path.startswith(("/v1.0/", "/beta/")) or origin_of(url) in graph_origins:
        return "graph"
    return "other"


def outcome_of(status: int | None, error: BaseException | None = None) -> str:
    """The outcome class of one call: ``ok``, ``client_error``, ``throttled``, ``server_error``,
    ``timeout`` or ``network``."""
    if error is not None:
        return "timeout" if isinstance(error, requests.Timeout) else "network"
    if status is None or status < 400:
        return "ok"
    if status == 429:
        return "throttled"
    return "server_error" if status >= 500 else "client_error"


@dataclass(frozen=True)
class OutboundCall:
    """One HTTP exchange with Microsoft (one attempt), as observers see it. No URL, header or
    body: only what can be counted."""

    cloud: str
    endpoint: str
    method: str
    status: int | None
    outcome: str
    seconds: float


_observers: list[Callable[[OutboundCall], None]] = []


def observe_calls(observer: Callable[[OutboundCall], None]) -> Callable[[], None]:
    """Call ``observer`` after every outbound attempt of every session; returns the function
    that removes it. An observer that raises is logged, never fails the call."""
    _observers.append(observer)

    def remove() -> None:
        if observer in _observers:
            _observers.remove(observer)

    return remove


def _notify(call: OutboundCall) -> None:
    for observer in list(_observers):
        try:
            observer(call)
        except Exception:
            log.exception("outbound call observer failed")


class GuardedSession(requests.Session):
    """A requests session that talks only to allowlisted origins, never redirects, times out."""

    def __init__(
        self,
        allowed: Iterable[Origin],
        *,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        ca_bundles: Mapping[Origin, str] | None = None,
        trust_env: bool = False,
        clouds_by_origin: Mapping[Origin, str] | None = None,
        graph_origins: Iterable[Origin] = (),
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        super().__init__()
        self.retry = retry
        self.allowed: frozenset[Origin] = frozenset(allowed)
        # Which cloud and endpoint an origin belongs to, for observers (metrics) only.
        self.clouds_by_origin: dict[Origin, str] = dict(clouds_by_origin or {})
        self.graph_origins: frozenset[Origin] = frozenset(graph_origins)
        self.default_timeout = timeout
        self.ca_bundles: dict[Origin, str] = dict(ca_bundles or {})
        # With trust_env, HTTPS_PROXY / ALL_PROXY would send every call (tokens, assertions)
        # through whatever proxy the process environment names, and REQUESTS_CA_BUNDLE /
        # CURL_CA_BUNDLE would replace the CAs that vouch for Microsoft's hosts.
        self.trust_env = trust_env
        self.max_redirects = 0

    def check_url(self, url: str) -> Origin:
        """Raise HostNotAllowedError unless the URL's origin is allowlisted (both parsers agree)."""
        try:
            origin = origin_of(url)
            # urllib3 parses URLs its own way; refuse anything where the two parsers disagree.
            u3 = parse_url(url)
            u3_origin = (
                (u3.scheme or "").lower(),
                (u3.host or "").lower(),
                u3.port or (443 if (u3.scheme or "").lower() == "https" else 80),
            )
        except Exception as exc:  # any parse failure is a refusal
            raise HostNotAllowedError(f"refused malformed URL: {exc}") from None
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None or "\\" in url:
            raise HostNotAllowedError("refused URL with user info or backslash")
        if origin != u3_origin or origin not in self.allowed:
            raise HostNotAllowedError(f"refused outbound request to {origin[0]}://{origin[1]}")
        return origin

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Apply the default timeout, refuse redirects, pick the origin's CA bundle and retry by
        the session's policy (or ``retry=`` for this call).

        MSAL's own throttling layer (msal/throttled_http_client.py, 1.39) wraps this session:
        it never sleeps, it only replays a 429/5xx answer (or one with Retry-After) for that
        many seconds (5 without the header) instead of calling us. It sees only the final
        answer of our attempts, so the two never wait twice: after our retries succeed it has
        nothing to replay, and when we give up on a long Retry-After it keeps callers of the
        same token request off Microsoft until then, which is what Retry-After asks for.
        """
        text_url = url.decode() if isinstance(url, bytes) else url
        origin = self.check_url(text_url)
        policy: RetryPolicy = kwargs.pop("retry", None) or self.retry
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        kwargs["allow_redirects"] = False
        if kwargs.get("verify") is None and origin in self.ca_bundles:
            kwargs["verify"] = self.ca_bundles[origin]
        verb = method.decode() if isinstance(method, bytes) else method
        endpoint = endpoint_of(text_url, self.graph_origins)

        def attempt(timeout: Any) -> requests.Response:
            return super(GuardedSession, self).request(
                method, url, *args, **{**kwargs, "timeout": timeout}
            )

        return call_with_retries(
            attempt,
            timeout=kwargs["timeout"],
            policy=policy,
            replay=replay_of(verb, endpoint, kwargs.get("data")),
            cloud=self.clouds_by_origin.get(origin, "unknown"),
            endpoint=endpoint,
        )

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Check the final, prepared URL too: this is what urllib3 will connect to."""
        self.check_url(request.url or "")
        kwargs["allow_redirects"] = False
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        if not _observers:
            return super().send(request, **kwargs)
        url = request.url or ""
        started = time.perf_counter()
        status: int | None = None
        error: BaseException | None = None
        try:
            response = super().send(request, **kwargs)
            status = response.status_code
            return response
        except requests.RequestException as exc:
            error = exc
            raise
        finally:
            _notify(
                OutboundCall(
                    cloud=self.clouds_by_origin.get(origin_of(url), "unknown"),
                    endpoint=endpoint_of(url, self.graph_origins),
                    method=str(request.method or "GET"),
                    status=status,
                    outcome=outcome_of(status, error),
                    seconds=time.perf_counter() - started,
                )
            )

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """Never follow redirects (a redirect could lead to any host)."""
        return None


def http_session(
    cloud_table: CloudTable,
    cloud: Cloud | None = None,
    timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> GuardedSession:
    """The session for every outbound call: table allowlist, timeouts, CA bundle, no redirects,
    the retry policy (``retry``, else the table's), and nothing taken from the environment
    (proxies, CA bundles, .netrc)."""
    ca_bundles: dict[Origin, str] = {}
    clouds = (cloud,) if cloud is not None else cloud_table.all()
    # The simulator serves several clouds from one origin: the session's own cloud names it.
    clouds_by_origin: dict[Origin, str] = {}
    for c in reversed(cloud_table.all()):
        clouds_by_origin[origin_of(c.login_base)] = c.key
        clouds_by_origin[origin_of(c.graph_base)] = c.key
    if cloud is not None:
        clouds_by_origin[origin_of(cloud.login_base)] = cloud.key
        clouds_by_origin[origin_of(cloud.graph_base)] = cloud.key
    for c in clouds:
        if c.ca_bundle:
            ca_bundles[origin_of(c.login_base)] = c.ca_bundle
            ca_bundles[origin_of(c.graph_base)] = c.ca_bundle
    session = GuardedSession(
        cloud_table.allowed_hosts(),
        timeout=timeout,
        ca_bundles=ca_bundles,
        trust_env=False,  # the environment can neither redirect nor re-trust outbound calls
        clouds_by_origin=clouds_by_origin,
        graph_origins={origin_of(c.graph_base) for c in cloud_table.all()},
        retry=retry or cloud_table.retry,
    )
    if cloud is not None and cloud.ca_bundle:
        session.verify = cloud.ca_bundle
    return session
