"""The cloud table: the built-in clouds plus those of the extra-clouds file, validated.

The cloud itself is `cloud.py`, the built-in clouds' data `national_clouds.py` and the guarded
session for outbound calls `outbound.py`; their names are importable from here too, since this
is where callers look for everything about clouds.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from .cloud import Cloud
from .national_clouds import BUILTIN_CLOUDS
from .outbound import (
    DEFAULT_TIMEOUT,
    GuardedSession,
    HostNotAllowedError,
    Origin,
    http_session,
    origin_of,
)
from .retry import DEFAULT_POLICY, RetryPolicy

__all__ = [
    "BUILTIN_CLOUDS",
    "DEFAULT_TIMEOUT",
    "Cloud",
    "CloudConfigError",
    "CloudTable",
    "GuardedSession",
    "HostNotAllowedError",
    "Origin",
    "http_session",
    "load_cloud_table",
    "origin_of",
    "parse_cloud_entries",
]


class CloudConfigError(ValueError):
    """The extra-clouds file is malformed; the message says which entry and field."""


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
    #: How calls to these clouds are retried (every `http_session` of the table uses it; the
    #: app sets it from its configuration).
    retry: RetryPolicy = field(default=DEFAULT_POLICY, compare=False)

    def with_retry(self, policy: RetryPolicy) -> CloudTable:
        """The same clouds with another retry policy."""
        return replace(self, retry=policy)

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
