"""Errors of the host API as RFC 9457 problem details (``application/problem+json``).

Every error carries a stable ``code`` (what a client's code branches on; the ``title`` and
``detail`` are for people and may change), a ``type`` URI built from it and the request id.
The ``type`` is a tag URI (RFC 4151), which RFC 9457 section 3.1.1 names for problem types that
are identifiers, not documents to fetch: it is the same on every deployment.
https://www.rfc-editor.org/rfc/rfc9457
"""

from __future__ import annotations

import logging
from typing import Literal

from flask import Response, current_app, g, request
from pydantic import BaseModel, Field
from werkzeug.exceptions import HTTPException

log = logging.getLogger("portal.api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "tag:entra-portal,2026:problems/"

ProblemCode = Literal[
    "invalid_request",
    "unauthorized",
    "forbidden_scope",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "rate_limited",
    "internal_error",
    "origin_not_allowed",
    "kind_mismatch",
    "return_url_not_allowed",
]

#: code -> (status, title). Titles are fixed per code (RFC 9457 section 3.1.3).
CODES: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "The request is not valid"),
    "unauthorized": (401, "A valid API key is required"),
    "forbidden_scope": (403, "The API key lacks the scope for this"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "payload_too_large": (413, "The request is too large"),
    "rate_limited": (429, "Too many requests"),
    "internal_error": (500, "Something went wrong"),
    "origin_not_allowed": (422, "The origin may not frame the portal"),
    "kind_mismatch": (422, "The kind does not match the connection"),
    "return_url_not_allowed": (422, "The return URL is not on an allowed origin"),
}
_CODE_BY_STATUS = {status: code for code, (status, _title) in CODES.items()}


class ValidationIssue(BaseModel):
    """One thing wrong with the request: where, and what (never the value sent)."""

    location: list[str | int]
    message: str


class Problem(BaseModel):
    """An error (RFC 9457)."""

    type: str = Field(description="A URI naming the problem type: tag:...:problems/<code>.")
    title: str
    status: int
    detail: str
    code: ProblemCode
    request_id: str = Field(description="Also in the X-Request-ID header; quote it to support.")
    errors: list[ValidationIssue] | None = None


class ApiProblem(Exception):
    """Raised anywhere under /api: answered as a problem document."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: list[ValidationIssue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.errors = code, detail, errors
        self.headers = headers or {}


def response(problem: ApiProblem) -> Response:
    status, title = CODES[problem.code]
    body = Problem(
        type=TYPE_BASE + problem.code,
        title=title,
        status=status,
        detail=problem.detail,
        code=problem.code,  # type: ignore[arg-type]  # a key of CODES, which mirrors ProblemCode
        request_id=g.get("request_id", "-"),
        errors=problem.errors,
    )
    answer = current_app.response_class(
        body.model_dump_json(exclude_none=True), status=status, mimetype=MEDIA_TYPE
    )
    answer.headers.update(problem.headers)
    return answer


def from_http_error(error: HTTPException) -> ApiProblem:
    """Werkzeug's and Flask's own errors (routing, too large, CSRF, flask-limiter) as problems."""
    status = error.code or 500
    code = _CODE_BY_STATUS.get(status, "invalid_request" if status < 500 else "internal_error")
    headers = {}
    if status == 405:
        allowed = getattr(error, "valid_methods", None) or []
        headers["Allow"] = ", ".join(sorted(allowed))
    detail = {
        404: "There is no such resource.",
        405: f"{request.method} is not allowed here.",
        413: "The request body is too large.",
        429: "Too many requests with this API key; wait and retry.",
    }.get(status, "The request could not be handled.")
    return ApiProblem(code, detail, headers=headers)


def handle_problem(error: ApiProblem) -> Response:
    return response(error)


def handle_http_error(error: HTTPException) -> Response:
    return response(from_http_error(error))


def handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return handle_http_error(error)
    if current_app.testing:
        raise error
    log.exception("unhandled error on %s %s", request.method, request.path)
    return response(ApiProblem("internal_error", "We have been told. Please retry later."))
