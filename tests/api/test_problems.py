"""Errors are RFC 9457 problem documents with a stable code, on every kind of failure."""

from __future__ import annotations

from portal.api.problems import CODES, TYPE_BASE

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}


def assert_problem(answer, status: int, code: str) -> dict:
    """``answer`` is the problem ``code`` with ``status``, in RFC 9457's shape."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    body = answer.json()
    assert PROBLEM_FIELDS <= set(body) <= PROBLEM_FIELDS | {"errors"}
    assert body["status"] == status and body["code"] == code
    assert body["type"] == TYPE_BASE + code and body["title"] == CODES[code][1]
    assert body["request_id"] == answer.headers["X-Request-ID"]
    return body


def test_routing_errors_are_problems_too(api, make_key):
    key = make_key()
    assert_problem(api.request("GET", "/api/v1/nothing-here", key), 404, "not_found")
    assert_problem(api.request("GET", "/api/v2/organizations/a", key), 404, "not_found")
    wrong = api.request("POST", "/api/v1/organizations/acme-1", key)
    assert_problem(wrong, 405, "method_not_allowed")
    assert set(wrong.headers["Allow"].split(", ")) >= {"GET", "PUT"}


def test_an_invalid_body_lists_where_and_what_never_the_value(api, make_key):
    key = make_key()
    secret_looking = "x" * 300
    answer = api.request(
        "PUT", "/api/v1/organizations/acme-1", key, json={"name": secret_looking, "extra": 1}
    )
    body = assert_problem(answer, 400, "invalid_request")
    assert {tuple(e["location"]) for e in body["errors"]} == {("name",), ("extra",)}
    assert secret_looking not in answer.text
    not_json = api.request(
        "PUT",
        "/api/v1/organizations/acme-1",
        key,
        data="name=x",
        headers={"Content-Type": "text/plain"},
    )
    assert_problem(not_json, 400, "invalid_request")


def test_too_large_and_the_api_never_answers_html(api, make_key):
    key = make_key()
    big = api.request(
        "PUT",
        "/api/v1/organizations/acme-1",
        key,
        data=b"{" * (1024 * 1024 + 10),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(big, 413, "payload_too_large")


def test_the_html_pages_keep_their_own_errors(client):
    """Only /api answers with problems: the portal's pages are unchanged."""
    answer = client.get("/no-such-page")
    assert answer.status_code == 404 and answer.mimetype == "text/html"
