"""The service provider application (our multi-tenant app) as the operator configured it: one
reader with one set of rules, for Link Account and for the refresh-token keep-alive.

``SP_CLIENT_ID`` (a GUID, lower-cased), the credential (``SP_CERT_FILE``, preferred, or
``SP_CLIENT_SECRET``), ``PUBLIC_URL`` (the redirect URI's base), ``SP_CLOUDS`` and
``SP_EXTRA_SCOPES``. Problems are operator-facing sentences that name the setting, never its
a secret's value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portal.config import parse_list
from portal.connections.delegated_link import RESERVED_SCOPES
from portal.entra.client import CertificateCredential, CredentialFileError, SecretCredential
from portal.entra.permissions import DELEGATED_SCOPES

CALLBACK_PATH = "/oauth/callback"
#: Delegated scopes the product needs (MSAL adds openid, profile and offline_access itself).
PRODUCT_SCOPES: tuple[str, ...] = tuple(
    r.name for r in DELEGATED_SCOPES if r.name != "offline_access"
)
_SCOPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.\-_]{0,99}$")
_PUBLIC_URL_RE = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~\-/]*)?$")
_GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class SpSettings:
    """The service provider application as the operator configured it; ``problems`` are
    operator-facing sentences (empty when everything needed is there)."""

    client_id: str | None
    credential: CertificateCredential | SecretCredential | None = field(repr=False)
    redirect_uri: str | None
    clouds: tuple[str, ...]
    required_scopes: tuple[str, ...]
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def app(self) -> tuple[str, CertificateCredential | SecretCredential, str]:
        """Client id, credential and redirect URI of settings the caller found ``ok``."""
        if self.client_id is None or self.credential is None or self.redirect_uri is None:
            raise RuntimeError("service provider settings used while not configured")
        return self.client_id, self.credential, self.redirect_uri


def required_scopes(config) -> tuple[str, ...]:
    """The product's delegated scopes plus ``SP_EXTRA_SCOPES`` (order kept, no duplicates)."""
    seen: dict[str, str] = {}
    for name in (*PRODUCT_SCOPES, *parse_list(config.get("SP_EXTRA_SCOPES"))):
        if name.lower() not in RESERVED_SCOPES and name.lower() not in seen:
            seen[name.lower()] = name
    return tuple(seen.values())


def redirect_uri_from(public_url: str) -> str:
    """``PUBLIC_URL`` + the callback path: a configured constant, never from request headers."""
    return public_url.rstrip("/") + CALLBACK_PATH


def _read_certificate(path: str) -> tuple[CertificateCredential | None, str | None]:
    try:
        return CertificateCredential.from_pem_file(path), None
    except CredentialFileError as exc:
        return None, f"SP_CERT_FILE {exc}"


def read_settings(
    config: Mapping[str, Any], instance_path: str, cert_cache: dict | None = None
) -> SpSettings:
    """Read and check the operator settings; ``cert_cache`` (the app's) keeps the parsed
    certificate file until the file changes."""
    client_id, client_id_problem = _read_client_id(config)
    credential, credential_problem = _read_credential(config, instance_path, cert_cache)
    redirect_uri, public_url_problem = _read_redirect_uri(config)
    problems = [
        p for p in (client_id_problem, credential_problem, public_url_problem) if p is not None
    ]
    clouds = tuple(parse_list(config.get("SP_CLOUDS")))
    if not clouds:
        problems.append("SP_CLOUDS is empty: list the clouds where the app is registered.")
    scopes = required_scopes(config)
    bad = [s for s in scopes if not _SCOPE_RE.match(s)]
    if bad:
        problems.append(f"SP_EXTRA_SCOPES has values that are not scope names: {bad}.")
    return SpSettings(client_id, credential, redirect_uri, clouds, scopes, tuple(problems))


def _read_client_id(config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``SP_CLIENT_ID`` and its problem: lower-cased when it is a GUID, as typed (with the
    problem) when it is not, None (with the problem) when it is unset."""
    client_id = (config.get("SP_CLIENT_ID") or "").strip() or None
    if client_id is None:
        return None, (
            "SP_CLIENT_ID is not set: the Application (client) ID of our "
            "multi-tenant app registration (PORTAL_SP_CLIENT_ID)."
        )
    if not _GUID_RE.match(client_id.lower()):
        return client_id, (
            f"SP_CLIENT_ID {client_id!r} is not an Application (client) ID "
            "(a GUID such as 00000000-0000-0000-0000-000000000000)."
        )
    return client_id.lower(), None


def _read_credential(
    config: Mapping[str, Any], instance_path: str, cert_cache: dict | None
) -> tuple[CertificateCredential | SecretCredential | None, str | None]:
    """The app's credential: ``SP_CERT_FILE`` (preferred) or ``SP_CLIENT_SECRET``."""
    cert_file = config.get("SP_CERT_FILE")
    if cert_file:
        path = cert_file if os.path.isabs(cert_file) else os.path.join(instance_path, cert_file)
        return _cached_certificate(path, cert_cache if cert_cache is not None else {})
    if config.get("SP_CLIENT_SECRET"):
        return SecretCredential(str(config["SP_CLIENT_SECRET"])), None
    return None, (
        "No credential for the app: set SP_CERT_FILE (PEM with the private key "
        "and the certificate, preferred) or SP_CLIENT_SECRET."
    )


def _cached_certificate(path: str, cache: dict) -> tuple[CertificateCredential | None, str | None]:
    """The certificate file parsed once per (path, modification time): a replaced file is read
    again without a restart."""
    mtime: int | None
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        mtime = None
    stamp = (path, mtime)
    if stamp not in cache:
        cache.clear()
        cache[stamp] = _read_certificate(path)
    return cache[stamp]


def _read_redirect_uri(config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The redirect URI built from ``PUBLIC_URL``, or the problem with that setting."""
    public_url = str(config.get("PUBLIC_URL") or "")
    if not _PUBLIC_URL_RE.match(public_url):
        return None, (
            f"PUBLIC_URL {public_url!r} must be the portal's absolute base URL, "
            "such as https://portal.example.com."
        )
    if config.get("ENV") == "production" and not public_url.startswith("https://"):
        return None, "PUBLIC_URL must use https:// in production."
    return redirect_uri_from(public_url), None


#: The settings the keep-alive needs (it redirects nobody and reads the cloud of each connection).
APP_SETTINGS = ("SP_CLIENT_ID", "SP_CERT_FILE", "SP_CLIENT_SECRET", "No credential")


def app_problems(settings: SpSettings) -> list[str]:
    """The problems about our app itself: its client id and its credential."""
    return [p for p in settings.problems if p.startswith(APP_SETTINGS)]
