"""The portal's own ID-token check for the delegated sign-in (MSAL 1.39 validates only the nonce).

https://learn.microsoft.com/entra/identity-platform/id-tokens#validate-tokens and
https://learn.microsoft.com/entra/identity-platform/claims-validation : a multi-tenant app checks
the signature with the tenant's published keys (by ``kid``), ``aud`` == its client id, ``iss`` ==
``https://<login host>/{tid}/v2.0`` for the token's own ``tid`` (and that ``tid`` is the tenant
being connected, when known), ``exp``/``nbf`` with a small leeway, and the ``nonce`` it sent in the
authorize request (RFC 9700 section 2.1.1; OpenID Connect Core 3.1.3.7). ``alg`` is pinned to
RS256. Failures are values (:class:`IdTokenCheck`), never exceptions. No Flask import.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests

from .clouds import Cloud

__all__ = [
    "IdTokenCheck",
    "JwksCache",
    "expected_nonce",
    "jwks_url",
    "validate",
]

ALGORITHM = "RS256"
LEEWAY_SECONDS = 120.0
_GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_REQUIRED = ("aud", "iss", "exp", "iat", "tid", "oid", "nonce")


@dataclass(frozen=True)
class IdTokenCheck:
    """Outcome: ``claims`` when ``ok``; otherwise ``reason`` (a short machine word for logs)."""

    ok: bool
    claims: dict[str, Any] = field(default_factory=dict, repr=False)
    reason: str | None = None

    @property
    def tenant_id(self) -> str | None:
        return self.claims.get("tid") if self.ok else None

    @property
    def object_id(self) -> str | None:
        return self.claims.get("oid") if self.ok else None

    @property
    def name(self) -> str | None:
        value = self.claims.get("name") if self.ok else None
        return value if isinstance(value, str) else None


def _fail(reason: str) -> IdTokenCheck:
    return IdTokenCheck(False, reason=reason)


def expected_nonce(raw_nonce: str) -> str:
    """What MSAL puts in the authorize request for the flow's nonce (its SHA-256, hex)."""
    # msal/oauth2cli/oidc.py _nonce_hash: the flow keeps the raw value, the request carries this.
    return hashlib.sha256(raw_nonce.encode("ascii")).hexdigest()


def jwks_url(cloud: Cloud, tenant_id: str) -> str:
    """The tenant's signing keys (the ``jwks_uri`` of its v2.0 OpenID document)."""
    return f"{cloud.authority(tenant_id)}/discovery/v2.0/keys"


class JwksCache:
    """Signing keys per JWKS URL, kept ``ttl`` seconds; an unknown ``kid`` refetches at most once
    per ``min_refetch`` seconds (Microsoft rolls keys; an attacker's random kid must not make us
    hammer the endpoint)."""

    def __init__(self, ttl: float = 3600.0, min_refetch: float = 60.0, size: int = 256) -> None:
        self.ttl = ttl
        self.min_refetch = min_refetch
        self.size = size
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def key(
        self,
        url: str,
        kid: str,
        session: requests.Session,
        clock: Callable[[], float] = time.monotonic,
    ) -> Any | None:
        """The public key for ``kid`` at ``url`` (fetching when needed), or None if unknown."""
        now = clock()
        with self._lock:
            entry = self._entries.get(url)
        if entry is not None:
            fetched_at, keys = entry
            fresh = now - fetched_at < self.ttl
            if kid in keys and fresh:
                return keys[kid]
            if fresh and now - fetched_at < self.min_refetch:
                return None
        keys = self._fetch(url, session)
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[url] = (now, keys)
        return keys.get(kid)

    @staticmethod
    def _fetch(url: str, session: requests.Session) -> dict[str, Any]:
        response = session.get(url)
        response.raise_for_status()
        found: dict[str, Any] = {}
        for jwk in response.json().get("keys", []):
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not jwk.get("kid"):
                continue
            if jwk.get("use", "sig") != "sig":
                continue
            try:
                found[str(jwk["kid"])] = jwt.PyJWK.from_dict(jwk, algorithm=ALGORITHM).key
            except (jwt.PyJWTError, ValueError, KeyError, TypeError):
                continue
        return found


def validate(
    id_token: str | None,
    *,
    cloud: Cloud,
    client_id: str,
    nonce: str,
    session: requests.Session,
    expected_tenant: str | None = None,
    now: float | None = None,
    leeway: float = LEEWAY_SECONDS,
    cache: JwksCache | None = None,
) -> IdTokenCheck:
    """Check ``id_token`` completely; ``nonce`` is the value sent in the authorize request."""
    # Without the caller's cache (the app owns one: portal.services.caches) nothing is kept.
    cache = cache if cache is not None else JwksCache()
    try:
        tid, kid = _unverified_tenant_and_key_id(id_token, expected_tenant)
        try:
            key = cache.key(jwks_url(cloud, tid), kid, session)
        except (requests.RequestException, ValueError) as exc:
            raise _Invalid(f"jwks_unavailable:{type(exc).__name__}") from None
        if key is None:
            raise _Invalid("unknown_kid")
        assert id_token is not None  # checked by _unverified_tenant_and_key_id
        claims = _verified_claims(id_token, key, cloud, client_id, tid, leeway)
        _check_claims(claims, tid, nonce, time.time() if now is None else now, leeway)
    except _Invalid as invalid:
        return _fail(invalid.reason)
    return IdTokenCheck(True, claims=claims)


class _Invalid(Exception):
    """One reason the token is refused (a short code, logged; never the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _unverified_tenant_and_key_id(
    id_token: str | None, expected_tenant: str | None
) -> tuple[str, str]:
    """The header's key id and the tenant claim, read before the signature is checked: they
    choose the key (the tenant's own JWKS) and must be well-formed to do so."""
    if not id_token or not isinstance(id_token, str):
        raise _Invalid("missing")
    try:
        header = jwt.get_unverified_header(id_token)
        unverified = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _Invalid("malformed") from None
    if header.get("alg") != ALGORITHM:
        raise _Invalid("alg")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _Invalid("kid")
    tid = unverified.get("tid")
    if not isinstance(tid, str) or not _GUID_RE.match(tid):
        raise _Invalid("tid")
    if expected_tenant is not None and tid != expected_tenant.lower():
        raise _Invalid("tenant")
    return tid, kid


def _verified_claims(
    id_token: str, key: Any, cloud: Cloud, client_id: str, tid: str, leeway: float
) -> dict[str, Any]:
    """The claims, once signature, audience, issuer and the required claims are proven."""
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key,
            algorithms=[ALGORITHM],
            audience=client_id,
            issuer=f"{cloud.login_base}/{tid}/v2.0",
            leeway=leeway,
            options={
                "require": list(_REQUIRED),
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise _Invalid("signature") from None
    except jwt.InvalidAudienceError:
        raise _Invalid("aud") from None
    except jwt.InvalidIssuerError:
        raise _Invalid("iss") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _Invalid(f"missing_claim:{exc.claim}") from None
    except jwt.PyJWTError:
        raise _Invalid("invalid") from None
    return claims


def _check_claims(
    claims: dict[str, Any], tid: str, nonce: str, moment: float, leeway: float
) -> None:
    """Time (against our own clock, injectable for tests, with the same leeway), tenant, nonce
    and the user's object id."""
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or exp + leeway < moment:
        raise _Invalid("expired")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf - leeway > moment):
        raise _Invalid("not_yet_valid")
    if claims.get("tid") != tid:
        raise _Invalid("tid")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
        raise _Invalid("nonce")
    if not isinstance(claims.get("oid"), str):
        raise _Invalid("oid")
