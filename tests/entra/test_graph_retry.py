"""Graph retry rules with a scripted session and a fake clock (no network, no sleeping)."""

from __future__ import annotations

import email.utils
import json

import pytest
import requests

from portal.entra.clouds import HostNotAllowedError, http_session, load_cloud_table
from portal.entra.graph import GraphClient, GraphError, parse_retry_after

CLOUD = load_cloud_table(None).get("global")


def _response(status, body=None, headers=None):
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body if body is not None else {}).encode()
    r.headers.update(headers or {})
    return r


class Script:
    """A stand-in session answering from a list; records URLs and the fake time of each call."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.urls: list[str] = []
        self.now = 0.0
        self.sleeps: list[float] = []
        self.called_at: list[float] = []

    def get(self, url, headers=None, params=None):
        self.urls.append(url)
        self.called_at.append(self.now)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def client(self, **kw):
        options = {
            "sleep": self.sleep,
            "clock": lambda: self.now,
            "wall_clock": lambda: 1_700_000_000.0 + self.now,
            "jitter": lambda: 1.0,
        }
        options.update(kw)
        return GraphClient(self, CLOUD, "token", **options)  # type: ignore[arg-type]


OK = _response(200, {"id": "x"})


def test_429_with_retry_after_seconds_waits_that_long():
    s = Script(_response(429, headers={"Retry-After": "7"}), OK)
    assert s.client().get_json("organization") == {"id": "x"}
    assert s.called_at == [0.0, 7.0]


def test_retry_after_http_date():
    when = email.utils.formatdate(1_700_000_000 + 3, usegmt=True)
    s = Script(_response(503, headers={"Retry-After": when}), OK)
    s.client().get_json("organization")
    assert s.sleeps == [3.0]
    assert parse_retry_after("garbage", 0) is None
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after(email.utils.formatdate(10, usegmt=True), 100) == 0.0


def test_no_retry_after_means_exponential_backoff():
    s = Script(_response(504), _response(504), _response(503), OK)
    s.client(base_backoff=0.5).get_json("organization")
    assert s.sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 500])
def test_other_errors_are_not_retried(status):
    body = {
        "error": {
            "code": "Authorization_RequestDenied",
            "message": "no",
            "innerError": {
                "request-id": "rid",
                "client-request-id": "cid",
                "date": "2026-11-26T12:00:00",
            },
        }
    }
    s = Script(_response(status, body))
    with pytest.raises(GraphError) as info:
        s.client().get_json("organization")
    assert len(s.urls) == 1 and s.sleeps == []
    assert info.value.status == status and info.value.code == "Authorization_RequestDenied"
    assert info.value.request_id == "rid" and info.value.client_request_id == "cid"
    problem = info.value.to_problem()
    assert problem.raw.trace_id == "rid"
    assert problem.category == {403: "customer_action", 500: "transient"}.get(status, "unknown")


def test_bounded_attempts():
    s = Script(*[_response(429, headers={"Retry-After": "1"})] * 10)
    with pytest.raises(GraphError) as info:
        s.client(max_attempts=4).get_json("organization")
    assert len(s.urls) == 4 and info.value.throttled and info.value.attempts == 4
    assert info.value.to_problem().category == "transient"


def test_deadline_stops_waiting_for_a_long_retry_after():
    s = Script(_response(429, headers={"Retry-After": "120"}), OK)
    with pytest.raises(GraphError) as info:
        s.client(deadline=20).get_json("organization")
    assert s.sleeps == [] and info.value.retry_after == 120.0  # a hint for a background job


def test_network_errors_are_retried_then_reported():
    s = Script(requests.ConnectionError("reset"), OK)
    assert s.client().get_json("organization") == {"id": "x"}
    s = Script(*[requests.ReadTimeout("slow")] * 3)
    with pytest.raises(GraphError) as info:
        s.client(max_attempts=3).get_json("organization")
    assert info.value.network and info.value.to_problem().category == "transient"


def test_paging_follows_next_link_on_the_same_host_only():
    base = CLOUD.graph_base + "/v1.0/servicePrincipals/x/appRoleAssignments"
    s = Script(
        _response(200, {"value": [{"n": 1}], "@odata.nextLink": base + "?$skiptoken=2"}),
        _response(429, headers={"Retry-After": "1"}),
        _response(200, {"value": [{"n": 2}, {"n": 3}]}),
    )
    assert s.client().get_all("servicePrincipals/x/appRoleAssignments") == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]
    assert s.urls[1] == s.urls[2] == base + "?$skiptoken=2"
    s = Script(_response(200, {"value": [], "@odata.nextLink": "https://evil.example/next"}))
    with pytest.raises(GraphError, match="another host"):
        s.client().get_all("servicePrincipals/x/appRoleAssignments")


def test_page_limit():
    link = CLOUD.graph_base + "/v1.0/users?$skiptoken=x"
    s = Script(*[_response(200, {"value": [{}], "@odata.nextLink": link})] * 5)
    with pytest.raises(GraphError, match="pages"):
        s.client(max_pages=3).get_all("users")


def test_real_session_refuses_foreign_host_as_graph_error():
    client = GraphClient(http_session(load_cloud_table(None)), CLOUD, "t")
    with pytest.raises(GraphError) as info:
        client.get_json("https://graph.microsoft.com.evil.example/v1.0/x")
    assert info.value.code == "refusedLink"
    assert issubclass(HostNotAllowedError, requests.RequestException)
