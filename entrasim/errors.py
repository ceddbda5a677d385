"""Entra error bodies, shaped like the real service's.

Token and discovery errors: JSON with `error`, `error_description` (starting `AADSTSnnnnn:` and
ending with the Trace ID / Correlation ID / Timestamp lines), `error_codes`, `timestamp`,
`trace_id`, `correlation_id`, `error_uri`; HTTP 400, or 401 for `invalid_client`.
https://learn.microsoft.com/entra/identity-platform/reference-error-codes
Graph errors: `{"error": {"code", "message", "innerError": {...}}}`.
https://learn.microsoft.com/graph/errors
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import jsonify, request


def utc_stamp(at: float) -> str:
    """Entra's timestamp format: `2016-01-09 02:02:12Z`."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def aadsts_body(error: str, code: int, message: str, now: float, login_base: str) -> dict:
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    stamp = utc_stamp(now)
    return {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{login_base}/error?code={code}",
    }


class AADSTSError(Exception):
    """Raised inside identity views; rendered as the JSON error body by the blueprint."""

    def __init__(self, error: str, code: int, message: str, status: int | None = None):
        super().__init__(f"AADSTS{code}: {message}")
        self.error = error
        self.code = code
        self.message = message
        self.status = status or (401 if error == "invalid_client" else 400)

    def response(self, now: float, login_base: str):
        resp = jsonify(aadsts_body(self.error, self.code, self.message, now, login_base))
        resp.status_code = self.status
        return resp


def graph_error(status: int, code: str, message: str, now: float):
    resp = jsonify(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": iso(now),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": request.headers.get("client-request-id")
                    or str(uuid.uuid4()),
                },
            }
        }
    )
    resp.status_code = status
    return resp
