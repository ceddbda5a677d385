"""The connection domain: its lifecycle and everything that moves it, no request objects.

- ``lifecycle``: states, health and the named transitions (the only writer of both), their
  table in ``transitions``;
- ``health``: the health record beside the state (last attempt, success, failure, failing
  since, whose move it is, what changed);
- ``credentials``: a connection's secrets read from the vault (gone → needs reconnect; our
  keyring's mistake → an operator alarm);
- ``verification``: checking a connection against its tenant, and the sweep;
  ``delegated_check`` for a service-provider connection; ``breaker`` pauses a failing cloud in
  the cron jobs;
- ``delegated_link``: what a redeemed service-provider sign-in becomes;
- ``keepalive``: keeping delegated refresh tokens alive (``flask refresh-tokens``);
- ``service_provider``: our multi-tenant app's settings, one reader for the link and keep-alive;
- ``deletion``: deleting a connection and what is left to remove at Microsoft.

Views and CLI commands load a connection, call one function here and render the result.
"""
