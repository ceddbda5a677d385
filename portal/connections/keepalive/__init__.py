"""Keep delegated (service-provider) connections alive: ``flask --app portal refresh-tokens``.

An Entra refresh token dies after 90 days without use (AADSTS700082). A cron job runs this once
or more a day; every linked service-provider connection whose last successful refresh (or
consent) is older than ``idle`` (24 h) is refreshed through MSAL against its own cloud and tenant.

Rules (security.md §0 item 5, §6.1, §6.3, §6.4, §7 items 24-26; entra.md §9):

* **Rotation is persisted atomically.** Entra hands out a new refresh token on every use and does
  not revoke the old one. The new MSAL cache (encrypted in the vault) is written in the SAME
  ``BEGIN IMMEDIATE`` transaction that records success (``refresh_last_ok_at``, counters reset,
  health event) and the report of the check the refresh is (``last_check``: granted scopes
  against the required ones, a Graph read; ``portal.entra.verify_delegated``). If that
  transaction fails, nothing of it lands: the previous token stays stored, and because Entra
  still accepts it, the next run succeeds.
* **Failures are classified**, on Microsoft's ``error`` and ``error_codes`` (never the text):

  - *re-link needed* — only answers that mean the grant is gone: ``invalid_grant``
    (AADSTS700082 inactivity, 50173 revoked, 70043 sign-in frequency, 700084, 65001 consent
    withdrawn, …), ``interaction_required`` (50076, 50079), ``consent_required``, or no usable
    refresh token stored (none stored, or a row no keyring can open). The connection moves to
    ``needs_reconnect`` / ``failing`` and is never tried again until the customer links it again.
  - *transient* — network errors, timeouts, HTTP 429 and 5xx, ``temporarily_unavailable``,
    ``server_error``. Retried on every run for as long as the token can still be alive:
    Microsoft's 90-day inactivity limit counted from :func:`last_alive`, less
    ``LIFE_MARGIN`` (:func:`life_end`). Counted at most once per UTC day in
    ``refresh_failure_days`` (``refresh_last_failure_day`` holds the day). Support is alarmed
    (ERROR line, ``alarms`` in the summary, the ``alarm`` of the health event, the support
    page) after ``ALARM_AFTER_DAYS`` failing days and again with ``ALARM_LIFE_LEFT`` of life
    left. Once the life is over the connection is **exhausted**: ``needs_reconnect`` with a
    ``refresh_exhausted`` health event whose reason says so (see :func:`is_exhausted`).
  - *our configuration* — our vault keyring cannot read the stored sign-in
    (``vault.KeyringMismatch``): an operator alarm. Counted as a failing day (the token is not
    renewed meanwhile), never ends the connection, exit code 1; the next run after the keyring
    is fixed refreshes it and lifts the degraded health.
  - *operator problem* — anything else: ``invalid_client`` (our own credential), unknown cloud,
    missing ``SP_*`` settings, a database write that failed, a token for the wrong tenant. Logged
    with Microsoft's support codes, not counted against the customer, and the command exits 1.

* **One refresher per connection.** Before any network call a run claims a lease row
  (``refresh_leases``) in a ``BEGIN IMMEDIATE`` transaction that also re-checks that the
  connection is still due; a concurrent run sees the lease (or the fresh ``refresh_last_ok_at``)
  and skips the connection. The success transaction writes only while the lease is still ours.
  *Check* on a delegated connection (``portal.connections.delegated_check``) goes through the
  same path.

Nothing here needs a Flask request: the functions take the cloud table, the settings and the
clock as parameters and use ``portal.storage`` (an app context provides the database).
Never logged or printed: tokens, the cache, the credential.

The package, by concept (callers use the names re-exported here):

* ``rules`` — when a connection is linked or due, its token's life, support's alarm; how a
  failure is classified;
* ``settings`` — :class:`Settings` and :func:`settings_from_config`;
* ``outcomes`` — recording the outcome of one refresh through ``portal.connections.lifecycle``;
* ``refresh`` — one connection: the lease claim, the MSAL redemption, :func:`refresh_connection`;
* ``report`` — :class:`RunSummary` and the CLI's :func:`report_lines`;
* ``runner`` — :func:`run` over all connections and :func:`run_from_app` (the CLI's entry point).
"""

from portal.connections.keepalive.outcomes import ConnectionResult, Outcome
from portal.connections.keepalive.refresh import refresh_connection
from portal.connections.keepalive.report import RunSummary, report_lines
from portal.connections.keepalive.rules import (
    ALARM_AFTER_DAYS,
    ALARM_LIFE_LEFT,
    DEFAULT_IDLE,
    LEASE_SECONDS,
    LIFE_MARGIN,
    RELINK_CODES,
    RELINK_ERRORS,
    TOKEN_INACTIVE_LIFE,
    Category,
    alarm,
    classify_failure,
    is_due,
    is_exhausted,
    is_linked,
    last_alive,
    life_end,
    life_left,
    life_over,
)
from portal.connections.keepalive.runner import run, run_from_app
from portal.connections.keepalive.settings import (
    KeepAliveConfigError,
    Settings,
    settings_from_config,
)

__all__ = [
    "ALARM_AFTER_DAYS",
    "ALARM_LIFE_LEFT",
    "DEFAULT_IDLE",
    "LEASE_SECONDS",
    "LIFE_MARGIN",
    "RELINK_CODES",
    "RELINK_ERRORS",
    "TOKEN_INACTIVE_LIFE",
    "Category",
    "ConnectionResult",
    "KeepAliveConfigError",
    "Outcome",
    "RunSummary",
    "Settings",
    "alarm",
    "classify_failure",
    "is_due",
    "is_exhausted",
    "is_linked",
    "last_alive",
    "life_end",
    "life_left",
    "life_over",
    "refresh_connection",
    "report_lines",
    "run",
    "run_from_app",
    "settings_from_config",
]
