"""Graph reads over the shared retry policy, against the simulator: Retry-After honoured, bounded
attempts (exactly one layer of retries), typed errors; paging with a scripted session."""

from __future__ import annotations

import json

import pytest
import requests

from portal.entra.client import EntraClient
from portal.entra.clouds import HostNotAllowedError, http_session, load_cloud_table
from portal.entra.graph import GraphClient, GraphError
from portal.entra.retry import RetryPolicy

from .sim_helpers import customer_owned

CLOUD = load_cloud_table(None).get("global")


class Sleeps(list):
    """Records the waits instead of sleeping."""

    def policy(self, **kw) -> RetryPolicy:
        return RetryPolicy(sleep=self.append, jitter=lambda: 1.0, **kw)


def _graph(sim, table, cert, policy: RetryPolicy) -> GraphClient:
    s = customer_owned(sim, cert)
    cloud = table.get("sim-global")
    session = http_session(table, cloud, retry=policy)
    token = EntraClient(cloud, s.tenant_id, s.client_id, s.credential, session=session)
    result = token.acquire_app_token(cloud.graph_scope())
    assert result.ok, result.problem
    return GraphClient(session, cloud, result.access_token or "")


def _statuses(sim, endpoint="graph.organization"):
    return [r["status"] for r in sim.requests(endpoint)]


def test_429_with_retry_after_waits_that_long(sim, table, cert):
    slept = Sleeps()
    graph = _graph(sim, table, cert, slept.policy())
    sim.set_fault("graph.organization", "status", times=1, status=429, retry_after=7)
    assert graph.get_json("organization")["value"]
    assert slept == [7.0] and _statuses(sim) == [429, 200]


def test_no_retry_after_means_exponential_backoff(sim, table, cert):
    slept = Sleeps()
    graph = _graph(sim, table, cert, slept.policy(base_backoff=0.5))
    sim.set_fault("graph.organization", "status", times=2, status=504)
    sim.set_fault("graph.organization", "status", times=1, status=503)
    graph.get_json("organization")
    assert slept == [0.5, 1.0, 2.0] and _statuses(sim) == [504, 504, 503, 200]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 500])
def test_other_errors_are_not_retried(sim, table, cert, status):
    slept = Sleeps()
    graph = _graph(sim, table, cert, slept.policy())
    sim.set_fault("graph.organization", "status", times=1, status=status)
    with pytest.raises(GraphError) as info:
        graph.get_json("organization")
    assert _statuses(sim) == [status] and slept == []
    error = info.value
    assert error.status == status and error.code and error.request_id and error.attempts == 1
    assert error.to_problem().raw.trace_id == error.request_id
    assert error.to_problem().category == {403: "customer_action", 500: "transient"}.get(
        status, "unknown"
    )


def test_bounded_attempts_and_one_layer_of_retries(sim, table, cert):
    slept = Sleeps()
    graph = _graph(sim, table, cert, slept.policy(attempts=3))
    sim.set_fault("graph.organization", "status", status=429, retry_after=1)
    with pytest.raises(GraphError) as info:
        graph.get_json("organization")
    # Three attempts in all: the session's; Graph's reader adds none of its own.
    assert _statuses(sim) == [429, 429, 429] and slept == [1.0, 1.0]
    assert info.value.throttled and info.value.attempts == 3 and info.value.retry_after == 1.0
    assert info.value.code == "TooManyRequests"
    problem = info.value.to_problem()
    assert problem.category == "transient" and problem.raw.retry_after == 1.0


def test_deadline_stops_waiting_for_a_long_retry_after(sim, table, cert):
    slept = Sleeps()
    graph = _graph(sim, table, cert, slept.policy(deadline=20))
    sim.set_fault("graph.organization", "status", times=1, status=429, retry_after=120)
    with pytest.raises(GraphError) as info:
        graph.get_json("organization")
    assert slept == [] and _statuses(sim) == [429]
    assert info.value.retry_after == 120.0  # a hint for a background job


def test_a_reader_may_bring_its_own_policy(sim, table, cert):
    graph = _graph(sim, table, cert, Sleeps().policy())
    graph.retry = RetryPolicy(attempts=1)
    sim.set_fault("graph.organization", "status", times=1, status=503)
    with pytest.raises(GraphError):
        graph.get_json("organization")
    assert _statuses(sim) == [503]


def test_network_errors_are_retried_then_reported(sim, table, cert):
    graph = _graph(sim, table, cert, Sleeps().policy(attempts=3))
    sim.set_fault("graph.organization", "drop", times=1)
    assert graph.get_json("organization")["value"]
    assert _statuses(sim) == [None, 200]
    sim.set_fault("graph.organization", "drop")
    with pytest.raises(GraphError) as info:
        graph.get_json("organization")
    assert info.value.network and info.value.attempts == 3
    assert info.value.to_problem().category == "transient"


def _response(status, body=None):
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body if body is not None else {}).encode()
    return r


class Script:
    """A stand-in session answering pages from a list (paging has nothing to retry)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.urls: list[str] = []

    def get(self, url, headers=None, params=None):
        self.urls.append(url)
        return self.answers.pop(0)


def test_paging_follows_next_link_on_the_same_host_only():
    base = CLOUD.graph_base + "/v1.0/servicePrincipals/x/appRoleAssignments"
    s = Script(
        _response(200, {"value": [{"n": 1}], "@odata.nextLink": base + "?$skiptoken=2"}),
        _response(200, {"value": [{"n": 2}, {"n": 3}]}),
    )
    graph = GraphClient(s, CLOUD, "token")  # type: ignore[arg-type]
    assert graph.get_all("servicePrincipals/x/appRoleAssignments") == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]
    assert s.urls[1] == base + "?$skiptoken=2"
    s = Script(_response(200, {"value": [], "@odata.nextLink": "https://evil.example/next"}))
    with pytest.raises(GraphError, match="another host"):
        GraphClient(s, CLOUD, "t").get_all("servicePrincipals/x/appRoleAssignments")  # type: ignore[arg-type]


def test_page_limit():
    link = CLOUD.graph_base + "/v1.0/users?$skiptoken=x"
    s = Script(*[_response(200, {"value": [{}], "@odata.nextLink": link})] * 5)
    with pytest.raises(GraphError, match="pages"):
        GraphClient(s, CLOUD, "t", max_pages=3).get_all("users")  # type: ignore[arg-type]


def test_real_session_refuses_foreign_host_as_graph_error():
    client = GraphClient(http_session(load_cloud_table(None)), CLOUD, "t")
    with pytest.raises(GraphError) as info:
        client.get_json("https://graph.microsoft.com.evil.example/v1.0/x")
    assert info.value.code == "refusedLink"
    assert issubclass(HostNotAllowedError, requests.RequestException)
