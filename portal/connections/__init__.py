"""The connection domain: its lifecycle and everything that moves it, no request objects.

- ``lifecycle``: states, health and the named transitions (the only writer of both);
- ``credentials``: a connection's secrets read from the vault (unreadable → needs reconnect);
- ``verification``: checking a customer-owned connection against its tenant, and the sweep;
- ``delegated_link``: what a redeemed service-provider sign-in becomes;
- ``keepalive``: keeping delegated refresh tokens alive (``flask refresh-tokens``);
- ``service_provider``: our multi-tenant app's settings, one reader for the link and keep-alive;
- ``deletion``: deleting a connection and what is left to remove at Microsoft.

Views and CLI commands load a connection, call one function here and render the result.
"""
