"""Live regions: the parts of a page that htmx swaps, one template each.

A region is a template named ``<blueprint>/_<name>.html`` whose root element carries the
region's id and its own hx attributes; the page includes it, and htmx gets it back alone
(contact-app's ``archive_ui.html`` is the model). Out-of-band regions are rendered with
``oob`` true, so their root adds ``hx-swap-oob``; a region that includes another one passes
``oob=false`` down (``{% with oob=false %}``), since htmx would pull out a nested one by itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response, current_app, make_response, render_template

from portal import htmx


def render(template: str, *, oob: Iterable[str] = (), lean: bool = False, **context) -> Response:
    """The region ``template`` for htmx, then each of ``oob`` marked to swap out of band.

    ``lean``: render without context processors (no session, user or CSRF lookups), for a
    region answering every keystroke that needs none of them."""
    if lean:
        body = current_app.jinja_env.get_template(template).render(oob=False, **context)
    else:
        body = render_template(template, oob=False, **context)
    body += "".join(render_template(extra, **{**context, "oob": True}) for extra in oob)
    return htmx.add_vary(make_response(body))


def page_or_region(page: str, region: str, **context) -> Response:
    """The whole page for a browser; only its region for htmx (the same URL serves both)."""
    if htmx.wants_fragment():
        return render(region, **context)
    return htmx.add_vary(make_response(render_template(page, **context)))
