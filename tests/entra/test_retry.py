"""The retry policy's rules with a scripted ``send`` and a fake clock (no network, no sleeping)."""

from __future__ import annotations

import email.utils
import logging

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from portal.entra.retry import (
    RetryPolicy,
    call_with_retries,
    parse_retry_after,
    replay_of,
    track,
)

WALL = 1_700_000_000.0


def _response(status, headers=None):
    r = requests.Response()
    r.status_code = status
    r._content, r._content_consumed = b"{}", True
    r.headers.update(headers or {})
    return r


class Script:
    """Answers (or raises) from a list; a fake clock that sleeping moves."""

    def __init__(self, *answers, took: float = 0.0):
        self.answers = list(answers)
        self.now = 0.0
        self.took = took
        self.timeouts: list = []
        self.sleeps: list[float] = []

    def send(self, timeout):
        self.timeouts.append(timeout)
        self.now += self.took
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def policy(self, **kw):
        options = {
            "sleep": self.sleep,
            "clock": lambda: self.now,
            "wall_clock": lambda: WALL + self.now,
            "jitter": lambda: 1.0,
        }
        return RetryPolicy(**(options | kw))

    def call(self, timeout=(3.05, 10), replay="always", **kw):
        return call_with_retries(
            self.send,
            timeout=timeout,
            policy=self.policy(**kw),
            replay=replay,
            cloud="sim-global",
            endpoint="token",
        )


def _refused():
    """What requests raises when nothing listens: the connection never opened."""
    reason = NewConnectionError(None, "refused")
    return requests.ConnectionError(MaxRetryError(None, "/", reason))


def _reset_after_send():
    return requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError()))


def test_retry_after_seconds_is_waited_then_the_answer_returned():
    s = Script(_response(429, {"Retry-After": "7"}), _response(200))
    assert s.call().status_code == 200
    assert s.sleeps == [7.0]


def test_retry_after_http_date():
    when = email.utils.formatdate(WALL + 3, usegmt=True)
    s = Script(_response(503, {"Retry-After": when}), _response(200))
    s.call()
    assert s.sleeps == [3.0]


def test_parse_retry_after():
    assert parse_retry_after("12", 0) == 12.0
    assert parse_retry_after(" 2.5 ", 0) == 2.5
    assert parse_retry_after(email.utils.formatdate(10, usegmt=True), 100) == 0.0
    for bad in ("garbage", None, "-3", "nan"):
        assert parse_retry_after(bad, 0) is None
    assert parse_retry_after("99999999", 0) == 3600.0  # capped, as MSAL caps it


def test_without_retry_after_exponential_backoff_with_full_jitter():
    s = Script(_response(504), _response(504), _response(503), _response(200))
    s.call(base_backoff=0.5)
    assert s.sleeps == [0.5, 1.0, 2.0]  # jitter 1.0: the cap of each step
    half = Script(_response(503), _response(200))
    half.call(jitter=lambda: 0.5, base_backoff=0.5)
    assert half.sleeps == [0.25]


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 409, 500])
def test_other_answers_are_final(status):
    s = Script(_response(status))
    assert s.call().status_code == status
    assert s.sleeps == [] and s.answers == []


def test_bounded_attempts_returns_the_last_answer():
    s = Script(*[_response(429, {"Retry-After": "1"}) for _ in range(6)])
    with track() as calls:
        assert s.call(attempts=4).status_code == 429
    assert len(s.timeouts) == 4 and s.sleeps == [1.0, 1.0, 1.0]
    (record,) = calls.calls
    assert (record.attempts, record.status, record.waited, record.retry_after) == (
        4,
        429,
        3.0,
        1.0,
    )


def test_a_retry_after_beyond_the_deadline_is_not_slept():
    s = Script(_response(429, {"Retry-After": "120"}), _response(200))
    with track() as calls:
        assert s.call(deadline=20).status_code == 429
    assert s.sleeps == []
    assert calls.retry_after("sim-global") == 120.0 and calls.retry_after("other") is None


def test_each_attempt_gets_only_the_time_left():
    s = Script(_response(503), _response(503), _response(200), took=4.0)
    s.call(deadline=10, base_backoff=0.5)
    # 10 s in all: the first attempt may use its own read timeout's 10 s; after 4 s + 0.5 s of
    # back-off the second gets 5.5 s, the third (after 4 s + 1 s) 0.5 s.
    assert s.timeouts == [(3.05, 10.0), (3.05, 5.5), (0.5, 0.5)]
    assert s.now <= 10 + 4.0  # the last attempt started within the deadline


def test_no_attempt_is_started_without_time_for_it():
    s = Script(_response(503), _response(200), took=9.9)
    assert s.call(deadline=10).status_code == 503
    assert s.sleeps == []


