"""Where a browser may be sent after signing in (``?next=``): only a page of this application,
judged as the browser will resolve it, so a sign-in link can't become an open redirect."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import current_app
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

#: Paths never accepted as a post-sign-in target: the OAuth entry points must be reached only
#: from the portal's own pages (a /login?next=/oauth/handoff/... lure would turn a foreign link
#: into a same-origin navigation after sign-in), and a static file is no page to land on.
NEVER_NEXT = ("/oauth/", "/static/")


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a page of this application, else None (no open redirects).

    Judged as the browser will resolve it: every percent-decoded variant must be a plain
    absolute path without dot segments (a browser removes ``..`` when it follows the redirect,
    RFC 3986 §5.2.4, so ``/static/../oauth/...`` would land on ``/oauth/...``)."""
    if not target or len(target) > 2048:
        return None
    candidates = [target]
    for _ in range(3):  # also judge encoded variants such as %2F%2Fevil.example
        candidates.append(unquote(candidates[-1]))
    for candidate in candidates:
        if any(ord(ch) < 32 or ch == "\\" or ch == "\x7f" for ch in candidate):
            return None
        if not candidate.startswith("/") or candidate.startswith("//"):
            return None
        try:
            parts = urlsplit(candidate)
        except ValueError:
            return None
        if parts.scheme or parts.netloc:
            return None
        if any(segment in (".", "..") for segment in parts.path.split("/")):
            return None
        if parts.path.lower().startswith(NEVER_NEXT):
            return None
    adapter = current_app.url_map.bind("localhost", url_scheme="http")
    try:
        adapter.match(urlsplit(target).path, method="GET")
    except RequestRedirect:
        pass
    except HTTPException:
        return None
    return target
