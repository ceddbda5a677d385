"""National clouds as data, the cloud table, and the one HTTP session factory for outbound calls.

Endpoints per cloud: https://learn.microsoft.com/graph/deployments and
https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud .
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from urllib3.util import parse_url

__all__ = [
    "BUILTIN_CLOUDS",
    "Cloud",
    "CloudConfigError",
    "CloudTable",
    "GuardedSession",
    "HostNotAllowedError",
    "http_session",
    "load_cloud_table",
    "origin_of",
]

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10)

# Azure portal blades (the portal's own deep-link paths; Microsoft documents no contract for them,
# but they have been stable for years and a wrong blade still lands in the right portal).
_APP_BLADE = "#view/Microsoft_AAD_RegisteredApps/ApplicationMenuBlade/~/{blade}/appId/{app_id}"
_ROLES_BLADE = "#view/Microsoft_AAD_IAM/RolesManagementMenuBlade/~/AllRoles"
_ENTERPRISE_BLADE = "#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/Overview/appId/{app_id}"
_APP_LIST_BLADE = "#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade"


class CloudConfigError(ValueError):
    """The extra-clouds file is malformed; the message says which entry and field."""


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


@dataclass(frozen=True)
class Cloud:
    """One national cloud (or a simulator standing in for one): hosts, resources, portal links."""

    key: str
    label: str
    explanation: str
    login_base: str
    graph_base: str
    graph_resource: str
    exchange_resource: str
    portal_url: str
    entra_url: str
    region_scopes: tuple[str, ...] = ()
    region_sub_scope: str | None = None
    ca_bundle: str | None = None
    mirrors: str | None = None
    short_label: str = ""
    builtin: bool = field(default=False, compare=False)
    #: Written by the Entra simulator into its clouds file, so production can refuse it.
    simulator: bool = field(default=False, compare=False)

    @property
    def name(self) -> str:
        """Short name used inside sentences ("US Gov L4")."""
        return self.short_label or self.label

    @property
    def family(self) -> str:
        """Clouds only probe clouds of their own family: built-ins, or those from the file."""
        return "builtin" if self.builtin else "extra"

    @property
    def mirrored_key(self) -> str:
        """The built-in cloud this one behaves like (itself for a built-in)."""
        return self.mirrors or self.key

    def authority(self, tenant: str) -> str:
        """Tenant-specific authority URL; `tenant` comes from `parse_tenant_input` or is a GUID."""
        return f"{self.login_base}/{_segment(tenant)}"

    def graph_scope(self) -> str:
        """App-only scope for this cloud's Graph (client credentials need `/.default`)."""
        # https://learn.microsoft.com/entra/identity-platform/scopes-oidc#the-default-scope
        return f"{self.graph_resource}/.default"

    def exchange_scope(self) -> str:
        """App-only scope for this cloud's Exchange Online."""
        return f"{self.exchange_resource}/.default"

    def delegated_scope(self, name: str) -> str:
        """Fully qualified delegated scope (a short name would mean the global Graph)."""
        return f"{self.graph_resource}/{name}"

    def token_endpoint(self, tenant: str) -> str:
        """The v2 token endpoint for a tenant."""
        return f"{self.authority(tenant)}/oauth2/v2.0/token"

    def discovery_url(self, tenant: str) -> str:
        """OpenID discovery document of a tenant in this cloud."""
        # https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc
        return f"{self.authority(tenant)}/v2.0/.well-known/openid-configuration"

    def graph_url(self, path: str) -> str:
        """Absolute Graph v1.0 URL for a path such as `/organization`."""
        return f"{self.graph_base}/v1.0/{path.lstrip('/')}"

    def admin_consent_url(self, tenant: str, client_id: str, redirect_uri: str, state: str) -> str:
        """v2 admin-consent URL asking for every application permission on the registration."""
        # https://learn.microsoft.com/entra/identity-platform/v2-admin-consent : app permissions
        # need `{resource}/.default`; never use `common` here.
        query = urlencode(
            {
                "client_id": client_id,
                "scope": self.graph_scope(),
                "redirect_uri": redirect_uri,
                "state": state,
            }
        )
        return f"{self.authority(tenant)}/v2.0/adminconsent?{query}"

    def _blade(self, fragment: str) -> str:
        # The Azure portal routes by fragment from its root; a portal URL with its own path (the
        # simulator's admin page) keeps that path, so the link still opens a page that exists.
        if urlsplit(self.portal_url).path in ("", "/"):
            return f"{self.portal_url.rstrip('/')}/{fragment}"
        return f"{self.portal_url}{fragment}"

    def app_overview_url(self, client_id: str) -> str:
        """App registration → Overview in this cloud's Azure portal."""
        return self._blade(_APP_BLADE.format(blade="Overview", app_id=_segment(client_id)))

    def app_certificates_url(self, client_id: str) -> str:
        """App registration → Certificates & secrets."""
        return self._blade(_APP_BLADE.format(blade="Credentials", app_id=_segment(client_id)))

    def app_permissions_url(self, client_id: str) -> str:
        """App registration → API permissions (where admin consent is granted)."""
        return self._blade(_APP_BLADE.format(blade="CallAnAPI", app_id=_segment(client_id)))

    def roles_url(self) -> str:
        """Entra ID → Roles and administrators."""
        return self._blade(_ROLES_BLADE)

    def enterprise_app_url(self, client_id: str) -> str:
        """Enterprise application (service principal) → Overview."""
        return self._blade(_ENTERPRISE_BLADE.format(app_id=_segment(client_id)))

    def app_registrations_url(self) -> str:
        """App registrations list (where a new registration starts)."""
        return self._blade(_APP_LIST_BLADE)

    def link(self, kind: str | None, client_id: str | None = None) -> str | None:
        """Deep link by kind name (`overview`, `certificates`, `api_permissions`, `roles`, ...)."""
        if kind is None:
            return None
        if kind == "roles":
            return self.roles_url()
        if kind == "app_registrations":
            return self.app_registrations_url()
        if kind == "portal":
            return self.portal_url
        if not client_id:
            return self.app_registrations_url()
        builders = {
            "overview": self.app_overview_url,
            "certificates": self.app_certificates_url,
            "api_permissions": self.app_permissions_url,
            "enterprise_app": self.enterprise_app_url,
        }
        builder = builders.get(kind)
        return builder(client_id) if builder else self.portal_url


