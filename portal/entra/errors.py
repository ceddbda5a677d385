"""Microsoft errors turned into plain-language problems with a fix and a link for the cloud.

Codes: https://learn.microsoft.com/entra/identity-platform/reference-error-codes — Microsoft asks
apps to branch on `error` and the numeric codes, never on `error_description` text, so we do.
The tables are `aadsts.py` (by code) and `oauth_errors.py` (by `error` value); token errors
(`classify`) and errors answered at our redirect URI (`classify_redirect_error`, sign-in and
admin consent) are both explained from them. The problem types live in `problems.py` and are
importable from here.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import requests

from .aadsts import AADSTS
from .oauth_errors import AT_REDIRECT, BY_ERROR
from .outbound import HostNotAllowedError
from .problems import EntraProblem, Guidance, SupportCodes, problem
from .retry import parse_retry_after

__all__ = [
    "AADSTS",
    "EntraProblem",
    "SupportCodes",
    "classify",
    "classify_redirect_error",
    "problem",
]

# Microsoft's descriptions start with the code: "AADSTS65004: User declined to consent ...".
_LEADING_CODE = re.compile(r"AADSTS(\d{4,8}):")

# Fallbacks: an answer with nothing we know in it, or no answer from Microsoft at all.
_UNKNOWN = Guidance(
    "unknown",
    "Microsoft returned an error",
    "Microsoft returned an error we don't have specific guidance for.",
    "Try again; if it persists, contact support and quote the codes below.",
    None,
)
_NETWORK = Guidance(
    "transient",
    "Microsoft didn't answer",
    "We couldn't reach Microsoft (network problem or timeout).",
    "Wait a minute and check again.",
    None,
)
_HTTP_5XX = Guidance(
    "transient",
    "Microsoft is busy",
    "Microsoft answered with a temporary error.",
    "Wait a minute and check again.",
    None,
)
_TLS = Guidance(
    "our_configuration",
    "Secure connection failed",
    "We couldn't set up a secure connection to Microsoft.",
    "Nothing for you to change: please contact support.",
    None,
)
_REFUSED = Guidance(
    "our_configuration",
    "Address not allowed",
    "We refused to contact an address outside Microsoft's clouds.",
    "Nothing for you to change: please contact support.",
    None,
)


def _from_entry(
    entry: Guidance, code: int | None, error: str | None, raw: SupportCodes
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
    if error in BY_ERROR:
        return _from_entry(BY_ERROR[error], first, error, raw)
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
        return _from_entry(BY_ERROR["access_denied"], code, error_value, raw)
    entry = AT_REDIRECT.get(error) or BY_ERROR.get(error) or _UNKNOWN
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


# msal authority.tenant_discovery (1.39): "OIDC Discovery failed on <url>. HTTP status: <n>,
# Error: <body as answered>", chained under "Unable to get authority configuration ...".
_MSAL_DISCOVERY = re.compile(r"HTTP status: (\d{3}), Error: (.*)\Z", re.DOTALL)


def _chain(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in links and len(links) < 8:
        links.append(current)
        current = current.__cause__ or current.__context__
    return links


def _classify_value_error(exc: ValueError) -> EntraProblem:
    """MSAL raises ValueError when its own tenant discovery fails; what Microsoft answered is
    only in the chained exception. A throttled (429) or failing (5xx) discovery, or one that
    answered something unreadable, is transient: never "tenant not found"."""
    for link in _chain(exc):
        if isinstance(link, json.JSONDecodeError):
            return _from_entry(_HTTP_5XX, None, None, SupportCodes())
        if not isinstance(link, ValueError):
            inner = classify(link)
            if inner.category != "unknown":
                return inner
            continue
        found = _MSAL_DISCOVERY.search(str(link))
        if found:
            return _discovery_answer(int(found.group(1)), found.group(2))
    return _from_entry(AADSTS[90002], None, None, SupportCodes())


def _discovery_answer(status: int, text: str) -> EntraProblem:
    """The problem of a tenant discovery answer MSAL refused (its status and body)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        found = _classify_body(body, status)
    else:
        found = _from_entry(_UNKNOWN, None, None, SupportCodes(http_status=status))
    if (status == 429 or status >= 500) and found.category != "transient":
        return _from_entry(_HTTP_5XX, found.code, found.error, found.raw)
    if found.category == "unknown" and status in (400, 404):
        # The document of an unknown tenant (entra.md §5); the body had nothing we know.
        return _from_entry(AADSTS[90002], None, found.error, found.raw)
    return found


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
            return _classify_value_error(source)
        return _from_entry(_UNKNOWN, None, None, SupportCodes())
    if hasattr(source, "status_code"):
        return _classify_response(source).with_retry_after(_retry_after_of(source))
    return _from_entry(_UNKNOWN, None, None, SupportCodes())


def _classify_response(response: Any) -> EntraProblem:
    body, status = _response_body(response)
    if body is not None and ("error" in body or "error_codes" in body):
        return _classify_body(body, status)
    if status is not None and (status >= 500 or status == 429):
        return _from_entry(_HTTP_5XX, None, None, SupportCodes(http_status=status))
    return _from_entry(_UNKNOWN, None, None, SupportCodes(http_status=status))


def _retry_after_of(response: Any) -> float | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if isinstance(headers, Mapping) else None
    return parse_retry_after(value, time.time()) if isinstance(value, str) else None
