"""The app's credentials: a certificate (private key and certificate) or a client secret.

MSAL takes either; certificate credentials with `public_certificate` make MSAL ≥1.35 sign PS256
with `x5t#S256` (https://learn.microsoft.com/entra/identity-platform/certificate-credentials).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization

__all__ = [
    "CertificateCredential",
    "Credential",
    "CredentialFileError",
    "SecretCredential",
]


@dataclass(frozen=True)
class CertificateCredential:
    """A private key (PKCS#8 PEM, from the vault) and its certificate (PEM)."""

    private_key_pem: bytes | str = field(repr=False)
    cert_pem: bytes | str

    def to_msal(self) -> dict[str, Any]:
        """MSAL's credential dict; no thumbprint, so MSAL uses SHA-256 / PS256 and sends x5c."""
        return {
            "private_key": _loaded_key(self.private_key_pem),
            "public_certificate": _text(self.cert_pem),
        }

    @classmethod
    def from_pem_file(cls, path: str) -> CertificateCredential:
        """Read one PEM file holding an unencrypted private key and its certificate (how an
        operator configures our own app's credential). Raises :class:`CredentialFileError` with a
        message naming the file, never its content."""
        from cryptography import x509

        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise CredentialFileError(f"{path!r} cannot be read ({exc.strerror}).") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise CredentialFileError(
                f"{path!r} holds no readable, unencrypted private key "
                "(PEM with the key and the certificate)."
            ) from None
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise CredentialFileError(f"{path!r} holds no certificate (PEM).") from None
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(key_pem, cert.public_bytes(serialization.Encoding.PEM))


class CredentialFileError(ValueError):
    """A credential file that cannot be used (the message is safe to show an operator)."""


@dataclass(frozen=True)
class SecretCredential:
    """A client secret (its Value, never its ID)."""

    secret: str = field(repr=False)

    def to_msal(self) -> str:
        """MSAL takes a secret as a plain string."""
        return self.secret


Credential = CertificateCredential | SecretCredential


def _text(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


_KEY_CACHE: OrderedDict[bytes, Any] = OrderedDict()
_KEY_CACHE_LOCK = threading.Lock()
_KEY_CACHE_SIZE = 256


def _loaded_key(pem: bytes | str) -> Any:
    """The private key as a loaded object, parsed and validated once per process.

    Loading a PEM runs RSA key validation (~170 ms for 3072 bits); given a PEM string, PyJWT
    would redo that for every client assertion. MSAL hands an unencrypted `private_key` to PyJWT
    as is, and PyJWT signs with a key object directly, so a loaded key is passed instead. The
    cache is keyed by the PEM's SHA-256, never by the PEM, and bounded. If the PEM can't be
    loaded here, MSAL gets the text and reports the problem itself.
    """
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    digest = hashlib.sha256(data).digest()
    with _KEY_CACHE_LOCK:
        key = _KEY_CACHE.get(digest)
        if key is not None:
            _KEY_CACHE.move_to_end(digest)
            return key
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return _text(pem)
    with _KEY_CACHE_LOCK:
        _KEY_CACHE[digest] = key
        while len(_KEY_CACHE) > _KEY_CACHE_SIZE:
            _KEY_CACHE.popitem(last=False)
    return key
