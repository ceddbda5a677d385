"""Certificates: key size, validity, thumbprints as Entra shows them, export formats."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from portal.entra.certificates import export_certificate, issue_certificate, load_certificate_info


def test_issued_certificate(cert):
    parsed = x509.load_pem_x509_certificate(cert.cert_pem)
    assert parsed.public_key().key_size == 2048
    assert cert.thumbprint_sha1 == hashlib.sha1(cert.cert_der).hexdigest().upper()  # noqa: S324
    assert cert.thumbprint_sha256 == hashlib.sha256(cert.cert_der).hexdigest().upper()
    assert len(cert.thumbprint_sha1) == 40 and cert.thumbprint_sha1.isupper()
    assert "CN=Test Portal" in cert.subject and "conn-test-1" in cert.subject
    assert cert.not_after - cert.not_before >= dt.timedelta(days=365)
    assert cert.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    key = serialization.load_pem_private_key(cert.private_key_pem, password=None)
    assert key.public_key().public_numbers() == parsed.public_key().public_numbers()
    assert b"PRIVATE" not in repr(cert).encode()
    assert parsed.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_default_key_size_is_3072():
    import inspect

    assert inspect.signature(issue_certificate).parameters["key_size"].default == 3072


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key_size": 1024}, "2048"),
        ({"validity_days": 732}, "24 months"),
        ({"validity_days": 0}, "between"),
        ({"connection_id": "a/b"}, "connection_id"),
        ({"subject_cn": ""}, "subject_cn"),
    ],
)
def test_refuses_weak_or_long_certificates(kwargs, message):
    args = {"subject_cn": "Portal", "connection_id": "c1", "key_size": 2048} | kwargs
    with pytest.raises(ValueError, match=message):
        issue_certificate(**args)


def test_exports(cert):
    der, mime = export_certificate(cert.cert_pem, "cer")
    assert der == cert.cert_der and mime == "application/pkix-cert"
    pem, _ = export_certificate(cert.cert_der, "pem")
    crt, _ = export_certificate(cert.cert_pem.decode(), "crt")
    assert pem == crt == cert.cert_pem
    assert b"PRIVATE" not in der + pem + crt
    with pytest.raises(ValueError):
        export_certificate(cert.cert_pem, "pfx")  # type: ignore[arg-type]


def test_certificate_info(cert):
    info = load_certificate_info(cert.cert_pem)
    assert info.thumbprint_sha1 == cert.thumbprint_sha1 and info.key_size == 2048
    assert info.not_after == cert.not_after
    now = dt.datetime.now(dt.UTC)
    assert info.is_valid_at(now) and info.days_left(now) in (364, 365)
