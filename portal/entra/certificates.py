"""Self-signed certificates the customer uploads to its app registration, and their thumbprints.

https://learn.microsoft.com/entra/identity-platform/certificate-credentials ; upload formats
(.cer, .pem, .crt): https://learn.microsoft.com/entra/identity-platform/how-to-add-credentials .
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateInfo",
    "IssuedCertificate",
    "MAX_VALIDITY_DAYS",
    "MIN_KEY_SIZE",
    "export_certificate",
    "issue_certificate",
    "load_certificate_info",
]

MIN_KEY_SIZE = 2048  # Entra rejects smaller keys (AADSTS700027); RFC 7518 §3.3 requires 2048.
DEFAULT_KEY_SIZE = 3072
MAX_VALIDITY_DAYS = 731  # 24 months
_CONNECTION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock differences at Microsoft's side

ExportFormat = Literal["cer", "pem", "crt"]


@dataclass(frozen=True)
class CertificateInfo:
    """Public facts of a certificate, as Entra shows them after upload."""

    cert_pem: bytes
    thumbprint_sha1: str
    thumbprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    subject: str
    key_size: int

    def is_valid_at(self, when: dt.datetime) -> bool:
        """True when `when` lies inside the validity window."""
        return self.not_before <= when < self.not_after

    def days_left(self, when: dt.datetime) -> int:
        """Whole days until expiry (negative once expired)."""
        return (self.not_after - when).days


@dataclass(frozen=True)
class IssuedCertificate:
    """A new certificate and its private key; the key goes straight into the vault."""

    cert_pem: bytes
    cert_der: bytes
    private_key_pem: bytes
    thumbprint_sha1: str
    thumbprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    subject: str

    def __repr__(self) -> str:
        # Never let the private key reach a log line through repr().
        return f"IssuedCertificate(subject={self.subject!r}, sha1={self.thumbprint_sha1})"

    @property
    def info(self) -> CertificateInfo:
        """The public part only."""
        return load_certificate_info(self.cert_pem)


def _thumbprints(cert: x509.Certificate) -> tuple[str, str]:
    # Entra shows the SHA-1 of the DER certificate as uppercase hex (customKeyIdentifier).
    return cert.fingerprint(hashes.SHA1()).hex().upper(), cert.fingerprint(
        hashes.SHA256()
    ).hex().upper()  # noqa: S303


def issue_certificate(
    subject_cn: str,
    connection_id: str,
    validity_days: int = 365,
    key_size: int = DEFAULT_KEY_SIZE,
    now: dt.datetime | None = None,
) -> IssuedCertificate:
    """Create an RSA key and a self-signed certificate naming the portal and the connection."""
    subject_cn = _checked_request(subject_cn, connection_id, validity_days, key_size)
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, subject_cn),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"connection {connection_id}"),
        ]
    )
    cert = _signed(key, name, now - _BACKDATE, now + dt.timedelta(days=validity_days))
    sha1, sha256 = _thumbprints(cert)
    return IssuedCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        thumbprint_sha1=sha1,
        thumbprint_sha256=sha256,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
    )


def _checked_request(subject_cn: str, connection_id: str, validity_days: int, key_size: int) -> str:
    """Refuse what Entra would reject or what could smuggle text into the subject; the trimmed
    common name."""
    if key_size < MIN_KEY_SIZE:
        raise ValueError(f"RSA keys must have at least {MIN_KEY_SIZE} bits")
    if not 1 <= validity_days <= MAX_VALIDITY_DAYS:
        raise ValueError(f"validity must be between 1 and {MAX_VALIDITY_DAYS} days (24 months)")
    if not _CONNECTION_ID_RE.match(connection_id):
        raise ValueError("connection_id must be 1-64 letters, digits, '-' or '_'")
    subject_cn = subject_cn.strip()
    if not subject_cn or len(subject_cn) > 64:
        raise ValueError("subject_cn must be 1-64 characters")
    return subject_cn


def _signed(
    key: rsa.RSAPrivateKey, name: x509.Name, not_before: dt.datetime, not_after: dt.datetime
) -> x509.Certificate:
    """A self-signed leaf for client authentication (signing only, never a CA)."""
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _load(cert: bytes | str) -> x509.Certificate:
    data = cert.encode("ascii") if isinstance(cert, str) else cert
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_certificate_info(pem: bytes | str) -> CertificateInfo:
    """Thumbprints, validity, subject and key size of a PEM (or DER) certificate."""
    cert = _load(pem)
    sha1, sha256 = _thumbprints(cert)
    public_key = cert.public_key()
    key_size = public_key.key_size if isinstance(public_key, rsa.RSAPublicKey) else 0
    return CertificateInfo(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        thumbprint_sha1=sha1,
        thumbprint_sha256=sha256,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
        key_size=key_size,
    )


def export_certificate(cert: bytes | str, fmt: ExportFormat) -> tuple[bytes, str]:
    """The public certificate as `.cer` (DER), `.pem` or `.crt` (PEM), with its MIME type."""
    parsed = _load(cert)
    if fmt == "cer":
        return parsed.public_bytes(serialization.Encoding.DER), "application/pkix-cert"
    if fmt in ("pem", "crt"):
        mime = "application/x-pem-file" if fmt == "pem" else "application/x-x509-ca-cert"
        return parsed.public_bytes(serialization.Encoding.PEM), mime
    raise ValueError(f"unknown certificate format {fmt!r}")
