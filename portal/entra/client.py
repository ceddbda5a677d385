"""One MSAL confidential client per connection, built lazily, with errors turned into values.

MSAL Python: https://learn.microsoft.com/entra/msal/python/ . The credentials it signs with are
`credentials.py`, the token results it returns `tokens.py`; both are importable from here.
"""

from __future__ import annotations

import threading
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msal
import requests
from msal.exceptions import MsalServiceError

from .cloud import Cloud
from .credentials import (
    CertificateCredential,
    Credential,
    CredentialFileError,
    SecretCredential,
)
from .errors import classify
from .outbound import DEFAULT_TIMEOUT
from .problems import EntraProblem, problem
from .retry import Tracker, track
from .tokens import TokenResult, decode_claims

__all__ = [
    "DELEGATED_SCOPE_NAMES",
    "AuthFlow",
    "CertificateCredential",
    "Credential",
    "CredentialFileError",
    "EntraClient",
    "SecretCredential",
    "StoredSignIn",
    "TokenResult",
    "decode_claims",
    "read_stored_sign_in",
]


# Short names: in a national cloud they map to that cloud's Graph, and the token endpoint answers
# with short names too, so MSAL's cache matches them on the next silent call
# (https://learn.microsoft.com/entra/identity-platform/scopes-oidc).
DELEGATED_SCOPE_NAMES: tuple[str, ...] = (
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.AccessAsUser.All",
)


@dataclass(frozen=True)
class StoredSignIn:
    """What a serialized MSAL token cache holds for one account, read locally (no network)."""

    account: dict[str, Any] | None
    refresh_token_client_ids: tuple[str, ...] = ()


def read_stored_sign_in(cache_text: str, home_account_id: str | None = None) -> StoredSignIn:
    """The account (the one with ``home_account_id``, else the first) of a serialized MSAL
    token cache and the client ids its refresh tokens were issued to. Raises ValueError when the
    text is not a token cache."""
    cache = msal.SerializableTokenCache()
    cache.deserialize(cache_text)
    query = {"home_account_id": home_account_id} if home_account_id else {}
    accounts = list(cache.search(msal.TokenCache.CredentialType.ACCOUNT, query=query))
    if not accounts:
        return StoredSignIn(None)
    account = accounts[0]
    refresh_tokens = cache.search(
        msal.TokenCache.CredentialType.REFRESH_TOKEN,
        query={"home_account_id": account["home_account_id"]},
    )
    return StoredSignIn(account, tuple(str(rt.get("client_id")) for rt in refresh_tokens))


@dataclass(frozen=True)
class AuthFlow:
    """A started sign-in: MSAL's flow dict (state, PKCE verifier, nonce) and the authorize URL."""

    ok: bool
    flow: dict[str, Any] = field(default_factory=dict, repr=False)
    auth_uri: str | None = None
    problem: EntraProblem | None = None

    @property
    def state(self) -> str | None:
        """The flow's state value (the key to store the flow under)."""
        value = self.flow.get("state")
        return value if isinstance(value, str) else None


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
        # MSAL hands back the body, never the headers: the tracker keeps the Retry-After.
        with track() as calls:
            try:
                app = self._build()
                result = getattr(app, fn_name)(*args, **kwargs)
            except (MsalServiceError, requests.RequestException, ValueError, RuntimeError) as exc:
                return TokenResult.failed(exc).with_retry_after(calls.retry_after())
        return TokenResult.from_msal(result).with_retry_after(calls.retry_after())

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
        self,
        scopes: Sequence[str],
        account: dict[str, Any] | None = None,
        *,
        force_refresh: bool = False,
    ) -> TokenResult:
        """Delegated token from the cache or through the cached refresh token; never interactive.

        `force_refresh` skips cached access tokens and redeems the refresh token (keep-alive,
        re-check after consent). Scopes are short names or `{graph_resource}/.default`.
        """
        if account is None:
            accounts = self.accounts()
            if not accounts:
                return TokenResult.from_msal(None)
            account = accounts[0]
        # The *_with_error variant keeps the refresh error (e.g. AADSTS700082) instead of None.
        kwargs: dict[str, Any] = {"force_refresh": True} if force_refresh else {}
        return self._call("acquire_token_silent_with_error", list(scopes), account, **kwargs)

    def initiate_auth_code_flow(
        self,
        redirect_uri: str,
        scopes: Sequence[str] = DELEGATED_SCOPE_NAMES,
        *,
        state: str | None = None,
        prompt: str | None = None,
        login_hint: str | None = None,
        domain_hint: str | None = None,
    ) -> AuthFlow:
        """Start a sign-in: MSAL's flow (keep all of it server-side) and the URL for the user.

        PKCE S256, nonce and state come from MSAL; response_mode is form_post as MSAL recommends
        (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
        Reserved scopes (openid, profile, offline_access) are added by MSAL; don't pass them.
        """
        try:
            flow = self._build().initiate_auth_code_flow(
                list(scopes),
                redirect_uri=redirect_uri,
                state=state,
                prompt=prompt,
                login_hint=login_hint,
                domain_hint=domain_hint,
                response_mode="form_post",
            )
        except (MsalServiceError, requests.RequestException, ValueError, RuntimeError) as exc:
            return AuthFlow(False, problem=classify(exc))
        return AuthFlow(True, flow=flow, auth_uri=flow["auth_uri"])

    def complete_auth_code_flow(
        self, flow: dict[str, Any], auth_response: dict[str, Any]
    ) -> TokenResult:
        """Redeem the code from the callback; a state mismatch or error comes back as a problem."""
        calls = Tracker()
        try:
            with track() as calls:
                result = self._build().acquire_token_by_auth_code_flow(flow, dict(auth_response))
        except ValueError:
            # MSAL raises ValueError for a state mismatch: a stale or forged callback.
            return TokenResult(
                False,
                problem=problem(
                    "wrong_input",
                    "Sign-in expired",
                    "This sign-in response doesn't match a sign-in we started (it may be old).",
                    "Start the sign-in again.",
                    error="state_mismatch",
                ),
            )
        except (MsalServiceError, requests.RequestException, RuntimeError) as exc:
            return TokenResult.failed(exc).with_retry_after(calls.retry_after())
        return TokenResult.from_msal(result).with_retry_after(calls.retry_after())

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
        """The token cache text if it changed since load or the last call, else None (save then)."""
        return self._cache.serialize() if self._cache.has_state_changed else None
