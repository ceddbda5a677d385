"""The only module that reads or writes HX-* headers (htmx 2.x, https://htmx.org/reference/).

Error responses to htmx requests keep their real status (4xx/5xx) and carry a small alert
fragment with ``HX-Retarget: #alerts`` and ``HX-Reswap: innerHTML``; htmx 2 does not swap error
bodies by default, so ``static/app.js`` lets it swap exactly those (an ``htmx:beforeSwap``
handler keyed on the ``HX-Retarget`` header) and shows a generic alert for any other failure.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, make_response, request

HX_REQUEST = "HX-Request"
HX_BOOSTED = "HX-Boosted"
HX_HISTORY_RESTORE = "HX-History-Restore-Request"
HX_CURRENT_URL = "HX-Current-URL"
HX_TARGET = "HX-Target"
HX_REDIRECT = "HX-Redirect"
HX_REFRESH = "HX-Refresh"
HX_RETARGET = "HX-Retarget"
HX_RESWAP = "HX-Reswap"
HX_TRIGGER = "HX-Trigger"

ALERTS_SELECTOR = "#alerts"


def is_htmx() -> bool:
    """True for any request sent by htmx (boosted and history restores included)."""
    return request.headers.get(HX_REQUEST) == "true"


def wants_fragment() -> bool:
    """True when the response should be a fragment rather than a whole page."""
    return (
        is_htmx()
        and request.headers.get(HX_BOOSTED) != "true"
        and request.headers.get(HX_HISTORY_RESTORE) != "true"
    )


def target() -> str | None:
    """The id of the element htmx will swap into, if any."""
    return request.headers.get(HX_TARGET)


def current_path() -> str | None:
    """Path and query of the page that sent this htmx request, when it is this application's."""
    raw = request.headers.get(HX_CURRENT_URL)
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. "http://[::1": anyone can send this header
        return None
    if parts.netloc != request.host:
        return None
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def hx_redirect(url: str, status: int = 200) -> Response:
    """Make htmx navigate the whole page to ``url`` (used instead of a 302 into a fragment)."""
    response = make_response("", status)
    response.headers[HX_REDIRECT] = url
    return response


def hx_refresh(response: Response | None = None) -> Response:
    response = response if response is not None else make_response("", 200)
    response.headers[HX_REFRESH] = "true"
    return response


def retarget_to_alerts(response: Response) -> Response:
    """Send the response body into the page's alert region instead of the requested target."""
    response.headers[HX_RETARGET] = ALERTS_SELECTOR
    response.headers[HX_RESWAP] = "innerHTML"
    return response


def retarget(response: Response, selector: str, swap: str = "outerHTML") -> Response:
    """Swap the response into ``selector`` instead of the element that asked (a polled
    region whose answer, once it is finished, replaces the region around it)."""
    response.headers[HX_RETARGET] = selector
    response.headers[HX_RESWAP] = swap
    return response


def trigger(response: Response, event: str) -> Response:
    response.headers[HX_TRIGGER] = event
    return response


def add_vary(response: Response) -> Response:
    """The same URL serves a page and a fragment: caches must key on HX-Request."""
    response.vary.add(HX_REQUEST)
    return response
