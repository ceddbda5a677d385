"""Setup links: made through the API (or the connection page), opened by the IT admin at top
level, limited to one connection, ended by revocation, expiry or the connection being linked."""

from __future__ import annotations

import re

import pytest

from portal import storage
from portal.guests import tokens
from portal.storage import db
from tests.api.test_problems import assert_problem
from tests.conftest import csrf_token
from tests.seeding import set_columns

PORTAL = "https://portal.example"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "PUBLIC_URL": PORTAL}


def make_link(api, key, **body):
    return api.request("POST", "/api/v1/setup-links", key, json={"organization": "acme-1", **body})


def page_csrf(browser, path: str) -> str:
    html = browser.get(path, base_url=PORTAL).get_data(as_text=True)
    return re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)


def visit(app, url):
    """The IT admin opens the link and clicks Continue; returns (browser, answer)."""
    browser = app.test_client()
    path = url.removeprefix(PORTAL)
    landing = browser.get(path, base_url=PORTAL)
    if landing.status_code != 200:
        return browser, landing
    html = landing.get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    answer = browser.post(
        "/setup",
        base_url=PORTAL,
        data={"token": token, "csrf_token": csrf},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    return browser, answer


def test_a_link_for_a_new_connection_opens_its_setup_and_nothing_else(
    app, api, make_key, host_org, make_connection, caplog
):
    answer = make_link(api, make_key(), kind="customer_owned", display_name="Payroll sync")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["url"].startswith(PORTAL + "/setup/slt_")
    connection_id = body["connection_id"]
    other = make_connection(host_org, "customer_owned", "Other one")

    landing = app.test_client().get(body["url"].removeprefix(PORTAL), base_url=PORTAL)
    assert landing.status_code == 200
    assert "Payroll sync" in landing.get_data(as_text=True)
    assert landing.headers["Referrer-Policy"] == "no-referrer"
    with app.app_context():
        assert storage.get_setup_link(body["id"]).uses == 0  # a GET (a mail scanner) does nothing

    browser, opened = visit(app, body["url"])
    assert opened.status_code == 303
    assert opened.headers["Location"].endswith(f"/connections/{connection_id}/setup")
    get = lambda path: browser.get(path, base_url=PORTAL)  # noqa: E731
    assert get(f"/connections/{connection_id}/setup").status_code == 200
    assert get(f"/connections/{other.id}").status_code == 404
    assert get("/").headers["Location"].endswith(f"/connections/{connection_id}")
    assert get("/connections/new").status_code == 403
    assert get("/account/security").status_code == 404
    delete = browser.post(
        f"/connections/{connection_id}/delete",
        base_url=PORTAL,
        headers={
            "X-CSRFToken": page_csrf(browser, f"/connections/{connection_id}"),
            "Sec-Fetch-Site": "same-origin",
        },
    )
    assert delete.status_code == 403
    with app.app_context():
        link = storage.get_setup_link(body["id"])
        actions = [e.action for e in storage.list_audit_events(org_id=host_org.id)]
        dump = "\n".join(db.get_db().iterdump())
    assert link.uses == 1 and link.user_id is not None
    assert "setup_link.create" in actions and "setup_link.use" in actions
    token = body["url"].rsplit("/", 1)[1]
    assert token not in dump  # only the hash is stored
    assert "/setup/slt_[redacted]" in caplog.text and token not in caplog.text


def test_a_revoked_link_is_refused_and_ends_the_session_it_started(app, api, make_key, host_org):
    key = make_key()
    body = make_link(api, key, kind="service_provider").json()
    browser, _opened = visit(app, body["url"])
    page = f"/connections/{body['connection_id']}"
    assert browser.get(page, base_url=PORTAL).status_code == 200

    revoked = api.request("DELETE", f"/api/v1/setup-links/{body['id']}", key)
    assert (
        revoked.status_code == 200
        and revoked.json()["revoked_at"]
        and revoked.json()["url"] is None
    )
    ended = browser.get(page, base_url=PORTAL)
    assert ended.status_code == 303 and ended.headers["Location"].endswith("/guest/ended")
    ended_page = browser.get("/guest/ended", base_url=PORTAL).get_data(as_text=True)
    assert "Open the link from your email again" in ended_page
    assert 'href="/login"' in ended_page  # no dead end for someone with an account
    assert browser.get("/login", base_url=PORTAL).status_code == 200
    _browser, refused = visit(app, body["url"])
    assert refused.status_code == 410
    assert "withdrawn" in refused.get_data(as_text=True)
    assert api.request("DELETE", f"/api/v1/setup-links/{body['id']}", key).status_code == 200


def test_a_link_is_spent_once_the_connection_is_linked(
    app, api, make_key, host_org, make_connection
):
    connection = make_connection(host_org, "service_provider", "Mine")
    body = make_link(api, make_key(), connection_id=connection.id).json()
    browser, _ = visit(app, body["url"])
    with app.app_context():
        set_columns(connection.id, state="connected", health="healthy")
    page = browser.get(f"/connections/{connection.id}", base_url=PORTAL)
    assert page.status_code == 200  # the visitor still sees what they did
    check = browser.post(
        f"/connections/{connection.id}/check",
        base_url=PORTAL,
        headers={
            "X-CSRFToken": page_csrf(browser, f"/connections/{connection.id}"),
            "Sec-Fetch-Site": "same-origin",
        },
    )
    assert check.status_code == 403  # but changes nothing more
    _browser, again = visit(app, body["url"])
    assert again.status_code == 410 and "nothing left to do" in again.get_data(as_text=True)
    read = make_key("setup_links:write")
    assert api.request("GET", f"/api/v1/setup-links/{body['id']}", read).json()["spent_at"]


def test_an_expired_link_is_refused(app, api, make_key, host_org):
    body = make_link(api, make_key(), kind="customer_owned").json()
    with app.app_context():
        db.get_db().execute(
            "UPDATE setup_links SET expires_at = '2026-01-01T00:00:00+00:00' WHERE id = ?",
            [body["id"]],
        )
    _browser, refused = visit(app, body["url"])
    assert refused.status_code == 410 and "expired" in refused.get_data(as_text=True)


def test_the_api_checks_what_a_link_names(api, make_key, host_org, make_connection, make_org):
    key = make_key()
    assert_problem(make_link(api, key), 400, "invalid_request")
    other = make_connection(make_org("Elsewhere"), "customer_owned")
    assert_problem(make_link(api, key, connection_id=other.id), 404, "not_found")
    assert_problem(make_link(api, key, kind="customer_owned", ttl_days=31), 400, "invalid_request")
    assert_problem(
        make_link(api, make_key("sessions:write"), kind="customer_owned"), 403, "forbidden_scope"
    )
    assert_problem(api.request("GET", "/api/v1/setup-links/sl_nope", key), 400, "invalid_request")
    assert_problem(
        api.request("DELETE", "/api/v1/setup-links/" + tokens.new_id(tokens.SETUP_ID), key),
        404,
        "not_found",
    )


def test_an_admin_makes_copies_and_revokes_a_link_on_the_connection_page(
    app, admin_a, org_a, make_connection, login
):
    connection = make_connection(org_a, "service_provider", "Mine")
    browser = login(admin_a)
    page = browser.get(f"/connections/{connection.id}").get_data(as_text=True)
    assert f"/connections/{connection.id}/setup-links" in page
    csrf = csrf_token(browser, f"/connections/{connection.id}")
    made = browser.post(
        f"/connections/{connection.id}/setup-links",
        data={"days": "3"},
        headers={"X-CSRFToken": csrf, "HX-Request": "true"},
    )
    html = made.get_data(as_text=True)
    assert made.status_code == 200
    url = re.search(r'id="setup-link-url" class="copyable">([^<]+)<', html).group(1)
    assert url.startswith(app.config["PUBLIC_URL"] + "/setup/slt_")
    assert 'data-copy="#setup-link-url"' in html
    region = browser.get(f"/connections/{connection.id}/setup-links").get_data(as_text=True)
    assert url not in region  # shown once
    link_id = re.search(r"setup-links/(sl_[0-9a-f]{24})/revoke", region).group(1)
    bad = browser.post(
        f"/connections/{connection.id}/setup-links",
        data={"days": "99"},
        headers={"X-CSRFToken": csrf, "HX-Request": "true"},
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.get_data(as_text=True)
    browser.post(
        f"/connections/{connection.id}/setup-links/{link_id}/revoke",
        headers={"X-CSRFToken": csrf, "HX-Request": "true"},
    )
    with app.app_context():
        assert storage.get_setup_link(link_id).revoked_at is not None