def test_network_errors_of_a_repeatable_request_are_retried():
    s = Script(_reset_after_send(), requests.ReadTimeout("slow"), _response(200))
    assert s.call().status_code == 200
    s = Script(*[requests.ReadTimeout("slow")] * 3)
    with pytest.raises(requests.ReadTimeout), track() as calls:
        s.call(attempts=3)
    assert calls.calls[0].attempts == 3 and calls.calls[0].error == "ReadTimeout"


def test_a_single_use_request_is_not_repeated_once_it_may_have_arrived():
    # An authorization code is redeemable once: after a reset or a read timeout Microsoft may
    # have redeemed it, and a second POST would only hide that answer behind invalid_grant.
    for error in (_reset_after_send(), requests.ReadTimeout("slow")):
        s = Script(error, _response(200))
        with pytest.raises(type(error)):
            s.call(replay="answered")
        assert len(s.timeouts) == 1
    # Answers saying it was not processed, and connections that never opened, are retried.
    s = Script(_response(429, {"Retry-After": "1"}), _response(503), _refused(), _response(200))
    assert s.call(replay="answered").status_code == 200
    assert len(s.timeouts) == 4
    s = Script(requests.ConnectTimeout("no route"), _response(200))
    assert s.call(replay="answered").status_code == 200
    # A gateway timeout may come after the backend redeemed the code.
    s = Script(_response(504), _response(200))
    assert s.call(replay="answered").status_code == 504


def test_tls_failures_and_refused_hosts_are_never_retried():
    from portal.entra.outbound import HostNotAllowedError

    for error in (requests.exceptions.SSLError("bad cert"), HostNotAllowedError("no")):
        s = Script(error, _response(200))
        with pytest.raises(type(error)):
            s.call()
        assert len(s.timeouts) == 1


def test_which_requests_may_be_repeated():
    assert replay_of("GET", "discovery", None) == "always"
    assert replay_of("get", "graph", None) == "always"
    assert replay_of("POST", "token", {"grant_type": "client_credentials"}) == "always"
    assert replay_of("POST", "token", {"grant_type": "refresh_token"}) == "always"
    assert replay_of("POST", "token", {"grant_type": "authorization_code"}) == "answered"
    assert replay_of("POST", "token", "grant_type=client_credentials") == "answered"
    assert replay_of("POST", "graph", {"x": 1}) == "answered"


def test_each_retry_is_one_warning_without_url_or_tenant(caplog):
    s = Script(_response(429, {"Retry-After": "2"}), requests.ReadTimeout("slow"), _response(200))
    with caplog.at_level(logging.WARNING, logger="portal.outbound"):
        s.call()
    lines = [r.getMessage() for r in caplog.records if r.name == "portal.outbound"]
    assert lines == [
        "outbound retry: cloud sim-global, token endpoint, status 429; attempt 2 of 4 in 2.00 s",
        "outbound retry: cloud sim-global, token endpoint, ReadTimeout; attempt 3 of 4 in 1.00 s",
    ]


def test_trackers_see_calls_of_their_block_and_of_context_pool_tasks():
    from portal.entra.retry import ContextPool

    def one_call(status):
        Script(_response(status)).call()

    with track() as outer:
        one_call(200)
        with track() as inner, ContextPool(2) as pool:
            list(f.result() for f in [pool.submit(one_call, 201), pool.submit(one_call, 202)])
    assert sorted(c.status for c in inner.calls) == [201, 202]
    assert sorted(c.status for c in outer.calls) == [200, 201, 202]
    assert outer.attempts == 3 and outer.waited == 0


def test_the_app_settings_make_the_cloud_tables_policy(app_config):
    from portal import create_app
    from portal.config import ConfigError
    from portal.services import cloud_table

    app_config.update(OUTBOUND_ATTEMPTS=2, OUTBOUND_DEADLINE_SECONDS=3, OUTBOUND_BACKOFF_SECONDS=0)
    app = create_app(app_config)
    with app.app_context():
        policy = cloud_table().retry
    assert (policy.attempts, policy.deadline, policy.base_backoff) == (2, 3.0, 0.0)
    for bad in ({"OUTBOUND_ATTEMPTS": 0}, {"OUTBOUND_DEADLINE_SECONDS": 30}):
        with pytest.raises(ConfigError):
            create_app(app_config | bad)


def test_retry_settings_from_the_environment_are_numbers():
    from portal.config import _from_environment

    values = _from_environment({"PORTAL_OUTBOUND_DEADLINE_SECONDS": "2.5"})
    assert values == {"OUTBOUND_DEADLINE_SECONDS": 2.5}
