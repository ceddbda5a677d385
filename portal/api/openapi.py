"""The OpenAPI 3.1 document, generated from the views' typed models by spectree.

spectree validates each request against its pydantic model before the view runs and each
response after, and builds the document from the same decorators, so the document cannot drift
from the code. What spectree does not derive is added here from code too, never written by
hand: the path parameters' schemas (from the same pydantic types the views check), the problem
responses every operation can give (``application/problem+json``, from ``problems.CODES``), the
headers every response carries, and the bearer scheme with the scopes of ``scopes.SCOPES``.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Flask
from pydantic import TypeAdapter, ValidationError
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData

from portal.api import guest_models, models
from portal.api.auth import requires
from portal.api.problems import CODES, MEDIA_TYPE, ApiProblem, Problem, ValidationIssue
from portal.api.scopes import SCOPES

VERSION = "1.0.0"
_EXTENSION = "portal.api.openapi"


def _validation_problem(req, resp, error, instance, model_adapter) -> None:
    """spectree's hook before the view: a request that fails its model is a problem (400),
    listing where and what, never the value sent."""
    if error is None:
        return
    issues = []
    if isinstance(error, ValidationError):
        for item in error.errors(include_input=False, include_url=False, include_context=False):
            issues.append(ValidationIssue(location=list(item["loc"]), message=item["msg"]))
    raise ApiProblem("invalid_request", "The request does not match its schema.", errors=issues)


spec = SpecTree(
    "flask",
    mode="strict",  # only the API's own views, never the portal's pages
    title="Entra portal host API",
    version=VERSION,
    description=(
        "How a host product manages its customers' connections. Authenticate with an API key "
        "(Authorization: Bearer pk_live_...). Keys are deployment-wide: they act for every "
        "organization by its external id; what a key may do is its scopes."
    ),
    # The document is served by portal.api.meta at /api/v1/openapi.json; spectree's own route
    # and its documentation pages (which load scripts from a CDN) are never registered.
    page_templates={},
    validation_error_status=400,
    validation_error_model=Problem,
    before=_validation_problem,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(
            name="apiKey",
            data=SecuritySchemeData(
                type=SecureType.HTTP,
                scheme="bearer",
                description="An API key from `flask api-key create`. Scopes: "
                + "; ".join(f"{name}: {text}" for name, text in SCOPES.items()),
            ),
        )
    ],
    security={"apiKey": []},
)

#: Path parameter -> the pydantic type its view checks it with.
PATH_PARAMETERS: dict[str, Any] = {
    "external_id": models.ExternalId,
    "connection_id": models.ConnectionId,
    "link_id": guest_models.SetupLinkId,
}
#: The problems every operation may answer with (an operation names others in its own
#: ``Response(HTTP_409=Problem)``).
COMMON_PROBLEMS = (
    "invalid_request",
    "unauthorized",
    "forbidden_scope",
    "not_found",
    "rate_limited",
)
_HEADERS = {
    "X-Request-ID": "This request's id (an incoming safe X-Request-Id is echoed).",
}


def operation(scope: str, operation_id: str, resp: Response, tag: str):
    """A view of the API: a live key with ``scope`` (checked first: an unauthenticated request
    learns nothing about its body), then its request and response models. The scope is also
    the operation's security requirement in the document (OpenAPI 3.1 allows role names for
    http schemes)."""

    def decorator(view):
        validated = spec.validate(
            resp=resp, tags=[tag], operation_id=operation_id, security={"apiKey": [scope]}
        )(view)
        return requires(scope)(validated)

    return decorator


def document(app: Flask) -> dict[str, Any]:
    """The document (built once per app, from spectree's)."""
    cached = app.extensions.get(_EXTENSION)
    if cached is None:
        cached = _complete(copy.deepcopy(spec.spec))
        app.extensions[_EXTENSION] = cached
    return cached


def _complete(doc: dict[str, Any]) -> dict[str, Any]:
    doc["components"]["schemas"]["Problem"] = Problem.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    doc["components"]["schemas"].update(doc["components"]["schemas"]["Problem"].pop("$defs", {}))
    for operations in doc["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in PATH_PARAMETERS:
                    parameter["schema"] = TypeAdapter(
                        PATH_PARAMETERS[parameter["name"]]
                    ).json_schema()
            _problem_responses(operation)
    return doc


def _problem_responses(operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    for code in COMMON_PROBLEMS:
        status, title = CODES[code]
        responses.setdefault(str(status), {"description": title})
    for status, answer in responses.items():
        headers = {name: _header(text) for name, text in _HEADERS.items()}
        if int(status) >= 400:
            answer["content"] = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        if status == "401":
            headers["WWW-Authenticate"] = _header('Bearer realm="portal-api" (RFC 6750).')
        if status == "429":
            headers["Retry-After"] = _header("Seconds to wait.")
        answer["headers"] = headers


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string"}}
