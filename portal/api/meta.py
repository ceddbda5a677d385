"""``GET /api/v1/openapi.json``: the document, public (it describes, it holds nothing)."""

from __future__ import annotations

from flask import current_app

from portal.api import bp
from portal.api.boundary import adopt_request_id
from portal.api.openapi import document


@bp.get("/openapi.json")
def openapi_document():
    adopt_request_id()
    return current_app.json.response(document(current_app))
