"""The one HTTP session factory for outbound calls: host allowlist, timeouts, no redirects.

Every request to Microsoft (or the simulator) goes through `http_session`, so a URL outside the
cloud table is refused before a connection is opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from urllib3.util import parse_url

if TYPE_CHECKING:
    from .cloud import Cloud
    from .clouds import CloudTable

__all__ = [
    "DEFAULT_TIMEOUT",
    "GuardedSession",
    "HostNotAllowedError",
    "Origin",
    "http_session",
    "origin_of",
]

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


class GuardedSession(requests.Session):
    """A requests session that talks only to allowlisted origins, never redirects, times out."""

    def __init__(
        self,
        allowed: Iterable[Origin],
        *,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        ca_bundles: Mapping[Origin, str] | None = None,
        trust_env: bool = False,
    ) -> None:
        super().__init__()
        self.allowed: frozenset[Origin] = frozenset(allowed)
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
        """Apply the default timeout, refuse redirects and pick the origin's CA bundle."""
        text_url = url.decode() if isinstance(url, bytes) else url
        origin = self.check_url(text_url)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        kwargs["allow_redirects"] = False
        if kwargs.get("verify") is None and origin in self.ca_bundles:
            kwargs["verify"] = self.ca_bundles[origin]
        return super().request(method, url, *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Check the final, prepared URL too: this is what urllib3 will connect to."""
        self.check_url(request.url or "")
        kwargs["allow_redirects"] = False
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().send(request, **kwargs)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """Never follow redirects (a redirect could lead to any host)."""
        return None


def http_session(
    cloud_table: CloudTable,
    cloud: Cloud | None = None,
    timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
) -> GuardedSession:
    """The session for every outbound call: table allowlist, timeouts, CA bundle, no redirects,
    and nothing taken from the environment (proxies, CA bundles, .netrc)."""
    ca_bundles: dict[Origin, str] = {}
    clouds = (cloud,) if cloud is not None else cloud_table.all()
    for c in clouds:
        if c.ca_bundle:
            ca_bundles[origin_of(c.login_base)] = c.ca_bundle
            ca_bundles[origin_of(c.graph_base)] = c.ca_bundle
    session = GuardedSession(
        cloud_table.allowed_hosts(),
        timeout=timeout,
        ca_bundles=ca_bundles,
        trust_env=False,  # the environment can neither redirect nor re-trust outbound calls
    )
    if cloud is not None and cloud.ca_bundle:
        session.verify = cloud.ca_bundle
    return session
