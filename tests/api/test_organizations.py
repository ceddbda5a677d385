"""Organizations by the host's external id: PUT creates or renames (idempotent), GET reads."""

from __future__ import annotations

import pytest

from portal import storage
from tests.api.test_problems import assert_problem


def put(api, key, external_id, name):
    return api.request("PUT", f"/api/v1/organizations/{external_id}", key, json={"name": name})


def test_put_creates_then_is_idempotent_then_renames(app, api, make_key):
    key = make_key("connections:read", "connections:write", name="Host prod")
    created = put(api, key, "acme-1", "Acme")
    assert created.status_code == 201, created.text
    assert created.json() == {
        "external_id": "acme-1",
        "name": "Acme",
        "created_at": created.json()["created_at"],
    }
    assert put(api, key, "acme-1", "Acme").status_code == 200
    renamed = put(api, key, "acme-1", "Acme Group")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Acme Group"
    read = api.request("GET", "/api/v1/organizations/acme-1", key)
    assert read.status_code == 200 and read.json() == renamed.json()
    with app.app_context():
        assert [o.name for o in storage.list_organizations()] == ["Acme Group"]
        events = storage.list_audit_events()
    assert [e.action for e in events] == [
        "organization.rename",
        "organization.create",
        "api_key.create",
    ]
    assert events[0].detail["previous_name"] == "Acme"
    assert events[0].detail["api_key"] == {"key_id": key.split("_")[2], "name": "Host prod"}
    assert events[0].actor_user_id is None


def test_a_name_another_organization_has_is_a_conflict(api, make_key, org_a):
    key = make_key()
    assert_problem(put(api, key, "acme-1", org_a.name), 409, "conflict")
    assert put(api, key, "acme-1", "Acme").status_code == 201
    assert_problem(put(api, key, "acme-1", org_a.name), 409, "conflict")


def test_an_organization_the_host_did_not_name_is_not_found(api, make_key, org_a):
    key = make_key()
    assert_problem(api.request("GET", "/api/v1/organizations/1", key), 404, "not_found")
    assert_problem(api.request("GET", f"/api/v1/organizations/{org_a.name}", key), 404, "not_found")


@pytest.mark.parametrize(
    "external_id",
    ["-leading-dash", ".hidden", "a" * 65, "with%20space", "%C3%A9t%C3%A9", "a%2Fb", "a;b", "%00"],
)
def test_an_external_id_outside_the_charset_or_length_is_refused(api, make_key, external_id):
    key = make_key()
    answer = api.request("GET", f"/api/v1/organizations/{external_id}", key)
    if answer.status_code == 404:  # '/' splits the path: no such route at all
        assert_problem(answer, 404, "not_found")
        assert external_id == "a%2Fb"
        return
    body = assert_problem(answer, 400, "invalid_request")
    assert body["errors"][0]["location"] == ["path", "external_id"]
    assert_problem(put(api, key, external_id, "Acme"), 400, "invalid_request")


@pytest.mark.parametrize("external_id", ["a", "A" * 64, "cust_42.eu-west", "0"])
def test_external_ids_inside_the_rules_work(api, make_key, external_id):
    key = make_key()
    assert put(api, key, external_id, f"Org {external_id}").status_code == 201
    answer = api.request("GET", f"/api/v1/organizations/{external_id}", key)
    assert answer.status_code == 200 and answer.json()["external_id"] == external_id


@pytest.mark.parametrize("name", ["", " Acme", "Acme ", "Ac\nme", "a" * 201])
def test_names_are_checked(api, make_key, name):
    assert_problem(put(api, make_key(), "acme-1", name), 400, "invalid_request")
