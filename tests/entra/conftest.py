"""Fixtures for portal.entra tests: certificates made once per session (RSA generation is slow)."""

from __future__ import annotations

import pytest

from portal.entra.certificates import IssuedCertificate, issue_certificate


@pytest.fixture(scope="session")
def cert() -> IssuedCertificate:
    """The connection's certificate (2048-bit to keep the suite fast)."""
    return issue_certificate("Test Portal", "conn-test-1", key_size=2048)


@pytest.fixture(scope="session")
def other_cert() -> IssuedCertificate:
    """A second certificate, never uploaded: signing with it must fail (AADSTS700027)."""
    return issue_certificate("Test Portal", "conn-test-2", key_size=2048)


@pytest.fixture(scope="session")
def table(sim_server, tmp_path_factory):
    """Built-in clouds plus the simulator's clouds (the PORTAL_CLOUDS_FILE path)."""
    from portal.entra.clouds import load_cloud_table

    path = sim_server.clouds_file(tmp_path_factory.mktemp("clouds") / "clouds.json")
    return load_cloud_table(path)
