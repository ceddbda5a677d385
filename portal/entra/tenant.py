"""Tenant input: a strict parser (GUID or DNS domain) that runs before any network call."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from .clouds import Cloud, CloudTable, http_session
from .errors import EntraProblem, classify
from .retry import ContextPool

__all__ = [
    "Discovery",
    "DiscoveryCache",
    "TenantInputError",
    "TenantRef",
    "discover_tenant",
    "identify_cloud",
    "is_guid",
    "parse_tenant_input",
]

_GUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
)
_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TLD_RE = re.compile(r"^[a-z]{2,63}$")
_FORBIDDEN = set("/?#@%\\:[]{}<>\"'`|^;,=+&*!$()~")
_HELP = (
    "Enter the tenant ID (like 72f988bf-86f1-41af-91ab-2d7cd011db47) or a domain such as "
    "contoso.onmicrosoft.com."
)


class TenantInputError(ValueError):
    """The text is neither a tenant ID nor a domain name; the message is shown to the user."""


@dataclass(frozen=True)
class TenantRef:
    """A validated tenant reference: a canonical lowercase GUID or a lowercase DNS name."""

    kind: Literal["guid", "domain"]
    value: str

    def __str__(self) -> str:
        return self.value


def is_guid(text: str) -> bool:
    """True for a canonical lowercase GUID."""
    return bool(_GUID_RE.match(text))


def _as_guid(text: str) -> str | None:
    lowered = text.lower()
    if lowered.startswith("urn:uuid:"):
        lowered = lowered[len("urn:uuid:") :]
    elif lowered.startswith("{") and lowered.endswith("}"):
        lowered = lowered[1:-1]
    return lowered if _GUID_RE.match(lowered) else None


def parse_tenant_input(text: str) -> TenantRef:
    """Parse a typed tenant: a GUID (any case, braces, urn:uuid:) or a domain name."""
    if not isinstance(text, str):
        raise TenantInputError(_HELP)
    # People paste with stray spaces or a newline at the ends; anything inside is rejected below.
    stripped = text.strip(" \t\r\n")
    if not stripped:
        raise TenantInputError("Enter your tenant ID or domain. " + _HELP)
    if len(stripped) > 253:
        raise TenantInputError("That is too long for a tenant ID or domain. " + _HELP)
    if not stripped.isascii():
        raise TenantInputError(
            "Use plain letters, digits, '-' and '.' only (for an international domain, "
            "use its xn-- form or your .onmicrosoft.com domain)."
        )
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in stripped):
        raise TenantInputError("Remove the spaces from the tenant. " + _HELP)
    guid = _as_guid(stripped)
    if guid is not None:
        return TenantRef("guid", guid)
    lowered = stripped.lower()
    if any(ch in _FORBIDDEN for ch in lowered):
        raise TenantInputError("That isn't a tenant ID or domain name. " + _HELP)
    labels = lowered.split(".")
    if len(labels) < 2:
        raise TenantInputError("A domain needs a dot, like contoso.com. " + _HELP)
    if any(not _LABEL_RE.match(label) for label in labels):
        raise TenantInputError("That domain name isn't valid. " + _HELP)
    if not _TLD_RE.match(labels[-1]):
        # Also rules out IP literals such as 10.0.0.1.
        raise TenantInputError("That domain name must end in letters, like .com. " + _HELP)
    return TenantRef("domain", lowered)


# ---------------------------------------------------------------------------------------------
# Discovery: which tenant GUID and which cloud (https://learn.microsoft.com/entra/identity-platform/
# v2-protocols-oidc ; cloud markers: https://learn.microsoft.com/azure/azure-government/
# documentation-government-plan-identity).

Outcome = Literal["found", "not_found", "other_cloud", "malformed", "error"]
_DEFINITIVE = frozenset({"found", "not_found", "other_cloud", "malformed"})
PROBE_TIMEOUT: tuple[float, float] = (2.0, 3.0)


@dataclass(frozen=True)
class Discovery:
    """What the chosen cloud said about a tenant: found, elsewhere, unknown, malformed or error."""

    outcome: Outcome
    cloud_key: str
    tenant: TenantRef
    tenant_id: str | None = None
    other_cloud: str | None = None
    region_scope: str | None = None
    region_sub_scope: str | None = None
    issuer: str | None = None
    token_endpoint: str | None = None
    message: str = ""
    problem: EntraProblem | None = None
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        """True when the tenant exists in the chosen cloud."""
        return self.outcome == "found"


class DiscoveryCache:
    """A small thread-safe TTL cache of definitive discovery results (injectable clock)."""

    def __init__(
        self,
        ttl: float = 300.0,
        negative_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 2048,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self.max_entries = max_entries
        self._data: dict[tuple[str, ...], tuple[float, Discovery]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Discovery | None:
        """The cached result, or None when absent or expired."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            expires, value = hit
            if self.clock() >= expires:
                del self._data[key]
                return None
            return value

    def put(self, key: tuple[str, ...], value: Discovery) -> None:
        """Store a definitive result (errors are never cached)."""
        if value.outcome not in _DEFINITIVE:
            return
        ttl = self.ttl if value.outcome in ("found", "other_cloud") else self.negative_ttl
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._data.pop(next(iter(self._data)))
            self._data[key] = (self.clock() + ttl, value)

    def clear(self) -> None:
        """Forget everything (tests; after a cloud table change)."""
        with self._lock:
            self._data.clear()


