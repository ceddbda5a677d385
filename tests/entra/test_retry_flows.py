"""Retries through the simulator, real HTTP with MSAL doing the protocol: throttling as Microsoft
documents it (429 + Retry-After on the token endpoint and on Graph), drops, hangs, deadlines,
the single-use authorization code, and a throttled discovery that is never "tenant not found"."""

from __future__ import annotations

import html
import re
import time

import pytest

from portal.connections.keepalive.rules import classify_failure
from portal.entra.client import CertificateCredential, EntraClient
from portal.entra.clouds import http_session
from portal.entra.retry import RetryPolicy, track
from portal.entra.tenant import DiscoveryCache
from portal.entra.verify import verify_customer_owned

from .sim_helpers import customer_owned

REDIRECT = "https://portal.example.test/auth/callback"


class Sleeps(list):
    """Sleeps for real (the simulator's clock is real time) and records each wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def _verify(table, s, policy: RetryPolicy, **kw):
    return verify_customer_owned(
        table.with_retry(policy), "sim-global", s.domain, s.client_id, s.credential, False, **kw
    )


def _step(report, name):
    return next(step for step in report.steps if step.name == name)


def test_simulator_throttles_as_microsoft_documents(sim, sim_session, sim_server, cert):
    s = customer_owned(sim, cert)
    base = sim_server.base_url("global")
    sim.set_fault("token", "status", times=1, status=429)
    answer = sim_session.post(
        f"{base}/{s.tenant_id}/oauth2/v2.0/token", data={"grant_type": "client_credentials"}
    )
    # Client credentials: "429 Too Many Requests, with a Retry-After: 60 header"
    # (learn.microsoft.com/entra/msal/dotnet/advanced/client-and-server-throttling).
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "60"
    assert answer.json()["error"] == "temporarily_unavailable"
    sim.set_fault("graph.organization", "status", times=1, status=429)
    answer = sim_session.get(f"{base}/v1.0/organization")
    # Graph: 429, a suggested wait in Retry-After, error.code TooManyRequests
    # (learn.microsoft.com/graph/throttling).
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0
    assert answer.json()["error"]["code"] == "TooManyRequests"


def test_token_429_with_retry_after_once_then_the_check_succeeds(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.set_fault("token", "status", times=1, status=429, retry_after=1)
    slept = Sleeps()
    with track() as calls:
        report = _verify(table, s, RetryPolicy(sleep=slept))
    assert report.ok, report.problem
    token = _step(report, "token")
    assert token.attempts == 2 and [r["status"] for r in sim.requests("token")] == [429, 200]
    assert slept == [1.0] and calls.waited == 1.0  # exactly what Retry-After asked
    assert token.ms >= 1000
    assert report.as_dict()["steps"][1]["attempts"] == 2


def test_graph_503_once_then_the_check_succeeds(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.set_fault("graph.organization", "status", times=1, status=503)
    report = _verify(table, s, RetryPolicy(sleep=lambda seconds: None))
    assert report.ok, report.problem
    assert [r["status"] for r in sim.requests("graph.organization")] == [503, 200]
    assert _step(report, "organization").attempts == 2


def test_dropped_token_request_is_retried(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.set_fault("token", "drop", times=1)
    report = _verify(table, s, RetryPolicy(sleep=lambda seconds: None))
    assert report.ok, report.problem
    assert [r["status"] for r in sim.requests("token")] == [None, 200]


def test_a_hanging_token_endpoint_is_bounded_by_the_deadline(sim, table, cert):
    s = customer_owned(sim, cert)
    cloud = table.get("sim-global")
    policy = RetryPolicy(deadline=2.0)
    client = EntraClient(
        cloud,
        s.tenant_id,
        s.client_id,
        s.credential,
        session=http_session(table, cloud, retry=policy),
    )
    client.accounts()  # MSAL's discovery before the fault
    sim.set_fault("token", "hang", seconds=30)
    began = time.monotonic()
    result = client.acquire_app_token(cloud.graph_scope())
    took = time.monotonic() - began
    sim.clear_faults()
    assert took < policy.deadline + 0.5  # the call ends by its deadline, not the 10 s read
    assert not result.ok and result.problem.category == "transient"


def test_retry_after_beyond_the_deadline_is_not_slept(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.set_fault("token", "status", status=429, retry_after=30)
    slept: list[float] = []
    report = _verify(table, s, RetryPolicy(deadline=5.0, sleep=slept.append))
    assert slept == [] and len(sim.requests("token")) == 1
    assert report.problem.category == "transient" and report.problem.retryable
    assert report.problem.raw.retry_after == 30.0
    assert report.as_dict()["problem"]["raw"]["retry_after"] == 30.0


def _sign_in_form(sim, table, cert, policy):
    home = sim.create_tenant(cloud="global", domains=["provider.onmicrosoft.com"])
    app = sim.create_app(
        home["id"], display_name="HR automation", multi_tenant=True, redirect_uris=[REDIRECT]
    )
    sim.upload_certificate(home["id"], app["app_id"], cert.cert_pem)
    customer = sim.create_tenant(cloud="global", domains=["contoso.onmicrosoft.com"])
    sim.create_user(customer["id"], "admin@contoso.onmicrosoft.com")
    sim.set_interaction("consent", user="admin@contoso.onmicrosoft.com")
    cloud = table.get("sim-global")
    session = http_session(table, cloud, retry=policy)
    credential = CertificateCredential(cert.private_key_pem, cert.cert_pem)
    client = EntraClient(cloud, "organizations", app["app_id"], credential, session=session)
    started = client.initiate_auth_code_flow(REDIRECT)
    page = session.get(started.auth_uri)
    fields = {
        n: html.unescape(v)
        for n, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text)
    }
    return client, started.flow, fields


def test_an_authorization_code_is_not_redeemed_twice_after_a_drop(sim, table, cert):
    client, flow, form = _sign_in_form(sim, table, cert, RetryPolicy(sleep=lambda s: None))
    sim.set_fault("token", "drop", times=1)
    result = client.complete_auth_code_flow(flow, form)
    # The code may have been redeemed before the connection dropped: one POST only.
    assert [r["status"] for r in sim.requests("token")] == [None]
    assert not result.ok and result.problem.category == "transient"


def test_an_authorization_code_is_retried_when_microsoft_did_not_take_it(sim, table, cert):
    client, flow, form = _sign_in_form(sim, table, cert, RetryPolicy(sleep=lambda s: None))
    sim.set_fault("token", "status", times=1, status=429, retry_after=1)
    result = client.complete_auth_code_flow(flow, form)
    assert result.ok, result.problem
    assert [r["status"] for r in sim.requests("token")] == [429, 200]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 429, "retry_after": 60},
        {"kind": "status", "status": 503},
        {"kind": "drop"},
    ],
    ids=["throttled", "unavailable", "reset"],
)
def test_failing_discovery_is_transient_never_tenant_not_found(sim, table, cert, fault):
    s = customer_owned(sim, cert)
    sim.set_fault("openid-configuration", **fault)
    report = _verify(table, s, RetryPolicy(attempts=2, sleep=lambda seconds: None))
    assert report.problem.category == "transient" and report.problem.retryable
    assert report.problem.title != "Tenant not found" and report.problem.code != 90002
    assert classify_failure(report.problem) == "transient"  # the keep-alive's reading


def test_throttled_msal_discovery_is_transient_never_tenant_not_found(sim, table, cert):
    s = customer_owned(sim, cert)
    cache = DiscoveryCache()
    assert _verify(table, s, RetryPolicy(), discovery_cache=cache).ok
    # Our discovery now comes from the cache; MSAL's own (a new client each check) is throttled.
    sim.set_fault("openid-configuration", "status", status=429, retry_after=60)
    report = _verify(table, s, RetryPolicy(), discovery_cache=cache)
    assert _step(report, "discovery").outcome == "found (cached)"
    assert report.problem.category == "transient", report.problem
    assert report.problem.title != "Tenant not found"
    assert classify_failure(report.problem) == "transient"


def test_sibling_cloud_failing_is_no_tenant_not_found(sim, table):
    from portal.entra.tenant import discover_tenant, parse_tenant_input

    sim.create_tenant(cloud="china", domains=["cn.onmicrosoft.com"])
    session = http_session(table, retry=RetryPolicy(attempts=1))
    # The chosen cloud says "not here"; the cloud that holds the tenant does not answer.
    sim.set_fault("openid-configuration", "status", times=1, status=400)
    sim.set_fault("openid-configuration", "status", status=503)
    found = discover_tenant(
        table, "sim-global", parse_tenant_input("cn.onmicrosoft.com"), session=session
    )
    assert found.outcome == "error" and found.problem.category == "transient"
