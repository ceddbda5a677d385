"""Keep delegated (service-provider) connections alive: ``flask --app portal refresh-tokens``.

An Entra refresh token dies after 90 days without use (AADSTS700082). A cron job runs this once
or more a day; every linked service-provider connection whose last successful refresh (or
consent) is older than ``idle`` (24 h) is refreshed through MSAL against its own cloud and tenant.

Rules (security.md §0 item 5, §6.1, §6.3, §6.4, §7 items 24-26; entra.md §9):

* **Rotation is persisted atomically.** Entra hands out a new refresh token on every use and does
  not revoke the old one. The new MSAL cache (encrypted in the vault) is written in the SAME
  ``BEGIN IMMEDIATE`` transaction that records success (``refresh_last_ok_at``, counters reset,
  health event). If that transaction fails, nothing of it lands: the previous token stays stored,
  and because Entra still accepts it, the next run succeeds.
* **Failures are classified**, on Microsoft's ``error`` and ``error_codes`` (never the text):

  - *re-link needed* — ``invalid_grant`` (AADSTS700082 inactivity, 50173 revoked, 70043 sign-in
    frequency, 700084, 65001 consent withdrawn, …), ``interaction_required``,
    ``consent_required``, or no usable refresh token stored (missing or unreadable cache). The
    connection moves to ``needs_reconnect`` / ``failing`` and is never tried again until the
    customer links it again.
  - *transient* — network errors, timeouts, HTTP 429 and 5xx, ``temporarily_unavailable``,
    ``server_error``. Retried on the next run; counted at most once per UTC calendar day in
    ``refresh_failure_days`` (``refresh_last_failure_day`` holds the day). On the
    ``EXHAUSTED_AFTER_DAYS``-th (4th) failing day the connection is **exhausted**: state
    ``needs_reconnect``, health ``failing``, a ``refresh_exhausted`` health event. The marker of
    "exhausted" (as opposed to revoked) is ``state == "needs_reconnect"`` together with
    ``refresh_failure_days >= EXHAUSTED_AFTER_DAYS`` (see :func:`is_exhausted`).
  - *operator problem* — anything else: ``invalid_client`` (our own credential), unknown cloud,
    missing ``SP_*`` settings, a database write that failed, a token for the wrong tenant. Logged
    with Microsoft's support codes, not counted against the customer, and the command exits 1.

* **One refresher per connection.** Before any network call a run claims a lease row
  (``refresh_leases``) in a ``BEGIN IMMEDIATE`` transaction that also re-checks that the
  connection is still due; a concurrent run sees the lease (or the fresh ``refresh_last_ok_at``)
  and skips the connection. The success transaction writes only while the lease is still ours.

Nothing here needs a Flask request: the functions take the cloud table, the settings and the
clock as parameters and use ``portal.storage`` (an app context provides the database).
Never logged or printed: tokens, the cache, the credential.

The package, by concept (callers use the names re-exported here):

* ``rules`` — when a connection is linked, due or exhausted; how a failure is classified;
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
    DEFAULT_IDLE,
    EXHAUSTED_AFTER_DAYS,
    LEASE_SECONDS,
    RELINK_CODES,
    RELINK_ERRORS,
    Category,
    classify_failure,
    is_due,
    is_exhausted,
    is_linked,
    last_alive,
)
from portal.connections.keepalive.runner import run, run_from_app
from portal.connections.keepalive.settings import (
    KeepAliveConfigError,
    Settings,
    settings_from_config,
)

__all__ = [
    "DEFAULT_IDLE",
    "EXHAUSTED_AFTER_DAYS",
    "LEASE_SECONDS",
    "RELINK_CODES",
    "RELINK_ERRORS",
    "Category",
    "ConnectionResult",
    "KeepAliveConfigError",
    "Outcome",
    "RunSummary",
    "Settings",
    "classify_failure",
    "is_due",
    "is_exhausted",
    "is_linked",
    "last_alive",
    "refresh_connection",
    "report_lines",
    "run",
    "run_from_app",
    "settings_from_config",
]