def _segment(value: str) -> str:
    # Values are validated upstream; quoting is a second fence so nothing can add a path or host.
    return quote(value, safe="")


BUILTIN_CLOUDS: tuple[Cloud, ...] = (
    Cloud(
        key="global",
        label="Microsoft Entra ID (global service)",
        short_label="Global",
        explanation='The worldwide commercial cloud (also US Government GCC "moderate").',
        login_base="https://login.microsoftonline.com",
        graph_base="https://graph.microsoft.com",
        graph_resource="https://graph.microsoft.com",
        exchange_resource="https://outlook.office365.com",
        portal_url="https://portal.azure.com",
        entra_url="https://entra.microsoft.com",
        builtin=True,
    ),
    Cloud(
        key="usgov-l4",
        label="Microsoft Graph for US Government L4",
        short_label="US Gov L4",
        explanation="US Government GCC High (Impact Level 4).",
        login_base="https://login.microsoftonline.us",
        graph_base="https://graph.microsoft.us",
        graph_resource="https://graph.microsoft.us",
        # Unverified by Microsoft docs (third-party tables only); see entra.md §11.
        exchange_resource="https://outlook.office365.us",
        portal_url="https://portal.azure.us",
        entra_url="https://entra.microsoft.us",
        # https://learn.microsoft.com/azure/azure-government/documentation-government-plan-identity
        region_scopes=("USG", "USGOV"),
        region_sub_scope="DODCON",
        builtin=True,
    ),
    Cloud(
        key="usgov-l5",
        label="Microsoft Graph for US Government L5 (DoD)",
        short_label="US Gov L5 (DoD)",
        explanation="US Department of Defense (Impact Level 5).",
        login_base="https://login.microsoftonline.us",
        graph_base="https://dod-graph.microsoft.us",
        graph_resource="https://dod-graph.microsoft.us",
        exchange_resource="https://outlook-dod.office365.us",
        portal_url="https://portal.azure.us",
        entra_url="https://entra.microsoft.us",
        region_scopes=("USG", "USGOV"),
        region_sub_scope="DOD",
        builtin=True,
    ),
    Cloud(
        key="china",
        label="Microsoft Entra China operated by 21Vianet",
        short_label="China (21Vianet)",
        explanation="The separate cloud in China run by a local partner.",
        # Own constant on purpose: msal 1.36 renamed AZURE_CHINA and has none for this host.
        login_base="https://login.partner.microsoftonline.cn",
        graph_base="https://microsoftgraph.chinacloudapi.cn",
        graph_resource="https://microsoftgraph.chinacloudapi.cn",
        exchange_resource="https://partner.outlook.cn",
        portal_url="https://portal.azure.cn",
        entra_url="https://entra.microsoft.cn",
        builtin=True,
    ),
)

