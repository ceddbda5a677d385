"""portal.entra.idtoken: the portal's own id-token check (MSAL 1.39 only compares the nonce)."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from portal.entra import idtoken
from portal.entra.clouds import BUILTIN_CLOUDS

CLOUD = BUILTIN_CLOUDS[0]
TID = "8f0f3f5e-1c57-4e0e-9a57-3d6c2a1b0c01"
CLIENT = "11111111-2222-3333-4444-555555555555"
NONCE = idtoken.expected_nonce("raw-nonce-value")


@pytest.fixture(scope="module")
def keys():
    return {
        kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("k1", "k2")
    }


class FakeResponse:
    def __init__(self, body, status=200):
        self.body, self.status_code = body, status

    def raise_for_status(self):
        if self.status_code >= 400:
            raise requests.HTTPError(f"{self.status_code}", response=None)

    def json(self):
        return self.body


class KeySession:
    """Serves a JWKS and counts fetches (a stand-in for the guarded session)."""

    def __init__(self, keys, published=("k1",)):
        self.keys, self.published, self.urls = keys, list(published), []

    def get(self, url, **kwargs):
        self.urls.append(url)
        jwks = []
        for kid in self.published:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            jwks.append({**jwk, "kid": kid, "use": "sig"})
        return FakeResponse({"keys": jwks})


def make_token(keys, kid="k1", alg="RS256", **overrides):
    now = int(time.time())
    claims = {
        "aud": CLIENT,
        "iss": f"{CLOUD.login_base}/{TID}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "tid": TID,
        "oid": "0a0b0c0d-0000-0000-0000-000000000001",
        "name": "Ada",
        "nonce": NONCE,
        "sub": "s",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    key = keys[kid] if alg.startswith("RS") or alg.startswith("PS") else "x" * 32
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def check(token, session, **kwargs):
    kwargs.setdefault("expected_tenant", TID)
    return idtoken.validate(
        token,
        cloud=CLOUD,
        client_id=CLIENT,
        nonce=NONCE,
        session=session,
        cache=idtoken.JwksCache(),
        **kwargs,
    )


def test_valid_token(keys):
    session = KeySession(keys)
    result = check(make_token(keys), session)
    assert result.ok, result.reason
    assert result.tenant_id == TID and result.name == "Ada"
    assert session.urls == [f"{CLOUD.login_base}/{TID}/discovery/v2.0/keys"]


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"aud": "someone-else"}, "aud"),
        (
            {"iss": f"https://login.microsoftonline.com/{'0' * 8}-0000-0000-0000-{'0' * 12}/v2.0"},
            "iss",
        ),
        ({"iss": "https://sts.windows.net/x/"}, "iss"),
        ({"nonce": "0" * 64}, "nonce"),
        ({"nonce": "raw-nonce-value"}, "nonce"),  # the raw value is not what was sent
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not_yet_valid"),
        ({"tid": "not-a-guid"}, "tid"),
        ({"tid": "00000000-0000-0000-0000-000000000001"}, "tenant"),
        ({"oid": None}, "missing_claim:oid"),
        ({"nonce": None}, "missing_claim:nonce"),
    ],
)
def test_bad_claims(keys, overrides, reason):
    assert check(make_token(keys, **overrides), KeySession(keys)).reason == reason


def test_leeway_is_small(keys):
    now = time.time()
    token = make_token(keys, exp=int(now) - 60)
    assert check(token, KeySession(keys)).ok  # within 120 s
    assert check(token, KeySession(keys), now=now + 120).reason == "expired"


def test_unknown_tenant_allowed_when_not_pinned(keys):
    other = "00000000-0000-0000-0000-000000000002"
    token = make_token(keys, tid=other, iss=f"{CLOUD.login_base}/{other}/v2.0")
    assert check(token, KeySession(keys), expected_tenant=None).ok


def test_issuer_must_name_the_tokens_own_tenant(keys):
    other = "00000000-0000-0000-0000-000000000002"
    token = make_token(keys, iss=f"{CLOUD.login_base}/{other}/v2.0")
    assert check(token, KeySession(keys), expected_tenant=None).reason == "iss"


@pytest.mark.parametrize("alg", ["HS256", "PS256", "none"])
def test_algorithm_is_pinned(keys, alg):
    if alg == "none":
        token = jwt.encode({"tid": TID}, None, algorithm="none", headers={"kid": "k1"})
    else:
        token = make_token(keys, alg=alg)
    assert check(token, KeySession(keys)).reason == "alg"


def test_bad_signature(keys):
    session = KeySession(keys, published=("k1",))
    forged = make_token(keys, kid="k2")  # signed by k2 ...
    header, payload, sig = forged.split(".")
    good_header = make_token(keys).split(".")[0]  # ... presented under k1's kid
    assert check(f"{good_header}.{payload}.{sig}", session).reason == "signature"


def test_garbage(keys):
    for token in (None, "", "a.b", "a.b.c", "x" * 50):
        assert not check(token, KeySession(keys)).ok


def test_jwks_cache_refetches_for_a_new_kid_but_not_for_every_unknown_kid(keys):
    session = KeySession(keys, published=("k1",))
    cache = idtoken.JwksCache(min_refetch=60)
    url = idtoken.jwks_url(CLOUD, TID)
    clock = [1000.0]
    assert cache.key(url, "k1", session, clock=lambda: clock[0]) is not None
    assert cache.key(url, "k1", session, clock=lambda: clock[0]) is not None
    assert len(session.urls) == 1  # cached
    assert cache.key(url, "zz", session, clock=lambda: clock[0]) is None
    assert cache.key(url, "zz", session, clock=lambda: clock[0]) is None
    assert len(session.urls) == 1  # an unknown kid does not hammer the endpoint
    session.published = ["k1", "k2"]  # Microsoft rolls keys
    clock[0] += 61
    assert cache.key(url, "k2", session, clock=lambda: clock[0]) is not None
    assert len(session.urls) == 2
    clock[0] += 3601
    cache.key(url, "k1", session, clock=lambda: clock[0])
    assert len(session.urls) == 3  # expired entries are refreshed


def test_jwks_unavailable_is_a_value(keys):
    class Down:
        def get(self, url, **kwargs):
            raise requests.ConnectionError("down")

    result = check(make_token(keys), Down())
    assert not result.ok and result.reason.startswith("jwks_unavailable")


def test_expected_nonce_matches_msal():
    from msal.oauth2cli.oidc import _nonce_hash

    assert idtoken.expected_nonce("abc") == _nonce_hash("abc")
