"""What binds a Link Account flow to the browser and the session that started it: the flow
cookie (read back by the callback), the popup's cookie, and a per-session value that handoffs
and their results are tied to (RFC 9700 section 4.7; docs/decisions/0004)."""

from __future__ import annotations

import hashlib
import secrets

from flask import current_app, request, session

FLOW_TTL = 600  # seconds: state, flow cookie and handoff all live at most 10 minutes


def _https_public_url() -> bool:
    return str(current_app.config.get("PUBLIC_URL") or "").startswith("https://")


def flow_cookie_name() -> str:
    """``__Host-`` when the public URL is https (Secure, Path=/, no Domain)."""
    return "__Host-portal_oauth_flow" if _https_public_url() else "portal_oauth_flow"


def popup_cookie_name() -> str:
    return "__Host-portal_handoff" if _https_public_url() else "portal_handoff"


def set_flow_cookie(response, value: str) -> None:
    # SameSite=None: the form_post callback is a cross-site POST from the login host, and Lax
    # cookies are not sent on it. Secure is required with None (RFC 6265bis); Chromium and
    # Firefox treat http://localhost as secure, so development on loopback works too. Not
    # Partitioned: it is set and read in top-level documents (redirect or popup) only.
    response.set_cookie(
        flow_cookie_name(),
        value,
        max_age=FLOW_TTL,
        path="/",
        secure=True,
        httponly=True,
        samesite="None",
    )


def clear_flow_cookie(response) -> None:
    response.delete_cookie(
        flow_cookie_name(), path="/", secure=True, httponly=True, samesite="None"
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def session_binding() -> str:
    """A per-session random value (hashed) that ties handoffs and their results to this
    browser session; the iframe's session is the only one that can read the result."""
    sid = session.get("link_sid")
    if not sid:
        sid = session["link_sid"] = secrets.token_urlsafe(32)
    return _digest(sid)


def existing_session_binding() -> str | None:
    sid = session.get("link_sid")
    return _digest(sid) if sid else None


def opened_by_the_portal() -> bool:
    """The popup (or the new-tab fallback) is navigated by the portal's own page, so the browser
    says ``same-origin``. A link in a mail or a chat is ``none``, another site's page is
    ``cross-site`` or ``same-site``; a browser that sends no Fetch Metadata cannot prove it."""
    return request.headers.get("Sec-Fetch-Site") == "same-origin"
