"""Certificates of customer-owned connections; private keys in the vault while usable."""

from __future__ import annotations

import secrets

from portal.storage.db import write_transaction
from portal.storage.records import CERT_STATUSES, CertificateRecord
from portal.storage.sql import _execute, _one, _row, _rows, utcnow
from portal.storage.vault_blobs import delete_secret, put_secret


def add_certificate(
    connection_id: str,
    *,
    cert_pem: str,
    thumbprint_sha1: str,
    thumbprint_sha256: str,
    subject: str,
    not_before: str,
    not_after: str,
    private_key_pem: bytes | None = None,
    status: str = "active",
) -> CertificateRecord:
    """Store a certificate; its private key goes into the vault in the same transaction."""
    if status not in CERT_STATUSES:
        raise ValueError(f"status must be one of {CERT_STATUSES}")
    cert_id = secrets.token_hex(16)
    with write_transaction():
        _execute(
            "INSERT INTO certificates (id, connection_id, thumbprint_sha1, thumbprint_sha256, "
            "subject, not_before, not_after, cert_pem, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                cert_id,
                str(connection_id),
                thumbprint_sha1,
                thumbprint_sha256,
                subject,
                not_before,
                not_after,
                cert_pem,
                status,
                utcnow(),
            ],
        )
        if private_key_pem is not None:
            put_secret("certificates", cert_id, "private_key", private_key_pem)
    return CertificateRecord(**_one("SELECT * FROM certificates WHERE id = ?", [cert_id]))


def get_certificate(cert_id: str) -> CertificateRecord | None:
    row = _row("SELECT * FROM certificates WHERE id = ?", [str(cert_id)])
    return CertificateRecord(**row) if row else None


def list_certificates(connection_id: str) -> list[CertificateRecord]:
    return [
        CertificateRecord(**r)
        for r in _rows(
            "SELECT * FROM certificates WHERE connection_id = ? "
            "ORDER BY created_at DESC, rowid DESC",
            [str(connection_id)],
        )
    ]


def _newest_with_status(connection_id: str, status: str) -> CertificateRecord | None:
    row = _row(
        "SELECT * FROM certificates WHERE connection_id = ? AND status = ? "
        "ORDER BY created_at DESC, rowid DESC LIMIT 1",
        [str(connection_id), status],
    )
    return CertificateRecord(**row) if row else None


def active_certificate(connection_id: str) -> CertificateRecord | None:
    """The certificate that signs for the connection (at most one is active)."""
    return _newest_with_status(connection_id, "active")


def pending_certificate(connection_id: str) -> CertificateRecord | None:
    """The certificate issued for a rotation and not yet proven (at most one is kept)."""
    return _newest_with_status(connection_id, "pending")


def promote_certificate(connection_id: str, cert_id: str) -> None:
    """Make a proven pending certificate the active one and retire the previous, atomically."""
    with write_transaction():
        row = _row(
            "SELECT status FROM certificates WHERE id = ? AND connection_id = ?",
            [str(cert_id), str(connection_id)],
        )
        if row is None or row["status"] != "pending":
            raise ValueError("only a pending certificate of this connection can be promoted")
        previous = [
            r["id"]
            for r in _rows(
                "SELECT id FROM certificates WHERE connection_id = ? AND status = 'active'",
                [str(connection_id)],
            )
        ]
        for old_id in previous:
            set_certificate_status(old_id, "retired")
        _execute("UPDATE certificates SET status = 'active' WHERE id = ?", [str(cert_id)])


def set_certificate_status(cert_id: str, status: str) -> None:
    """Set the status; retiring destroys the private key (a retired certificate never signs
    again, and a key we no longer need is one less to lose). The public part stays."""
    if status not in CERT_STATUSES:
        raise ValueError(f"status must be one of {CERT_STATUSES}")
    with write_transaction():
        _execute("UPDATE certificates SET status = ? WHERE id = ?", [status, str(cert_id)])
        if status == "retired":
            delete_secret("certificates", cert_id, "private_key")
