"""Guest access: people who reach the portal without a password of their own.

- ``connect_sessions``: the host product mints a short-lived, single-use token for one of its
  users (``POST /api/v1/connect-sessions``); the portal's frame trades it, handed over by
  ``postMessage`` from ``static/embed.js``, for a session bound to that user, the organization
  and the host page's origin.
- ``setup_links``: a link the customer sends to the IT admin who owns the Entra tenant; it opens
  the setup of one connection, at top level, until the connection is linked or the link expires
  or is revoked.
- ``session``: what a guest's portal session is (its lifetime, its framing origins, the pages it
  may reach), checked on every request.
- ``tokens``: the random tokens and their hashes (only the hash is stored).
"""