@dataclass(frozen=True)
class _Probe:
    status: Literal["found", "not_found", "malformed", "other_cloud_hint", "error"]
    cloud: Cloud
    tenant_id: str | None = None
    scope: str | None = None
    sub_scope: str | None = None
    issuer: str | None = None
    token_endpoint: str | None = None
    problem: EntraProblem | None = None


def _tenant_from_token_endpoint(url: Any) -> str | None:
    # MSAL takes the tenant from token_endpoint's first path segment; so do we.
    if not isinstance(url, str):
        return None
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if segments and is_guid(segments[0].lower()):
        return segments[0].lower()
    return None


def _probe(session: requests.Session, cloud: Cloud, ref: TenantRef, timeout: Any) -> _Probe:
    try:
        response = session.get(cloud.discovery_url(ref.value), timeout=timeout)
    except requests.RequestException as exc:
        return _Probe("error", cloud, problem=classify(exc))
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
        tenant_id = _tenant_from_token_endpoint(body.get("token_endpoint"))
        if tenant_id is None:
            return _Probe("error", cloud, problem=classify(response))
        scope = body.get("tenant_region_scope")
        sub_scope = body.get("tenant_region_sub_scope")
        return _Probe(
            "found",
            cloud,
            tenant_id,
            scope if isinstance(scope, str) else None,
            sub_scope if isinstance(sub_scope, str) else None,
            body.get("issuer") if isinstance(body.get("issuer"), str) else None,
            body.get("token_endpoint"),
        )
    found_problem = classify(response)
    codes = found_problem.raw.error_codes
    if response.status_code == 429:
        # Throttled (after the session's retries): Microsoft said nothing about the tenant.
        return _Probe("error", cloud, problem=found_problem)
    if 400 <= response.status_code < 500:
        if 900023 in codes:
            return _Probe("malformed", cloud, problem=found_problem)
        if 90038 in codes:
            return _Probe("other_cloud_hint", cloud, problem=found_problem)
        # 400 invalid_tenant / AADSTS90002 is "not in this cloud" (entra.md §5); treat any other
        # 400/404 on the document the same way, since a probe of another cloud follows.
        not_here = response.status_code in (400, 404) or found_problem.error == "invalid_tenant"
        if 90002 in codes or not_here:
            return _Probe("not_found", cloud, problem=found_problem)
    return _Probe("error", cloud, problem=found_problem)


def identify_cloud(
    found_at: Cloud, family: Sequence[Cloud], scope: str | None, sub_scope: str | None
) -> Cloud:
    """Which cloud a tenant belongs to, from the cloud that answered and the tenant's markers."""
    sub = (sub_scope or "").upper()
    region = (scope or "").upper()
    # US L4 and L5 share a login host; only tenant_region_sub_scope (DODCON / DOD) tells them apart.
    if sub:
        for cloud in family:
            if cloud.region_sub_scope and cloud.region_sub_scope.upper() == sub:
                return cloud
    candidates = [c for c in family if region and region in (s.upper() for s in c.region_scopes)]
    if candidates:
        return found_at if found_at in candidates else candidates[0]
    if found_at.region_sub_scope is not None:
        # A US host answered for a tenant without US markers: it belongs to a cloud without one.
        plain = [c for c in family if c.region_sub_scope is None and not c.region_scopes]
        return plain[0] if plain else found_at
    return found_at


