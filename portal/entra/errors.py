"""Microsoft errors turned into plain-language problems with a fix and a link for the cloud.

Codes: https://learn.microsoft.com/entra/identity-platform/reference-error-codes — Microsoft asks
apps to branch on `error` and the numeric codes, never on `error_description` text, so we do.
This is the one table: token errors (`classify`) and errors answered at our redirect URI
(`classify_redirect_error`, sign-in and admin consent) are explained from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import requests

from .clouds import Cloud, HostNotAllowedError

__all__ = [
    "AADSTS",
    "EntraProblem",
    "SupportCodes",
    "classify",
    "classify_redirect_error",
    "problem",
]

Category = Literal["customer_action", "wrong_input", "transient", "our_configuration", "unknown"]


@dataclass(frozen=True)
class SupportCodes:
    """Raw identifiers support staff need to look a failure up with Microsoft (no secrets)."""

    error_codes: tuple[int, ...] = ()
    trace_id: str | None = None
    correlation_id: str | None = None
    timestamp: str | None = None
    http_status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for storing in a report."""
        return {
            "error_codes": list(self.error_codes),
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
            "timestamp": self.timestamp,
            "http_status": self.http_status,
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
class _Entry:
    category: Category
    title: str
    message: str
    fix: str
    link: str | None
    declined: bool = False


_APP_NOT_FOUND = _Entry(
    "wrong_input",
    "Application not found in this tenant",
    "Microsoft doesn't know an application with this client ID in this tenant.",
    "Check the Application (client) ID and the Directory (tenant) ID on the application's "
    "Overview page, and that you chose the right cloud.",
    "app_registrations",
)
_APP_DISABLED = _Entry(
    "customer_action",
    "The application is disabled",
    "The application's enterprise application (service principal) is disabled in your tenant.",
    "Open the enterprise application, go to Properties and set 'Enabled for users to sign in' "
    "to Yes.",
    "enterprise_app",
)
_ADMIN_MUST_APPROVE = _Entry(
    "customer_action",
    "An administrator must approve",
    "Your organization lets only administrators grant these permissions.",
    "Ask a Global Administrator or Privileged Role Administrator of your organization to sign in "
    "to this portal and start again. If your organization uses admin consent requests, they can "
    "also approve the request in the Microsoft Entra admin center under Enterprise applications "
    "> Admin consent requests; then start again.",
    None,
)

# Every code of reference/entra.md §6 (plus 90094 and 90095 of admin-approval workflows).
AADSTS: dict[int, _Entry] = {
    90002: _Entry(
        "wrong_input",
        "Tenant not found",
        "Microsoft can't find this tenant in the cloud you chose.",
        "Check the tenant ID or domain, and the cloud selection.",
        None,
    ),
    90033: _Entry(
        "transient",
        "Microsoft is busy",
        "Microsoft's sign-in service had a temporary problem.",
        "Wait a minute and check again.",
        None,
    ),
    90019: _Entry(
        "our_configuration",
        "Tenant missing from the request",
        "We didn't tell Microsoft which tenant to use.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    # The authorize endpoint names a scope the resource doesn't expose (e.g. a newly required
    # delegated scope that does not exist in this cloud). Decided on the code: the `error` that
    # comes with it (invalid_client) would otherwise read as a refused credential.
    650053: _Entry(
        "our_configuration",
        "Permission unknown to Microsoft",
        "We asked for a permission that Microsoft doesn't offer for this service in your cloud.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    700016: _APP_NOT_FOUND,
    700011: _APP_NOT_FOUND,
    7000215: _Entry(
        "wrong_input",
        "The client secret is wrong",
        "Microsoft rejected the client secret.",
        "Paste the secret's Value, not its Secret ID (the Value is shown only once, when you "
        "create the secret).",
        "certificates",
    ),
    7000222: _Entry(
        "customer_action",
        "The client secret has expired",
        "The client secret of the application has expired.",
        "Create a new client secret, or better, upload our certificate.",
        "certificates",
    ),
    700027: _Entry(
        "customer_action",
        "Our certificate isn't on the application",
        "Microsoft doesn't accept our certificate for this application: it isn't uploaded to this "
        "app registration, or a different one is.",
        "Download the certificate from this page and upload it under Certificates & secrets → "
        "Certificates → Upload certificate.",
        "certificates",
    ),
    700024: _Entry(
        "our_configuration",
        "Clock difference",
        "Microsoft says our sign-in request is outside its valid time range.",
        "Nothing for you to change: our server clock needs fixing. Please contact support.",
        None,
    ),
    7000112: _APP_DISABLED,
    70001: _APP_DISABLED,
    65001: _Entry(
        "customer_action",
        "Consent is required",
        "The permissions have not been granted for your organization yet.",
        "An administrator has to grant them: start again, sign in with an administrator account "
        "and accept on Microsoft's consent page (or select 'Grant admin consent' in API "
        "permissions).",
        "api_permissions",
    ),
    65004: _Entry(
        "customer_action",
        "Consent was declined",
        "The permissions were not accepted on Microsoft's consent page, so nothing was granted.",
        "When you are ready, start again and choose Accept on Microsoft's consent page.",
        None,
        declined=True,
    ),
    90094: _ADMIN_MUST_APPROVE,
    # With the admin consent workflow on, the user may send a consent request for review.
    90095: _ADMIN_MUST_APPROVE,
    500011: _Entry(
        "customer_action",
        "Service not available in the tenant",
        "The Microsoft service we need (for example Exchange Online) isn't set up in this tenant.",
        "Check that the tenant has the service (licences) or turn Exchange off for this "
        "connection.",
        None,
    ),
    50020: _Entry(
        "wrong_input",
        "Account from another organization",
        "The account you signed in with does not belong to the organization you are connecting "
        "(it may be a personal account or a guest).",
        "Start again and choose 'Use another account' on Microsoft's page to sign in with an "
        "administrator account of your own organization.",
        None,
    ),
    50011: _Entry(
        "our_configuration",
        "Reply address mismatch",
        "Microsoft doesn't accept the address it should return you to.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    50076: _Entry(
        "customer_action",
        "Multi-factor authentication required",
        "Your organization requires multi-factor authentication for this sign-in.",
        "Sign in again and complete the multi-factor prompt.",
        None,
    ),
    50079: _Entry(
        "customer_action",
        "Security info registration required",
        "Your account has to register security information before signing in.",
        "Register your security info (for example the Authenticator app), then sign in again.",
        None,
    ),
    53003: _Entry(
        "customer_action",
        "Blocked by Conditional Access",
        "A Conditional Access policy in your tenant blocked the sign-in.",
        "An administrator should review the Conditional Access policies (including policies for "
        "workload identities) for this application.",
        "enterprise_app",
    ),
    70011: _Entry(
        "our_configuration",
        "Invalid permission request",
        "We asked Microsoft for permissions in a form it doesn't accept.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    1002012: _Entry(
        "our_configuration",
        "Invalid permission request",
        "We asked for permissions of a resource Microsoft doesn't accept here (often a "
        "different cloud's resource).",
        "Check the cloud selection; if it is right, please contact support.",
        None,
    ),
    700082: _Entry(
        "customer_action",
        "Sign-in expired",
        "The sign-in wasn't used for too long and has expired.",
        "Sign in again to reconnect.",
        None,
    ),
    50173: _Entry(
        "customer_action",
        "Sign-in was revoked",
        "The sign-in was revoked (for example after a password reset).",
        "Sign in again to reconnect.",
        None,
    ),
    90072: _Entry(
        "wrong_input",
        "Account from another tenant",
        "The account you signed in with isn't part of this tenant.",
        "Sign in with an administrator account of the tenant you are connecting.",
        None,
    ),
    90038: _Entry(
        "wrong_input",
        "Tenant is in another cloud",
        "This tenant belongs to a different national cloud.",
        "Choose the cloud your tenant lives in.",
        None,
    ),
    900023: _Entry(
        "wrong_input",
        "Tenant isn't valid",
        "Microsoft says the tenant is neither a valid ID nor a domain name.",
        "Enter the Directory (tenant) ID from the application's Overview page.",
        None,
    ),
    50194: _Entry(
        "our_configuration",
        "Tenant-specific sign-in needed",
        "The application is single-tenant and must be used with its own tenant.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    7000218: _Entry(
        "our_configuration",
        "No credential sent",
        "We sent no certificate or secret to Microsoft.",
        "Nothing for you to change: please contact support.",
        None,
    ),
}

# When there is no known code, the OAuth `error` value still tells us who must act (RFC 6749 §5.2).
_BY_ERROR: dict[str, _Entry] = {
    "invalid_client": _Entry(
        "customer_action",
        "Credential rejected",
        "Microsoft rejected the application's credential.",
        "Check that our certificate is uploaded to this app registration.",
        "certificates",
    ),
    "unauthorized_client": _APP_NOT_FOUND,
    "invalid_tenant": AADSTS[90002],
    "invalid_grant": _Entry(
        "customer_action",
        "Sign in again",
        "Microsoft no longer accepts the stored sign-in.",
        "Sign in again to reconnect.",
        None,
    ),
    "interaction_required": _Entry(
        "customer_action",
        "Sign in again",
        "Microsoft needs you to sign in interactively.",
        "Sign in again.",
        None,
    ),
    "consent_required": AADSTS[65001],
    "access_denied": _Entry(
        "customer_action",
        "Access denied",
        "Microsoft denied the request.",
        "Ask an administrator of the tenant to review it.",
        None,
    ),
    "invalid_scope": AADSTS[70011],
    "invalid_resource": AADSTS[500011],
    "temporarily_unavailable": _Entry(
        "transient",
        "Microsoft is busy",
        "Microsoft's sign-in service is temporarily unavailable.",
        "Wait a minute and check again.",
        None,
    ),
    "server_error": _Entry(
        "transient",
        "Microsoft is busy",
        "Microsoft's sign-in service had an internal error.",
        "Wait a minute and check again.",
        None,
    ),
}

# An error answered at our redirect URI (the authorize and admin consent endpoints) without a
# code we know: its `error` value says what happened. Values: RFC 6749 §4.1.2.1
# (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1), OpenID Connect Core §3.1.2.6
# (https://openid.net/specs/openid-connect-core-1_0.html#AuthError) and Microsoft's table of
# authorization endpoint errors
# (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#error-codes-for-authorization-endpoint-errors).
# Any other value falls back to _BY_ERROR.
_AT_REDIRECT: dict[str, _Entry] = {
    # "Resource owner denied consent" (Microsoft's table).
    "access_denied": AADSTS[65004],
    # The v1 admin consent endpoint's answer when the admin cancels
    # (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
    "permission_denied": AADSTS[65004],
    "consent_required": AADSTS[65001],
    "interaction_required": _Entry(
        "customer_action",
        "Another sign-in step is needed",
        "Microsoft needs you to complete another step of the sign-in (for example multi-factor "
        "authentication).",
        "Start again and complete every step Microsoft asks for.",
        None,
    ),
    "login_required": _Entry(
        "customer_action",
        "Sign in again",
        "Microsoft needs you to sign in.",
        "Start again and sign in with an administrator account of your organization.",
        None,
    ),
    "invalid_request": _Entry(
        "our_configuration",
        "Sign-in request refused",
        "Microsoft refused our sign-in request as malformed.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    "unsupported_response_type": _Entry(
        "our_configuration",
        "Sign-in request refused",
        "Microsoft doesn't accept the kind of answer our sign-in request asked for.",
        "Nothing for you to change: please contact support.",
        None,
    ),
}

# Microsoft's descriptions start with the code: "AADSTS65004: User declined to consent ...".
_LEADING_CODE = re.compile(r"AADSTS(\d{4,8}):")

_UNKNOWN = _Entry(
    "unknown",
    "Microsoft returned an error",
    "Microsoft returned an error we don't have specific guidance for.",
    "Try again; if it persists, contact support and quote the codes below.",
    None,
)
_NETWORK = _Entry(
    "transient",
    "Microsoft didn't answer",
    "We couldn't reach Microsoft (network problem or timeout).",
    "Wait a minute and check again.",
    None,
)
_HTTP_5XX = _Entry(
    "transient",
    "Microsoft is busy",
    "Microsoft answered with a temporary error.",
    "Wait a minute and check again.",
    None,
)
_TLS = _Entry(
    "our_configuration",
    "Secure connection failed",
    "We couldn't set up a secure connection to Microsoft.",
    "Nothing for you to change: please contact support.",
    None,
)
_REFUSED = _Entry(
    "our_configuration",
    "Address not allowed",
    "We refused to contact an address outside Microsoft's clouds.",
    "Nothing for you to change: please contact support.",
    None,
)


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


def _from_entry(
    entry: _Entry, code: int | None, error: str | None, raw: SupportCodes
) -> EntraProblem:
    return EntraProblem(
        entry.category,
        code,
        error,
        entry.title,
        entry.message,
        entry.fix,
        entry.link,
        raw,
        entry.declined,
    )


def _codes(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        return ()
    out: list[int] = []
    for item in value:
        try:
            out.append(int(item))
        except (TypeError, ValueError):
            continue
    return tuple(out)


def _code_from_uri(value: Any) -> tuple[int, ...]:
    # Errors on the authorize redirect carry no error_codes, but error_uri has `?code=NNNN`
    # (https://learn.microsoft.com/entra/identity-platform/reference-error-codes#lookup-current-error-code-information).
    if not isinstance(value, str):
        return ()
    from urllib.parse import parse_qs, urlsplit

    try:
        found = parse_qs(urlsplit(value).query).get("code", [])
    except ValueError:
        return ()
    return _codes(found[:1])


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _classify_body(body: Mapping[str, Any], status: int | None = None) -> EntraProblem:
    error_value = body.get("error")
    error = error_value if isinstance(error_value, str) and error_value else None
    codes = _codes(body.get("error_codes")) or _code_from_uri(body.get("error_uri"))
    raw = SupportCodes(
        error_codes=codes,
        trace_id=_opt(body.get("trace_id")),
        correlation_id=_opt(body.get("correlation_id")),
        timestamp=_opt(body.get("timestamp")),
        http_status=status,
    )
    for code in codes:
        if code in AADSTS:
            return _from_entry(AADSTS[code], code, error, raw)
    first = codes[0] if codes else None
    if error in _BY_ERROR:
        return _from_entry(_BY_ERROR[error], first, error, raw)
    if status is not None and (status >= 500 or status == 429):
        return _from_entry(_HTTP_5XX, first, error, raw)
    return _from_entry(_UNKNOWN, first, error, raw)


def _leading_code(description: str) -> int | None:
    found = _LEADING_CODE.match(description.lstrip())
    return int(found.group(1)) if found else None


def classify_redirect_error(
    error: str, error_description: str = "", error_uri: str | None = None
) -> EntraProblem:
    """Explain an error Microsoft answered at our redirect URI (sign-in or admin consent).

    Such an answer carries `error`, `error_description` and at times `error_uri`, but no
    `error_codes`. The AADSTS code is the one the description starts with (`AADSTSnnnnn:`), else
    the `code` of `error_uri`; a code merely mentioned later in the text is not the error's. A
    known code decides; without one the OAuth `error` value does (RFC 6749 §4.1.2.1).
    """
    error_value = error or None
    code = _leading_code(error_description or "")
    if code is None:
        found = _code_from_uri(error_uri)
        code = found[0] if found else None
    raw = SupportCodes(error_codes=(code,) if code is not None else ())
    if code in AADSTS:
        return _from_entry(AADSTS[code], code, error_value, raw)
    if code is not None and error in ("access_denied", "permission_denied"):
        # Refused with a code we don't know: not necessarily a decline on the consent page (a
        # policy refuses with access_denied too, e.g. AADSTS53003).
        return _from_entry(_BY_ERROR["access_denied"], code, error_value, raw)
    entry = _AT_REDIRECT.get(error) or _BY_ERROR.get(error) or _UNKNOWN
    return _from_entry(entry, code, error_value, raw)


def _response_body(response: Any) -> tuple[dict[str, Any] | None, int | None]:
    status = getattr(response, "status_code", None)
    text = getattr(response, "text", None)
    if not isinstance(text, str):
        return None, status
    try:
        body = json.loads(text)
    except ValueError:
        return None, status
    return (body if isinstance(body, dict) else None), status


def classify(source: Mapping[str, Any] | BaseException | Any) -> EntraProblem:
    """Turn an MSAL error dict, an MSAL/requests exception or an HTTP response into a problem."""
    if isinstance(source, Mapping):
        return _classify_body(source)
    if isinstance(source, HostNotAllowedError):
        return _from_entry(_REFUSED, None, None, SupportCodes())
    if isinstance(source, requests.exceptions.SSLError):
        return _from_entry(_TLS, None, None, SupportCodes())
    if isinstance(source, requests.exceptions.RequestException):
        response = getattr(source, "response", None)
        if response is not None:
            return classify(response)
        return _from_entry(_NETWORK, None, None, SupportCodes())
    if isinstance(source, BaseException):
        # MsalServiceError: MSAL raises it for HTTP 5xx from the token endpoint (harness notes).
        from msal.exceptions import MsalServiceError

        if isinstance(source, MsalServiceError):
            return _from_entry(_HTTP_5XX, None, getattr(source, "error", None), SupportCodes())
        if isinstance(source, ValueError):
            # MSAL raises ValueError when its own tenant discovery fails (4xx on the document).
            cause = source.__cause__ or source.__context__
            if cause is not None and cause is not source:
                inner = classify(cause)
                if inner.category != "unknown":
                    return inner
            return _from_entry(AADSTS[90002], None, None, SupportCodes())
        return _from_entry(_UNKNOWN, None, None, SupportCodes())
    if hasattr(source, "status_code"):
        body, status = _response_body(source)
        if body is not None and ("error" in body or "error_codes" in body):
            return _classify_body(body, status)
        if status is not None and (status >= 500 or status == 429):
            return _from_entry(_HTTP_5XX, None, None, SupportCodes(http_status=status))
        return _from_entry(_UNKNOWN, None, None, SupportCodes(http_status=status))
    return _from_entry(_UNKNOWN, None, None, SupportCodes())
