"""Observers of outbound calls see one record per attempt: cloud, endpoint kind, outcome, time."""

from __future__ import annotations

import pytest
import requests

from portal.entra.clouds import http_session
from portal.entra.outbound import OutboundCall, endpoint_of, observe_calls, outcome_of
from portal.entra.retry import RetryPolicy


def test_endpoint_kinds_come_from_the_path():
    assert endpoint_of("https://h/t/v2.0/.well-known/openid-configuration") == "discovery"
    assert endpoint_of("https://h/t/oauth2/v2.0/token") == "token"
    assert endpoint_of("https://h/t/discovery/v2.0/keys") == "keys"
    assert endpoint_of("https://h/v1.0/organization") == "graph"
    assert endpoint_of("https://h/somewhere") == "other"


def test_outcome_classes():
    assert outcome_of(200) == "ok"
    assert outcome_of(400) == "client_error"
    assert outcome_of(429) == "throttled"
    assert outcome_of(503) == "server_error"
    assert outcome_of(None, requests.ConnectTimeout()) == "timeout"
    assert outcome_of(None, requests.ConnectionError()) == "network"


def test_every_attempt_is_observed_with_its_cloud(sim, sim_server, table):
    cloud = table.get("sim-usgov-l4")
    seen: list[OutboundCall] = []
    remove = observe_calls(seen.append)
    try:
        # Retried calls: the observer sees each attempt, not only the call's last answer.
        session = http_session(table, cloud, retry=RetryPolicy(sleep=lambda s: None))
        sim.set_fault("openid-configuration", "status", status=503, times=1)
        url = cloud.discovery_url("contoso.onmicrosoft.com")
        assert session.get(url).status_code == 400  # this cloud has no such tenant
        sim.set_fault("openid-configuration", "drop", times=1)
        assert session.get(url).status_code == 400
        sim.set_fault("openid-configuration", "drop", times=1)
        with pytest.raises(requests.ConnectionError):
            http_session(table, cloud, retry=RetryPolicy(attempts=1)).get(url)
    finally:
        remove()
    assert [(c.cloud, c.endpoint, c.outcome, c.status) for c in seen] == [
        ("sim-usgov-l4", "discovery", "server_error", 503),
        ("sim-usgov-l4", "discovery", "client_error", 400),
        ("sim-usgov-l4", "discovery", "network", None),
        ("sim-usgov-l4", "discovery", "client_error", 400),
        ("sim-usgov-l4", "discovery", "network", None),
    ]
    assert all(c.seconds >= 0 for c in seen)
    assert "contoso" not in repr(seen)


def test_a_failing_observer_never_fails_the_call(sim, table, caplog):
    def broken(call):
        raise RuntimeError("observer bug")

    remove = observe_calls(broken)
    try:
        cloud = table.get("sim-global")
        session = http_session(table, cloud, retry=RetryPolicy(attempts=1))
        sim.set_fault("openid-configuration", "status", status=503, times=1)
        assert session.get(cloud.discovery_url("contoso.onmicrosoft.com")).status_code == 503
    finally:
        remove()
    assert "outbound call observer failed" in caplog.text