def _found(chosen: Cloud, probe: _Probe, ref: TenantRef, family: Sequence[Cloud]) -> Discovery:
    home = identify_cloud(probe.cloud, family, probe.scope, probe.sub_scope)
    found = Discovery(
        "found",
        chosen.key,
        tenant=ref,
        tenant_id=probe.tenant_id,
        region_scope=probe.scope,
        region_sub_scope=probe.sub_scope,
        issuer=probe.issuer,
        token_endpoint=probe.token_endpoint,
        message="",
    )
    if home.key == chosen.key:
        return found
    return replace(
        found,
        outcome="other_cloud",
        other_cloud=home.key,
        message=f"This tenant is in {home.name}, not {chosen.name}. Choose {home.name} instead.",
    )


def discover_tenant(
    cloud_table: CloudTable,
    cloud_key: str,
    tenant_ref: TenantRef,
    *,
    session: requests.Session | None = None,
    cache: DiscoveryCache | None = None,
    probe_timeout: tuple[float, float] = PROBE_TIMEOUT,
) -> Discovery:
    """Look the tenant up in the chosen cloud; when it isn't there, ask the sibling clouds."""
    chosen = cloud_table.get(cloud_key)
    key = (chosen.key, chosen.login_base, tenant_ref.value)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return replace(hit, from_cache=True)
    own = session is None
    session = session or http_session(cloud_table)
    try:
        result = _discover(
            session, chosen, tenant_ref, cloud_table.family_of(chosen), probe_timeout
        )
    finally:
        if own:
            session.close()
    if cache is not None:
        cache.put(key, result)
    return result


def _discover(
    session: requests.Session,
    chosen: Cloud,
    tenant_ref: TenantRef,
    family: Sequence[Cloud],
    probe_timeout: tuple[float, float],
) -> Discovery:
    first = _probe(session, chosen, tenant_ref, None)
    if first.status == "found":
        result = _found(chosen, first, tenant_ref, family)
    elif first.status == "malformed":
        result = Discovery(
            "malformed",
            chosen.key,
            tenant_ref,
            problem=first.problem,
            message="Microsoft says this is neither a valid tenant ID nor a domain name.",
        )
    elif first.status == "error":
        result = Discovery(
            "error",
            chosen.key,
            tenant_ref,
            problem=first.problem,
            message="We couldn't reach Microsoft to look the tenant up. Try again in a minute.",
        )
    else:
        result = _probe_others(session, chosen, tenant_ref, family, first, probe_timeout)
    return result


def _probe_others(
    session: requests.Session,
    chosen: Cloud,
    ref: TenantRef,
    family: Sequence[Cloud],
    first: _Probe,
    timeout: tuple[float, float],
) -> Discovery:
    # Clouds sharing the chosen login host would give the same answer; ask each other host once.
    others: list[Cloud] = []
    seen_hosts = {chosen.login_base}
    for cloud in family:
        if cloud.login_base not in seen_hosts:
            seen_hosts.add(cloud.login_base)
            others.append(cloud)
    probes: list[_Probe] = []
    if others:
        with ContextPool(max_workers=len(others)) as pool:
            futures = [pool.submit(_probe, session, c, ref, timeout) for c in others]
            probes = [f.result() for f in futures]
    for probe in probes:
        if probe.status == "found":
            result = _found(chosen, probe, ref, family)
            return result
    failed = next((p for p in probes if p.status == "error"), None)
    if failed is not None:
        # Not in the chosen cloud, but a sibling cloud that might hold it did not answer
        # (throttled, 5xx, timeout): that is no "not found", only "try again".
        return Discovery(
            "error",
            chosen.key,
            ref,
            problem=failed.problem,
            message=(
                f"This tenant isn't in {chosen.name}, and we couldn't reach Microsoft's other "
                "clouds to look for it. Try again in a minute."
            ),
        )
    return Discovery(
        "not_found",
        chosen.key,
        ref,
        problem=first.problem,
        message=(
            f"We couldn't find this tenant in {chosen.name}. Check the tenant ID or domain "
            "and the cloud."
        ),
    )