_BUILTIN_KEYS = frozenset(c.key for c in BUILTIN_CLOUDS)
_KEY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_REQUIRED_FIELDS = (
    "key",
    "label",
    "login_base",
    "graph_base",
    "graph_resource",
    "exchange_resource",
    "portal_url",
)
_OPTIONAL_FIELDS = (
    "mirrors",
    "entra_url",
    "ca_bundle",
    "tenant_region_scope",
    "tenant_region_sub_scope",
    "explanation",
    "short_label",
    "simulator",
)


@dataclass(frozen=True)
class CloudTable:
    """The clouds the portal knows: the four built-ins plus any from `PORTAL_CLOUDS_FILE`."""

    clouds: tuple[Cloud, ...]

    def get(self, key: str) -> Cloud:
        """The cloud with this key; KeyError when unknown."""
        for cloud in self.clouds:
            if cloud.key == key:
                return cloud
        raise KeyError(f"unknown cloud {key!r}")

    def all(self) -> tuple[Cloud, ...]:
        """Every cloud, built-ins first."""
        return self.clouds

    def family_of(self, cloud: Cloud) -> tuple[Cloud, ...]:
        """Clouds of the same family (built-in or from the file), the given one included."""
        return tuple(c for c in self.clouds if c.family == cloud.family)

    def allowed_hosts(self) -> frozenset[Origin]:
        """(scheme, host, port) of every login and Graph base: the only places we ever call."""
        origins: set[Origin] = set()
        for cloud in self.clouds:
            origins.add(origin_of(cloud.login_base))
            origins.add(origin_of(cloud.graph_base))
        return frozenset(origins)

    def ca_bundle_for(self, origin: Origin) -> str | None:
        """The CA bundle configured for the cloud serving this origin, if any."""
        for cloud in self.clouds:
            if cloud.ca_bundle and origin in (
                origin_of(cloud.login_base),
                origin_of(cloud.graph_base),
            ):
                return cloud.ca_bundle
        return None


