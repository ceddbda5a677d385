"""Link Account for service-provider connections: delegated consent to our multi-tenant app.

Authorization code + PKCE + nonce through MSAL (``response_mode=form_post``), the flow kept
server-side under a random ``state`` and bound to the browser by a short-lived flow cookie
(``binding``); the callback (``callback``) redeems the code, validates the id token itself
(:mod:`portal.entra.idtoken`: MSAL 1.39 does not) and hands the result to
:mod:`portal.connections.delegated_link`. Inside the host's iframe the sign-in runs in a popup
started from a one-time handoff (``handoff``) that only the portal's own page can open, after a
confirmation in the popup; the result waits until the iframe's session confirms it (the iframe
polls the panel, ``panel``; ``start`` holds the views that begin a link). RFC 9700 sections
2.1, 4.2.4, 4.7; docs/decisions/0002-delegated-consent-in-a-popup.md,
0004-handoff-bound-to-its-session.md.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("link", __name__)

# The views register themselves on ``bp``.
from portal.blueprints.link import callback, handoff, panel, start  # noqa: E402

__all__ = ["bp", "callback", "handoff", "panel", "start"]
