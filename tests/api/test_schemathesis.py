"""Generated requests against the live API, from its own OpenAPI document (schemathesis).

Each operation gets a bounded number of examples, valid and invalid (CI stays fast). Every
request carries a valid key with every scope, and every response must be no 5xx and match the
document: status, content type, headers and body schema. Random ids almost never name something
that exists, so half of the schema-valid ones are replaced by a seeded organization's and
connection's, and the 200 answers are checked too.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from portal.api.models import CONNECTION_ID_PATTERN, EXTERNAL_ID_PATTERN

EXAMPLES_PER_OPERATION = 25
CHECKS = "not_a_server_error response_schema_conformance status_code_conformance"
CHECKS += " content_type_conformance response_headers_conformance"


@pytest.fixture
def seeded(host_org, seed_connection, make_key):
    connection = seed_connection(host_org)
    return {"external_id": "acme-1", "connection_id": connection.id, "key": make_key()}


def _aim(parameters: dict, seeded: dict) -> None:
    for name, pattern, first in (
        ("external_id", EXTERNAL_ID_PATTERN, "abcdefghijklm"),
        ("connection_id", CONNECTION_ID_PATTERN, "01234567"),
    ):
        value = parameters.get(name)
        if isinstance(value, str) and re.fullmatch(pattern, value) and value[0] in first:
            parameters[name] = seeded[name]


def test_generated_requests_get_documented_answers(live, seeded):
    # Each operation in turn through schemathesis' strategies (its pytest loader needs a
    # pytest older than ours); the seeded state is shared, as a host's would be.
    schema = schemathesis.openapi.from_url(f"{live}/api/v1/openapi.json", timeout=10)
    checks = [getattr(schemathesis.checks, name) for name in CHECKS.split()]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")  # delete last
    runs = [(op, mode) for op in operations for mode in GenerationMode]

    for operation, mode in runs:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            if case.path_parameters:
                _aim(case.path_parameters, seeded)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {seeded['key']}"}, checks=checks
            )

        run()
