"""A connection's credentials read from the vault: the delegated token cache and the private key
of a certificate.

Who has to act on one we cannot read decides what happens:

* **gone for the customer** (``vault.SecretUnreadable`` with ``our_config`` False: a row no
  keyring can ever open): the connection moves to ``needs_reconnect`` (the customer links
  again) and the error is re-raised (the app's error handler renders it);
* **our configuration** (``vault.KeyringMismatch``: the key is missing from our keyring, or
  our keyring cannot decrypt): an operator alarm. An ERROR line is logged, the connection's
  state is left as it is and :class:`KeyringAlarm` is raised. Fixing the keyring makes the
  same secret readable again, so the next refresh or check restores the connection.
"""

from __future__ import annotations

import logging

from portal import storage
from portal.connections import lifecycle
from portal.storage import vault

log = logging.getLogger("portal.credentials")

#: What customers read while our keyring is broken: nothing for them to do, never "reconnect".
OUR_SIDE_TITLE = "A problem on our side"
OUR_SIDE_MESSAGE = (
    "We cannot use this connection's stored credentials right now because of a problem on our "
    "side. We have been alerted and are fixing it; you do not need to do anything, and nothing "
    "about your connection has changed."
)


class KeyringAlarm(Exception):
    """Our keyring cannot read a connection's secret (an operator problem, never the customer's).

    Deliberately not a ``vault.SecretUnreadable``: the code that answers an unreadable secret by
    asking the customer to link again must not catch it."""

    def __init__(self, connection_id: str, what: str, error: vault.SecretUnreadable) -> None:
        super().__init__(f"our keyring cannot read the {what} of connection {connection_id}")
        self.connection_id = connection_id
        self.what = what
        self.reason = error.reason

    def summary(self) -> dict[str, str]:
        """What support reads in the health history (key ids and reasons, never key material)."""
        return {
            "problem": OUR_SIDE_TITLE,
            "operator_problem": "vault keyring",
            "secret": self.what,
            "reason": self.reason,
        }


def _alarm(connection_id: str, what: str, error: vault.SecretUnreadable) -> KeyringAlarm:
    alarm = KeyringAlarm(connection_id, what, error)
    log.error(
        "operator alarm: the vault keyring cannot read the %s of connection %s (%s); the "
        "connection is left as it is. Restore the missing key or restart the workers with the "
        "current keyring (flask vault status)",
        what,
        connection_id,
        error.reason,
    )
    return alarm


def token_cache(connection_id: str) -> bytes | None:
    """The MSAL token cache of a delegated connection, None when none is stored. The caller
    records a :class:`KeyringAlarm` (the keep-alive counts it with its refresh outcome)."""
    try:
        return storage.get_secret("connections", connection_id, "token_cache")
    except vault.SecretUnreadable as exc:
        if exc.our_config:
            raise _alarm(connection_id, "stored sign-in", exc) from exc
        lifecycle.needs_reconnect(connection_id, f"stored token_cache unreadable: {exc.reason}")
        raise


def private_key(certificate: storage.CertificateRecord) -> bytes | None:
    """The PEM private key of a certificate, None once destroyed (retired). Only a check reads
    it, so a :class:`KeyringAlarm` is recorded here as our problem (state and last report
    unchanged; support sees the alarm in the health record and history)."""
    try:
        return storage.get_secret("certificates", certificate.id, "private_key")
    except vault.SecretUnreadable as exc:
        if not exc.our_config:
            lifecycle.needs_reconnect(
                certificate.connection_id, f"certificate key unreadable: {exc.reason}"
            )
            raise
        alarm = _alarm(certificate.connection_id, "certificate private key", exc)
        lifecycle.our_problem(
            certificate.connection_id,
            f"vault keyring cannot read the certificate private key ({alarm.reason})",
            summary={"trigger": "check", **alarm.summary()},
        )
        raise alarm from exc
