"""A failure as a value (`EntraProblem`), the support codes it carries, and `Guidance`, the
category and plain words of one row of the error tables (`aadsts.py`, `oauth_errors.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .cloud import Cloud

__all__ = ["Category", "EntraProblem", "Guidance", "SupportCodes", "problem"]

Category = Literal["customer_action", "wrong_input", "transient", "our_configuration", "unknown"]


@dataclass(frozen=True)
class SupportCodes:
    """Raw identifiers support staff need to look a failure up with Microsoft (no secrets)."""

    error_codes: tuple[int, ...] = ()
    trace_id: str | None = None
    correlation_id: str | None = None
    timestamp: str | None = None
    http_status: int | None = None
    #: Seconds Microsoft asked us to wait (Retry-After) when it refused for now.
    retry_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for storing in a report."""
        return {
            "error_codes": list(self.error_codes),
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
            "timestamp": self.timestamp,
            "http_status": self.http_status,
            "retry_after": self.retry_after,
        }


@dataclass(frozen=True)
class EntraProblem:
    """A failure as a value: who must act, what happened, what to do and where."""

    category: Category
    code: int | None
    error: str | None
    title: str
    message: str
    fix: str
    link: str | None = None
    raw: SupportCodes = field(default_factory=SupportCodes)
    #: The user (or admin) said no on Microsoft's consent page: nothing is broken.
    declined: bool = False

    def fix_url(self, cloud: Cloud, client_id: str | None = None) -> str | None:
        """The place to fix it in this cloud's portal (None when there is nothing to click)."""
        return cloud.link(self.link, client_id)

    def as_ours(self) -> EntraProblem:
        """The same failure when the refused credential is ours (service-provider app).

        For a customer-owned app a rejected certificate is the customer's setup; for our own
        multi-tenant app it is our configuration (security.md 6.1: invalid_client → alert).
        """
        if self.error != "invalid_client" and self.code not in _OUR_CREDENTIAL_CODES:
            return self
        return replace(
            self,
            category="our_configuration",
            title="Our application was refused",
            message="Microsoft refused our application's own credential. This is on our side.",
            fix="Nothing for you to change: our support team has to renew the credential.",
            link=None,
        )

    def with_retry_after(self, seconds: float | None) -> EntraProblem:
        """The same problem carrying Microsoft's Retry-After (kept when already known)."""
        if seconds is None or self.raw.retry_after is not None:
            return self
        return replace(self, raw=replace(self.raw, retry_after=seconds))

    @property
    def retryable(self) -> bool:
        """True when trying again later may succeed without anyone changing anything."""
        return self.category == "transient"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for storing in a report."""
        return {
            "category": self.category,
            "code": self.code,
            "error": self.error,
            "title": self.title,
            "message": self.message,
            "fix": self.fix,
            "link": self.link,
            "raw": self.raw.as_dict(),
        }


# Codes that mean "the client credential itself was refused".
_OUR_CREDENTIAL_CODES = frozenset({700027, 7000215, 7000222, 700024, 7000218})


@dataclass(frozen=True)
class Guidance:
    """One row of the error tables: what we tell the user, without the codes of one answer."""

    category: Category
    title: str
    message: str
    fix: str
    link: str | None
    declined: bool = False


def problem(
    category: Category,
    title: str,
    message: str,
    fix: str,
    link: str | None = None,
    *,
    code: int | None = None,
    error: str | None = None,
    raw: SupportCodes | None = None,
) -> EntraProblem:
    """Build a problem that didn't come from an error body (e.g. a missing permission)."""
    return EntraProblem(category, code, error, title, message, fix, link, raw or SupportCodes())
