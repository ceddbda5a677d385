"""One MSAL confidential client per connection, built lazily, with errors turned into values.

MSAL Python: https://learn.microsoft.com/entra/msal/python/ ; certificate credentials with
`public_certificate` make MSAL ≥1.35 sign PS256 with `x5t#S256`
(https://learn.microsoft.com/entra/identity-platform/certificate-credentials).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
import msal
import requests
from cryptography.hazmat.primitives import serialization
from msal.exceptions import MsalServiceError

from .clouds import DEFAULT_TIMEOUT, Cloud
from .errors import EntraProblem, classify, problem

__all__ = [
    "CertificateCredential",
    "Credential",
    "EntraClient",
    "SecretCredential",
    "TokenResult",
    "decode_claims",
]


@dataclass(frozen=True)
class CertificateCredential:
    """A private key (PKCS#8 PEM, from the vault) and its certificate (PEM)."""

    private_key_pem: bytes | str = field(repr=False)
    cert_pem: bytes | str

    def to_msal(self) -> dict[str, Any]:
        """MSAL's credential dict; no thumbprint, so MSAL uses SHA-256 / PS256 and sends x5c."""
        return {
            "private_key": _loaded_key(self.private_key_pem),
            "public_certificate": _text(self.cert_pem),
        }


@dataclass(frozen=True)
class SecretCredential:
    """A client secret (its Value, never its ID)."""

    secret: str = field(repr=False)

    def to_msal(self) -> str:
        """MSAL takes a secret as a plain string."""
        return self.secret


Credential = CertificateCredential | SecretCredential


def _text(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


_KEY_CACHE: OrderedDict[bytes, Any] = OrderedDict()
_KEY_CACHE_LOCK = threading.Lock()
_KEY_CACHE_SIZE = 256


def _loaded_key(pem: bytes | str) -> Any:
    """The private key as a loaded object, parsed and validated once per process.

    Loading a PEM runs RSA key validation (~170 ms for 3072 bits); given a PEM string, PyJWT
    would redo that for every client assertion. MSAL hands an unencrypted `private_key` to PyJWT
    as is, and PyJWT signs with a key object directly, so a loaded key is passed instead. The
    cache is keyed by the PEM's SHA-256, never by the PEM, and bounded. If the PEM can't be
    loaded here, MSAL gets the text and reports the problem itself.
    """
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    digest = hashlib.sha256(data).digest()
    with _KEY_CACHE_LOCK:
        key = _KEY_CACHE.get(digest)
        if key is not None:
            _KEY_CACHE.move_to_end(digest)
            return key
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return _text(pem)
    with _KEY_CACHE_LOCK:
        _KEY_CACHE[digest] = key
        while len(_KEY_CACHE) > _KEY_CACHE_SIZE:
            _KEY_CACHE.popitem(last=False)
    return key


def decode_claims(token: str | None) -> dict[str, Any]:
    """Claims of an access token read WITHOUT verification: a diagnostic hint, never authorization."""
    # https://learn.microsoft.com/entra/identity-platform/access-tokens : tokens for APIs we don't own
    # may change format; Graph reads stay the authority, claims only explain.
    if not token:
        return {}
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


@dataclass(frozen=True)
class TokenResult:
    """Outcome of a token request: a token with its claims, or a problem."""

    ok: bool
    access_token: str | None = field(default=None, repr=False)
    claims: dict[str, Any] = field(default_factory=dict, compare=False)
    source: Literal["cache", "identity_provider"] | None = None
    expires_in: int | None = None
    problem: EntraProblem | None = None

    @property
    def roles(self) -> frozenset[str] | None:
        """App permissions in the token; an absent `roles` claim means none were granted."""
        if not self.ok or not self.claims:
            return None
        roles = self.claims.get("roles") or []
        return frozenset(r for r in roles if isinstance(r, str))

    @property
    def scopes(self) -> frozenset[str] | None:
        """Delegated scopes from `scp` (space-separated)."""
        if not self.ok or not self.claims:
            return None
        scp = self.claims.get("scp")
        return frozenset(scp.split()) if isinstance(scp, str) else frozenset()

    @property
    def wids(self) -> frozenset[str] | None:
        """Directory role template IDs if the token carries them (not documented for app tokens)."""
        wids = self.claims.get("wids") if self.ok else None
        return frozenset(w for w in wids if isinstance(w, str)) if isinstance(wids, list) else None

    @classmethod
    def from_msal(cls, result: Any) -> TokenResult:
        """Build from what MSAL returned: a token dict, an error dict, or None (nothing cached)."""
        if result is None:
            return cls(False, problem=problem(
                "customer_action", "Sign in again",
                "We have no stored sign-in for this connection any more.",
                "Sign in again to reconnect.",
            ))
        if isinstance(result, dict) and result.get("access_token"):
            source = result.get("token_source")
            return cls(
                True,
                access_token=result["access_token"],
                claims=decode_claims(result["access_token"]),
                source=source if source in ("cache", "identity_provider") else None,
                expires_in=result.get("expires_in"),
            )
        return cls(False, problem=classify(result if isinstance(result, dict) else {}))

    @classmethod
    def failed(cls, exc: BaseException) -> TokenResult:
        """Build from an exception MSAL or requests raised."""
        return cls(False, problem=classify(exc))


class EntraClient:
    """MSAL confidential client for one connection: its cloud, tenant, app, credential and cache."""

    def __init__(
        self,
        cloud: Cloud,
        tenant_id: str,
        client_id: str,
        credential: Credential,
        *,
        session: requests.Session,
        token_cache_text: str | None = None,
        http_cache: MutableMapping[str, Any] | None = None,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.cloud = cloud
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._credential = credential
        self._session = session
        self._http_cache = http_cache
        self._timeout = timeout
        self._cache = msal.SerializableTokenCache()
        if token_cache_text:
            try:
                self._cache.deserialize(token_cache_text)
            except ValueError:
                # A damaged cache only costs one token request; never fail a check for it.
                self._cache = msal.SerializableTokenCache()
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _build(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                # The constructor fetches the tenant's OpenID document: build lazily, never at
                # import. instance_discovery=False keeps MSAL off login.microsoftonline.com for
                # national clouds and the simulator (harness notes; msal authority.py).
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._credential.to_msal(),
                    authority=self.cloud.authority(self.tenant_id),
                    token_cache=self._cache,
                    http_client=self._session,
                    http_cache=self._http_cache,
                    instance_discovery=False,
                    timeout=self._timeout,
                )
            return self._app

    def _call(self, fn_name: str, *args: Any, **kwargs: Any) -> TokenResult:
        try:
            app = self._build()
            result = getattr(app, fn_name)(*args, **kwargs)
        except (MsalServiceError, requests.RequestException, ValueError, RuntimeError) as exc:
            return TokenResult.failed(exc)
        return TokenResult.from_msal(result)

    def acquire_app_token(self, scope: str) -> TokenResult:
        """App-only token for `{resource}/.default` (from the cache while it is valid)."""
        # https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
        return self._call("acquire_token_for_client", [scope])

    def accounts(self) -> list[dict[str, Any]]:
        """Signed-in accounts held in the cache (delegated connections)."""
        try:
            return list(self._build().get_accounts())
        except (MsalServiceError, requests.RequestException, ValueError, RuntimeError):
            return []

    def acquire_delegated_silent(
        self, scopes: Sequence[str], account: dict[str, Any] | None = None
    ) -> TokenResult:
        """Delegated token from the cache or through the cached refresh token; never interactive."""
        if account is None:
            accounts = self.accounts()
            if not accounts:
                return TokenResult.from_msal(None)
            account = accounts[0]
        # The *_with_error variant keeps the refresh error (e.g. AADSTS700082) instead of None.
        return self._call("acquire_token_silent_with_error", list(scopes), account)

    def remove_tokens_for_client(self) -> None:
        """Forget cached app-only tokens so the next request sees fresh consent (msal ≥1.27)."""
        # Same query as msal's own remove_tokens_for_client(), done on the cache directly so that
        # no network call (MSAL's tenant discovery) is needed just to forget tokens.
        found = self._cache.search(
            msal.TokenCache.CredentialType.ACCESS_TOKEN,
            query={"client_id": self.client_id, "home_account_id": None},
        )
        for at in list(found):
            self._cache.remove_at(at)

    def has_refresh_token(self) -> bool:
        """True when the cache holds a refresh token for this client."""
        found = self._cache.search(
            msal.TokenCache.CredentialType.REFRESH_TOKEN, query={"client_id": self.client_id}
        )
        return any(True for _ in found)

    def cache_text(self) -> str:
        """The whole token cache as text (for the vault)."""
        return self._cache.serialize()

    def cache_text_if_changed(self) -> str | None:
        """The token cache text when it changed since load, else None (save only then)."""
        return self._cache.serialize() if self._cache.has_state_changed else None