def _check_base(entry: str, name: str, value: Any, allow_path: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise CloudConfigError(f"cloud {entry}: {name} must be a non-empty string")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise CloudConfigError(f"cloud {entry}: {name} is not a valid URL ({exc})") from None
    if parts.scheme != "https":
        raise CloudConfigError(f"cloud {entry}: {name} must start with https:// (got {value!r})")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise CloudConfigError(f"cloud {entry}: {name} needs a host and no user info ({value!r})")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise CloudConfigError(f"cloud {entry}: {name} must not have a query or fragment")
    if not allow_path and parts.path not in ("", "/"):
        raise CloudConfigError(f"cloud {entry}: {name} must not have a path ({value!r})")
    if port == 0:
        raise CloudConfigError(f"cloud {entry}: {name} has an invalid port")
    return value.rstrip("/")


def _opt_str(entry: str, raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise CloudConfigError(f"cloud {entry}: {name} must be a non-empty string or null")
    return value


def _cloud_from_json(index: int, raw: Any, base_dir: str) -> Cloud:
    entry = f"#{index + 1}"
    if not isinstance(raw, dict):
        raise CloudConfigError(f"cloud {entry}: each entry must be a JSON object")
    key = raw.get("key")
    if isinstance(key, str):
        entry = f"#{index + 1} ({key!r})"
    unknown = set(raw) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS)
    if unknown:
        raise CloudConfigError(f"cloud {entry}: unknown field(s) {sorted(unknown)}")
    missing = [f for f in _REQUIRED_FIELDS if raw.get(f) in (None, "")]
    if missing:
        raise CloudConfigError(f"cloud {entry}: missing field(s) {missing}")
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise CloudConfigError(f"cloud {entry}: key must be lowercase letters, digits and '-'")
    if key in _BUILTIN_KEYS:
        raise CloudConfigError(f"cloud {entry}: key {key!r} is a built-in cloud")
    label = raw["label"]
    if not isinstance(label, str):
        raise CloudConfigError(f"cloud {entry}: label must be a string")
    mirrors = _opt_str(entry, raw, "mirrors")
    if mirrors is not None and mirrors not in _BUILTIN_KEYS:
        raise CloudConfigError(f"cloud {entry}: mirrors must be one of {sorted(_BUILTIN_KEYS)}")
    portal_url = _check_base(entry, "portal_url", raw["portal_url"], allow_path=True)
    entra_raw = raw.get("entra_url")
    entra_url = (
        _check_base(entry, "entra_url", entra_raw, allow_path=True) if entra_raw else portal_url
    )
    ca_bundle = _opt_str(entry, raw, "ca_bundle")
    if ca_bundle is not None:
        ca_bundle = os.path.join(base_dir, ca_bundle)
        if not os.path.isfile(ca_bundle):
            raise CloudConfigError(f"cloud {entry}: ca_bundle {ca_bundle!r} is not a file")
    scope = _opt_str(entry, raw, "tenant_region_scope")
    sub_scope = _opt_str(entry, raw, "tenant_region_sub_scope")
    simulator = raw.get("simulator", False)
    if not isinstance(simulator, bool):
        raise CloudConfigError(f"cloud {entry}: simulator must be true or false")
    explanation = _opt_str(entry, raw, "explanation")
    if explanation is None:
        mirrored = next((c for c in BUILTIN_CLOUDS if c.key == mirrors), None)
        explanation = f"Stands in for: {mirrored.label}." if mirrored else "An extra cloud."
    return Cloud(
        key=key,
        label=label,
        short_label=_opt_str(entry, raw, "short_label") or "",
        explanation=explanation,
        login_base=_check_base(entry, "login_base", raw["login_base"]),
        graph_base=_check_base(entry, "graph_base", raw["graph_base"]),
        graph_resource=_check_base(entry, "graph_resource", raw["graph_resource"]),
        exchange_resource=_check_base(entry, "exchange_resource", raw["exchange_resource"]),
        portal_url=portal_url,
        entra_url=entra_url,
        region_scopes=(scope.upper(),) if scope else (),
        region_sub_scope=sub_scope.upper() if sub_scope else None,
        ca_bundle=ca_bundle,
        mirrors=mirrors,
        builtin=False,
        simulator=simulator,
    )


def parse_cloud_entries(entries: Any, base_dir: str = ".") -> tuple[Cloud, ...]:
    """Validate the decoded JSON of an extra-clouds file and build its clouds."""
    if not isinstance(entries, list):
        raise CloudConfigError("the clouds file must hold a JSON list of cloud objects")
    clouds = tuple(_cloud_from_json(i, raw, base_dir) for i, raw in enumerate(entries))
    seen: set[str] = set()
    for cloud in clouds:
        if cloud.key in seen:
            raise CloudConfigError(f"cloud key {cloud.key!r} appears twice")
        seen.add(cloud.key)
    return clouds


def load_cloud_table(extra_file: str | None = None) -> CloudTable:
    """Built-in clouds plus those of `extra_file` (the `PORTAL_CLOUDS_FILE` format)."""
    if not extra_file:
        return CloudTable(BUILTIN_CLOUDS)
    try:
        with open(extra_file, encoding="utf-8") as fh:
            entries = json.load(fh)
    except OSError as exc:
        raise CloudConfigError(f"cannot read clouds file {extra_file!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CloudConfigError(f"clouds file {extra_file!r} is not valid JSON: {exc}") from None
    base_dir = os.path.dirname(os.path.abspath(extra_file))
    return CloudTable(BUILTIN_CLOUDS + parse_cloud_entries(entries, base_dir))


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
