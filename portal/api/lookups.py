"""Finding what a request names, checked before SQL: an organization by external id, a
connection by id. What the host did not name is not found (404), whatever exists."""

from __future__ import annotations

import re

from portal import storage
from portal.api.models import CONNECTION_ID_PATTERN, EXTERNAL_ID_PATTERN
from portal.api.problems import ApiProblem, ValidationIssue

_EXTERNAL_ID = re.compile(EXTERNAL_ID_PATTERN)
_CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)


def _invalid(name: str, what: str) -> ApiProblem:
    return ApiProblem(
        "invalid_request",
        f"{name} is not valid.",
        errors=[ValidationIssue(location=["path", name], message=what)],
    )


def external_id(value: str) -> str:
    if not _EXTERNAL_ID.fullmatch(value):
        raise _invalid(
            "external_id",
            "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def organization(value: str) -> storage.Organization:
    org = storage.get_organization_by_external_id(external_id(value))
    if org is None:
        raise ApiProblem("not_found", "There is no organization with this external id.")
    return org


def is_connection_id(value: str) -> bool:
    return bool(_CONNECTION_ID.fullmatch(value))


def connection(value: str) -> tuple[storage.Connection, storage.Organization]:
    """A live connection of an organization the host named; 404 for anything else (unknown,
    deleted, or of an organization the host API does not manage)."""
    if not _CONNECTION_ID.fullmatch(value):
        raise _invalid("connection_id", "32 lower-case hexadecimal characters")
    found = storage.get_connection(value)
    org = storage.get_organization(found.org_id) if found and not found.deleted else None
    if found is None or org is None or org.external_id is None:
        raise ApiProblem("not_found", "There is no connection with this id.")
    return found, org


def api_key_detail(key: storage.ApiKey) -> dict:
    """How an audit row names the API key that acted (its public id and name, never more)."""
    return {"key_id": key.key_id, "name": key.name}
