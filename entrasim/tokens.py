"""Token signing (the simulator's own key, kept in memory), JWKS, certificate parsing and
client-assertion verification.

Certificate credentials follow
https://learn.microsoft.com/entra/identity-platform/certificate-credentials : RS256 with `x5t`
(SHA-1 thumbprint) or PS256 with `x5t#S256`. Parsed certificates and public keys are cached by PEM
text, so verifying an assertion costs one RSA verification and no parsing (the bench depends on it).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from .errors import AADSTSError, utc_stamp

MIN_RSA_BITS = 2048
# Entra tolerates a few minutes of clock skew on client assertions.
ASSERTION_SKEW = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    text = text.strip().rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- compact JWS (RFC 7515), RS256 and PS256 only ---------------------------------------------
# Hand-rolled rather than PyJWT: one parse per token instead of two, which matters at hundreds of
# token requests per second (see bench/simulator.py).


class InvalidToken(Exception):
    """A JWT that cannot be parsed or whose signature does not verify."""


_PADDING = {
    "RS256": padding.PKCS1v15(),
    # RFC 7518 §3.5: PSS with MGF1 and a salt as long as the hash.
    "PS256": padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
}


def jws_sign(claims: dict, key, headers: dict) -> str:
    header = {"alg": "RS256", "typ": "JWT", **headers}
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode()
    return f"{head}.{body}.{b64url(key.sign(signing_input, _PADDING['RS256'], hashes.SHA256()))}"


def jws_parse(token: str) -> tuple[dict, dict, bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS, unverified."""
    try:
        head, body, sig = token.split(".")
        header, claims = json.loads(b64url_decode(head)), json.loads(b64url_decode(body))
        signature = b64url_decode(sig)
    except (ValueError, TypeError) as exc:
        raise InvalidToken(f"not a compact JWS: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("header and payload must be JSON objects")
    return header, claims, f"{head}.{body}".encode(), signature


def jws_verify(alg: str, key, signing_input: bytes, signature: bytes) -> None:
    if alg not in _PADDING or not isinstance(key, rsa.RSAPublicKey):
        raise InvalidToken(f"algorithm {alg!r} not accepted")
    try:
        key.verify(signature, signing_input, _PADDING[alg], hashes.SHA256())
    except InvalidSignature as exc:
        raise InvalidToken("signature verification failed") from exc


# --- certificates ------------------------------------------------------------------------


def load_certificate(data: bytes | str) -> x509.Certificate:
    """A certificate from PEM or DER (what the admin center's .cer/.pem/.crt upload accepts)."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if b"-----BEGIN CERTIFICATE-----" in raw:
        return x509.load_pem_x509_certificate(raw)
    try:
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        # A .cer file is often base64 DER without PEM armour.
        return x509.load_der_x509_certificate(base64.b64decode(raw))


def describe_certificate(cert: x509.Certificate) -> dict:
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "thumbprint": hashlib.sha1(der).hexdigest().upper(),  # noqa: S324 - it is the x5t
        "thumbprint_sha256": b64url(hashlib.sha256(der).digest()),
        "cert_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "start": cert.not_valid_before_utc.timestamp(),
        "end": cert.not_valid_after_utc.timestamp(),
        "subject": cert.subject.rfc4514_string(),
    }


@functools.lru_cache(maxsize=4096)
def public_key_of(cert_pem: str):
    """(public key, RSA bits or 0) of a stored certificate; cached by its PEM text."""
    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    return key, (key.key_size if isinstance(key, rsa.RSAPublicKey) else 0)


# --- the simulator's signing key ------------------------------------------------------------


class Signer:
    """The token-signing key pair, its self-signed certificate (for `x5c`) and its `kid`."""

    def __init__(self, private_pem: bytes | None = None) -> None:
        if private_pem:
            self.key = serialization.load_pem_private_key(private_pem, password=None)
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entrasim token signing")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(self.key, hashes.SHA256())
        )
        der = self.cert.public_bytes(serialization.Encoding.DER)
        self.kid = b64url(hashlib.sha1(der).digest())  # noqa: S324 - Entra's kid is the x5t
        self.x5c = base64.b64encode(der).decode()
        self.public_key = self.key.public_key()
        self._rogue = None

    def private_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def jwk(self, issuer: str) -> dict:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes(3, "big")),
            "x5c": [self.x5c],
            "issuer": issuer,
        }

    def sign(self, claims: dict, bad_signature: bool = False) -> str:
        key = self.key
        if bad_signature:
            # Same kid, different key: a token that must fail signature validation.
            if self._rogue is None:
                self._rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key = self._rogue
        return jws_sign(claims, key, {"kid": self.kid, "x5t": self.kid})

    def verify(self, token: str) -> dict:
        """Claims of a token this simulator signed (signature only; callers check the rest).

        Raises InvalidToken."""
        header, claims, signing_input, signature = jws_parse(token)
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise InvalidToken("not signed by this simulator")
        jws_verify("RS256", self.public_key, signing_input, signature)
        return claims


# --- client assertions ----------------------------------------------------------------------


def verify_client_assertion(
    assertion: str, app, client_id: str, now: float, audiences: set[str] | None = None
) -> None:
    """Check a `private_key_jwt` assertion against the app's uploaded certificates.

    Raises AADSTSError with Entra's codes: 700027 (key not registered, bad signature, weak key),
    700024 (outside its time window), 50012 (`aud` is not this token endpoint), 50027 (malformed).
    """
    try:
        header, claims, signing_input, signature = jws_parse(assertion)
    except InvalidToken as exc:
        raise AADSTSError(
            "invalid_client", 50027, f"JWT token is invalid or malformed. [Reason - {exc}]"
        ) from exc
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        raise AADSTSError(
            "invalid_client",
            700027,
            "Client assertion failed signature validation. "
            f"[Reason - The algorithm '{alg}' is not supported.]",
        )
    credential = None
    if header.get("x5t#S256"):
        wanted = header["x5t#S256"].rstrip("=")
        shown = b64url_decode(wanted).hex().upper()
        credential = next((k for k in app.key_credentials if k.thumbprint_sha256 == wanted), None)
    elif header.get("x5t"):
        # MSAL pads x5t with '='; compare the decoded bytes.
        shown = b64url_decode(header["x5t"]).hex().upper()
        credential = next((k for k in app.key_credentials if k.thumbprint == shown), None)
    else:
        shown = ""
    if credential is None:
        raise AADSTSError(
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered "
            f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{shown}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to "
            f"see configured keys for app Id '{app.app_id}'. Review the documentation at "
            "https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding "
            "service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get"
            "?view=graph-rest-1.0&tabs=http to build a query request URL, such as "
            f"'https://graph.microsoft.com/beta/applications/{app.app_id}']",
        )
    if credential.end < now:
        raise AADSTSError(
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature. [Reason - The key used "
            "is expired., Thumbprint of key used by client: "
            f"'{credential.thumbprint}'"
            f", Found key 'Start={utc_stamp(credential.start)}, "
            f"End={utc_stamp(credential.end)}']",
        )
    key, bits = public_key_of(credential.cert_pem)
    if bits < MIN_RSA_BITS:
        raise AADSTSError(
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - RSA key size "
            f"{bits} is less than the minimum required {MIN_RSA_BITS} bits.]",
        )
    try:
        jws_verify(alg, key, signing_input, signature)
    except InvalidToken as exc:
        raise AADSTSError(
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature. [Reason - The key was "
            "found but the signature could not be verified., Thumbprint of key used "
            f"by client: '{credential.thumbprint}']",
        ) from exc
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise AADSTSError(
            "invalid_client",
            50027,
            "JWT token is invalid: the 'iss' and 'sub' claims must be the client id.",
        )
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else (aud if isinstance(aud, list) else [])
    if audiences is not None and not any(str(a).rstrip("/").lower() in audiences for a in auds):
        # Entra wants the token endpoint the request is sent to (public issue reports:
        # "AADSTS50012: Client assertion audience claim does not match Realm issuer.").
        raise AADSTSError(
            "invalid_client", 50012, "Client assertion audience claim does not match Realm issuer."
        )
    exp = claims.get("exp")
    start = claims.get("nbf", claims.get("iat"))
    number = int | float
    if not isinstance(exp, number) or (start is not None and not isinstance(start, number)):
        raise AADSTSError(
            "invalid_client",
            50027,
            "JWT token is invalid: the 'exp' claim is missing or not a number.",
        )
    if now > exp + ASSERTION_SKEW or (start is not None and now < start - ASSERTION_SKEW):
        raise AADSTSError(
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: "
            f"{_iso7(now)}, assertion valid from {_iso7(start) if start else 'unspecified'}, "
            f"expiry time of assertion {_iso7(exp)}. Review the documentation at "
            "https://docs.microsoft.com/en-us/azure/active-directory/develop/"
            "active-directory-certificate-credentials .",
        )


def _iso7(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
