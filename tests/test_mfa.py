"""portal.mfa: TOTP steps, drift, QR codes, recovery codes (no Flask)."""

import pyotp

from portal import mfa


def test_a_code_is_matched_to_its_time_step_within_the_drift():
    secret = mfa.new_secret()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    step = mfa.current_step(now)
    assert mfa.matching_step(secret, totp.at(now), now) == step
    assert mfa.matching_step(secret, totp.at(now - 30), now) == step - 1
    assert mfa.matching_step(secret, totp.at(now + 30), now) == step + 1
    assert mfa.matching_step(secret, totp.at(now - 90), now) is None
    assert mfa.matching_step(secret, " " + totp.at(now)[:3] + " " + totp.at(now)[3:], now) == step
    assert mfa.matching_step(secret, "abcdef", now) is None


def test_secret_has_160_bits_and_the_uri_names_the_issuer():
    secret = mfa.new_secret()
    assert len(secret) == 32
    uri = mfa.provisioning_uri(secret, "ada@contoso.example")
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    assert "issuer=Entra%20ID%20connections" in uri


def test_qr_code_is_an_svg_data_uri():
    assert mfa.qr_data_uri("otpauth://totp/x?secret=AAAA").startswith("data:image/svg+xml")


def test_recovery_codes_are_distinct_and_checked_by_hash():
    codes = mfa.new_recovery_codes()
    assert len(set(codes)) == 10 and all(len(c) == 11 and c[5] == "-" for c in codes)
    stored = mfa.hash_recovery_code(codes[0], "pbkdf2:sha256:1000")
    assert codes[0] not in stored
    assert mfa.recovery_code_matches(stored, codes[0].upper().replace("-", " "))
    assert not mfa.recovery_code_matches(stored, codes[1])
