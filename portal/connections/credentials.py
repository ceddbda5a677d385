"""A connection's credentials read from the vault: the delegated token cache and the private key
of a certificate. One we cannot read moves the connection to ``needs_reconnect`` (the customer
links again) and re-raises ``vault.SecretUnreadable`` (the app's error handler renders it)."""

from __future__ import annotations

from portal import storage
from portal.connections import lifecycle
from portal.storage import vault


def token_cache(connection_id: str) -> bytes | None:
    """The MSAL token cache of a delegated connection, None when none is stored."""
    try:
        return storage.get_secret("connections", connection_id, "token_cache")
    except vault.SecretUnreadable as exc:
        lifecycle.needs_reconnect(connection_id, f"stored token_cache unreadable: {exc.reason}")
        raise


def private_key(certificate: storage.CertificateRecord) -> bytes | None:
    """The PEM private key of a certificate, None once destroyed (retired)."""
    try:
        return storage.get_secret("certificates", certificate.id, "private_key")
    except vault.SecretUnreadable as exc:
        lifecycle.needs_reconnect(
            certificate.connection_id, f"certificate key unreadable: {exc.reason}"
        )
        raise
