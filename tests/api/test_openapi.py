"""The OpenAPI document: 3.1, served without a key, and it documents every API route."""

from __future__ import annotations

import re

from portal.api.problems import MEDIA_TYPE
from portal.api.scopes import SCOPES


def test_the_document_describes_every_route_of_the_api(app, api):
    answer = api.request("GET", "/api/v1/openapi.json")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    doc = answer.json()
    assert doc["openapi"].startswith("3.1") and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["apiKey"]["description"],
    }
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint != "api.openapi_document"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == routes and len(routes) == 9
    for ops in doc["paths"].values():
        for operation in ops.values():
            (requirement,) = operation["security"]
            assert set(requirement["apiKey"]) <= set(SCOPES)
            for status in ("400", "401", "403", "404", "429"):
                content = operation["responses"][status]["content"]
                assert list(content) == [MEDIA_TYPE]
            assert operation["operationId"][0].islower() and operation["summary"]
