"""Checks of customer-owned connections outside any one request: Link Account and Check again
call them from views, the health sweep (``flask check-health``) from cron.

They need an app context (the store, the cloud table), not a request: the actor of an audit row
is a parameter (None for the sweep).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app

from portal import storage
from portal.connections import credentials, lifecycle
from portal.connections import health as health_record
from portal.connections.breaker import CloudBreaker, breaker_from_config
from portal.entra.client import CertificateCredential
from portal.entra.clouds import Cloud
from portal.entra.report import Progress
from portal.entra.retry import track
from portal.entra.verify import VerificationReport, verify_customer_owned
from portal.services import caches, cloud_table, find_cloud
from portal.storage import vault

log = logging.getLogger("portal.verification")

#: Warn this many days before the certificate in use expires (a rotation takes the customer a
#: visit to the app registration; the warning leaves room for it).
EXPIRY_WARNING_DAYS = 30


def days_left(not_after: str | None) -> int | None:
    """Whole days until ``not_after`` (negative once expired)."""
    if not not_after:
        return None
    end = datetime.fromisoformat(not_after)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    return math.floor((end - datetime.now(UTC)).total_seconds() / 86400)


def run_check(
    item: storage.Connection,
    trigger: str,
    actor: int | None = None,
    progress: Progress | None = None,
) -> dict:
    """Verify a connection and store the report; returns ``ok``, and a message when the check
    could not start (nothing stored then, except a needs-reconnect state), Microsoft did not
    let it finish (``transient``: a failed attempt, the last report stands) or our own keyring
    cannot open its key (``our_config``: the operator is alarmed, the customer has nothing to
    do). A service-provider connection is checked by redeeming its refresh token now."""
    if item.deleted:
        return {"ok": False, "message": "This connection was deleted."}
    if item.kind == "service_provider":
        # Imported here: the delegated check uses this module's messages.
        from portal.connections.delegated_check import run_delegated_check

        return run_delegated_check(item, trigger, actor)
    cloud = find_cloud(item.cloud)
    if cloud is None or not (item.tenant_id or item.tenant_input) or not item.client_id:
        return {
            "ok": False,
            "message": "Enter the cloud, the tenant and the client ID first (steps 1 and 2).",
        }
    certificate = storage.active_certificate(item.id)
    if certificate is None:
        return {
            "ok": False,
            "message": "Create the certificate first (step 4), upload it to "
            "your application, then link.",
        }
    key = signing_key(
        certificate,
        "We can't read the private key of this connection's certificate. Create a new "
        "certificate (step 4), upload it to your application, then link again.",
    )
    if isinstance(key, dict):
        return key
    report = verify_with(item, cloud, certificate, key, progress=progress)
    if report.problem is not None and report.problem.retryable:
        _record_interrupted(item, report, trigger, actor)
        return {"ok": False, "message": INTERRUPTED_MESSAGE, "transient": True}
    record_report(item, report, trigger, actor)
    return {"ok": report.ok}


def signing_key(certificate: storage.CertificateRecord, unreadable: str) -> bytes | dict:
    """The certificate's private key, or the answer of a check that cannot sign: our keyring's
    mistake (``our_config``: logged and recorded by credentials, state unchanged) or a key gone
    for the customer (``reconnect``, with the ``unreadable`` message)."""
    try:
        key = credentials.private_key(certificate)
    except credentials.KeyringAlarm:
        return {"ok": False, "our_config": True, "message": credentials.OUR_SIDE_MESSAGE}
    except vault.SecretUnreadable:
        key = None  # credentials has moved the connection to needs_reconnect
    if key is None:
        lifecycle.needs_reconnect(certificate.connection_id, "certificate private key unreadable")
        return {"ok": False, "reconnect": True, "message": unreadable}
    return key


#: What the customer reads when Microsoft did not let a check finish.
INTERRUPTED_MESSAGE = (
    "Microsoft did not let us finish this check (it was busy or briefly unavailable). Nothing "
    "changed: the last result below still stands. Try again in a minute; the next scheduled "
    "check also tries again."
)


def _record_interrupted(
    item: storage.Connection, report: VerificationReport, trigger: str, actor: int | None
) -> None:
    """A transient failure is a failed attempt: the state and the last good report stay."""
    problem = report.problem
    assert problem is not None
    lifecycle.check_interrupted(
        item.id,
        summary={
            "trigger": trigger,
            "problem": problem.title,
            "error": problem.error,
            "code": problem.code,
            "ms": round(report.total_ms),
        },
        actor=actor,
        detail={"ok": False, "transient": True, "trigger": trigger},
    )
    log.warning(
        "check of connection %s interrupted by a transient failure (%s)", item.id, problem.error
    )


def verify_with(
    item: storage.Connection,
    cloud: Cloud,
    certificate: storage.CertificateRecord,
    key: bytes,
    progress: Progress | None = None,
) -> VerificationReport:
    """Prove every checklist item of ``item`` signing in with ``certificate`` (the active one
    for a check, the pending one for a rotation); a new token, never a cached one, so that a
    permission removed since the last check shows."""
    return verify_customer_owned(
        cloud_table(),
        cloud.key,
        item.tenant_id or item.tenant_input or "",
        item.client_id or "",
        CertificateCredential(key, certificate.cert_pem),
        item.exchange_enabled,
        fresh=True,
        discovery_cache=caches().discovery,
        progress=progress,
    )


def record_report(
    item: storage.Connection, report: VerificationReport, trigger: str, actor: int | None = None
) -> None:
    """Store a verification report on the connection: state, health, tenant facts, the health
    event and the audit row (one transaction; the report holds no secret)."""
    data = report.as_dict()
    health = "healthy" if report.ok else "failing"
    changes = health_record.checklist_changes(item.last_check, data["checklist"])
    fields = {
        "last_check": data,
        "last_checked_at": storage.utcnow(),
        "wizard_step": max(item.wizard_step or 1, 6),
    }
    if report.tenant.id:
        fields["tenant_id"] = report.tenant.id
    if report.tenant.name:
        fields["tenant_name"] = report.tenant.name
    if report.tenant.default_domain:
        fields["tenant_domain"] = report.tenant.default_domain
    missing = [i.key for i in report.checklist if i.status == "missing"]
    summary = {
        "trigger": trigger,
        "missing": missing,
        "problem": report.problem.title if report.problem else None,
        "changes": [c["text"] for c in changes],
        "ms": round(report.total_ms),
    }
    lifecycle.check_recorded(
        item.id,
        ok=report.ok,
        health=health,
        fields=fields,
        summary=summary,
        actor=actor,
        detail={"ok": report.ok, "missing": missing, "trigger": trigger},
        error_class=health_record.error_class_of(report.problem),
        changes=changes,
    )
    log.info(
        "check of connection %s: %s (%s)",
        item.id,
        "ok" if report.ok else "not ok",
        ",".join(missing) or "-",
    )


#: States whose connections the sweep re-checks: linked once, so Microsoft can be asked. Drafts
#: and those waiting for the customer's setup are the customer's to finish; a needs-reconnect
#: connection has no usable credential until the customer acts.
SWEPT_STATES = ("connected", "needs_attention")


@dataclass
class SweepSummary:
    """What one health sweep found (printed by ``flask check-health``)."""

    checked: int = 0
    healthy: int = 0
    needs_attention: int = 0
    not_checked: int = 0
    #: Checks our own configuration stopped (the vault keyring): alarmed, never the customer's.
    operator: int = 0
    expiring: list[tuple[str, int]] = field(default_factory=list)  # (connection id, days left)
    #: Connections not checked because their cloud was paused (cloud key -> count).
    paused: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        text = (
            f"Health sweep: checked {self.checked}, healthy {self.healthy}, needs attention "
            f"{self.needs_attention}, could not check {self.not_checked}, certificates "
            f"expiring within {EXPIRY_WARNING_DAYS} days {len(self.expiring)}, "
            f"operator problems {self.operator}"
        )
        if self.paused:
            clouds = ", ".join(f"{key} {count}" for key, count in self.paused.items())
            text += f", not checked (cloud paused) {sum(self.paused.values())}: {clouds}"
        return text


def sweep(
    breaker: CloudBreaker | None = None, progress: Callable[[int], None] | None = None
) -> SweepSummary:
    """Re-check every linked customer-owned connection, so that support sees a revoked
    permission or an expiring certificate before the customer's automation fails. Each check
    records its report and a health event, as "check again" does. A cloud that keeps failing
    is paused by the breaker: its connections are skipped and counted, not checked.
    ``progress`` is told how many are done before each next one (for the job's progress; the
    summary has the final count)."""
    summary = SweepSummary()
    breaker = breaker or breaker_from_config(current_app.config)
    for item in storage.list_all_connections():
        if item.kind != "customer_owned" or item.state not in SWEPT_STATES:
            continue
        if progress is not None:
            progress(summary.checked + summary.not_checked)
        cloud = item.cloud or "unknown"
        if not breaker.admit(cloud):
            continue
        with track() as calls:
            outcome = run_check(item, trigger="health sweep")
        if outcome.get("our_config"):
            # Logged and recorded as ours (state unchanged); the next sweep after the keyring
            # is fixed checks it again. Not Microsoft's fault: the breaker learns nothing.
            breaker.undecided(cloud)
            summary.operator += 1
            continue
        if outcome.get("transient"):
            breaker.record(cloud, transient=True, retry_after=calls.retry_after())
        elif calls.calls:
            breaker.record(cloud, transient=False)
        else:
            breaker.undecided(cloud)
        if "message" in outcome:
            summary.not_checked += 1
            log.warning(
                "health sweep could not check connection %s: %s", item.id, outcome["message"]
            )
            continue
        summary.checked += 1
        if outcome["ok"]:
            summary.healthy += 1
        else:
            summary.needs_attention += 1
        certificate = storage.active_certificate(item.id)
        left = days_left(certificate.not_after) if certificate else None
        if left is not None and left <= EXPIRY_WARNING_DAYS:
            summary.expiring.append((item.id, left))
    summary.paused = breaker.skipped()
    return summary
