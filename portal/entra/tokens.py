"""What a token request gave: a token with its (unverified) claims, or a problem."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import jwt

from .errors import classify
from .problems import EntraProblem, problem

__all__ = ["TokenResult", "decode_claims"]


def decode_claims(token: str | None) -> dict[str, Any]:
    """Claims of an access token read WITHOUT verification: a diagnostic hint, not authorization."""
    # https://learn.microsoft.com/entra/identity-platform/access-tokens : tokens for APIs we
    # don't own may change format; Graph reads stay the authority, claims only explain.
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
    id_token_claims: dict[str, Any] = field(default_factory=dict, compare=False)
    granted_scopes: tuple[str, ...] = ()

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
            return cls(
                False,
                problem=problem(
                    "customer_action",
                    "Sign in again",
                    "We have no stored sign-in for this connection any more.",
                    "Sign in again to reconnect.",
                ),
            )
        if isinstance(result, dict) and result.get("access_token"):
            source = result.get("token_source")
            id_claims = result.get("id_token_claims")
            scope = result.get("scope")
            return cls(
                True,
                access_token=result["access_token"],
                claims=decode_claims(result["access_token"]),
                source=source if source in ("cache", "identity_provider") else None,
                expires_in=result.get("expires_in"),
                id_token_claims=id_claims if isinstance(id_claims, dict) else {},
                granted_scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            )
        return cls(False, problem=classify(result if isinstance(result, dict) else {}))

    def with_retry_after(self, seconds: float | None) -> TokenResult:
        """A failure carrying the Retry-After Microsoft answered with (MSAL drops headers)."""
        if self.ok or self.problem is None or seconds is None:
            return self
        return replace(self, problem=self.problem.with_retry_after(seconds))

    @classmethod
    def failed(cls, exc: BaseException) -> TokenResult:
        """Build from an exception MSAL or requests raised."""
        return cls(False, problem=classify(exc))
