"""Certificates of customer-owned connections: issue one, rotate to a new one, prove the new
one before it replaces the old.

A rotation never breaks a working connection: the next certificate is issued *pending*, the
active one keeps signing, and the pending one becomes active only once every checklist item is
proven with it. Needs an app context (settings, store), not a request.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from portal import storage
from portal.connections import lifecycle
from portal.connections.verification import record_report, verify_with
from portal.entra.certificates import MAX_VALIDITY_DAYS, issue_certificate
from portal.services import find_cloud
from portal.storage import vault

#: The certificate's subject (what the customer sees in the app registration's Certificates).
SUBJECT = "HR identity automation"


def issue(
    connection: storage.Connection,
    *,
    actor: int | None,
    retire: storage.CertificateRecord | None = None,
    status: str = "active",
) -> storage.CertificateRecord:
    """A new key pair and self-signed certificate for ``connection`` (the private key goes to the
    vault); ``retire`` is retired at once (its private key destroyed)."""
    months = int(current_app.config["CERT_VALIDITY_MONTHS"])
    issued = issue_certificate(
        SUBJECT,
        connection.id,
        validity_days=min(round(months * 365.25 / 12), MAX_VALIDITY_DAYS),
        key_size=int(current_app.config["CERT_KEY_SIZE"]),
    )
    record = storage.add_certificate(
        connection.id,
        cert_pem=issued.cert_pem.decode("ascii"),
        thumbprint_sha1=issued.thumbprint_sha1,
        thumbprint_sha256=issued.thumbprint_sha256,
        subject=issued.subject,
        not_before=issued.not_before.isoformat(),
        not_after=issued.not_after.isoformat(),
        private_key_pem=issued.private_key_pem,
        status=status,
    )
    if retire is not None:
        storage.set_certificate_status(retire.id, "retired")
    lifecycle.certificate_issued(
        connection.id,
        actor=actor,
        detail={
            "thumbprint_sha1": record.thumbprint_sha1,
            "status": status,
            "replaced": retire.thumbprint_sha1 if retire else None,
        },
    )
    return record


def start_rotation(connection: storage.Connection, *, actor: int | None) -> str:
    """Issue the next certificate as pending: "started", or why not ("no_active" when there is
    nothing to rotate from, "pending" when a rotation already waits)."""
    if storage.active_certificate(connection.id) is None:
        return "no_active"
    if storage.pending_certificate(connection.id) is not None:
        return "pending"
    issue(connection, actor=actor, status="pending")
    return "started"


@dataclass(frozen=True)
class RotationResult:
    """What confirming a rotation did: ``outcome`` is "rotated", "nothing" (no rotation to
    check), "unreadable" (the new key is lost: that certificate was retired) or "failed"
    (``reason`` says what is missing; nothing changed)."""

    outcome: str
    reason: str = ""
    old_thumbprint: str = ""


def confirm_rotation(connection: storage.Connection, *, actor: int | None) -> RotationResult:
    """Verify everything signing with the pending certificate; only if every item passes does it
    become the active one (and the previous one retired). A failure changes nothing."""
    pending = storage.pending_certificate(connection.id)
    active = storage.active_certificate(connection.id)
    cloud = find_cloud(connection.cloud)
    if pending is None or active is None or cloud is None or not connection.client_id:
        return RotationResult("nothing")
    try:
        key = storage.get_secret("certificates", pending.id, "private_key")
    except vault.SecretUnreadable:
        key = None
    if key is None:  # only the new certificate is affected: retire it, keep the connection
        storage.set_certificate_status(pending.id, "retired")
        return RotationResult("unreadable")
    report = verify_with(connection, cloud, pending, key)
    if not report.ok:
        reason = (
            report.problem.message
            if report.problem
            else "missing: " + ", ".join(item.label for item in report.missing) + "."
        )
        return RotationResult("failed", reason)
    storage.promote_certificate(connection.id, pending.id)
    record_report(connection, report, "certificate rotation", actor=actor)
    storage.audit_connection(
        "certificate.rotate",
        connection,
        actor=actor,
        detail={"new": pending.thumbprint_sha1, "old": active.thumbprint_sha1},
    )
    return RotationResult("rotated", old_thumbprint=active.thumbprint_sha1)
