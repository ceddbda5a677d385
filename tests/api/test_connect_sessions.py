"""Connect sessions: minted through the API over HTTP, traded by the portal's frame.

The frame's side is driven here as its script drives it (GET /embed as a frame, then POST
/embed/session with the origin the browser reported); tests/e2e/test_embedding.py does the
same in Chromium through embed.js and postMessage.
"""

from __future__ import annotations

import re
import time

import pytest

from portal import storage
from portal.guests import tokens
from portal.storage import db
from tests.api.test_problems import assert_problem

HOST = "https://host.example"
OTHER = "https://other.example"
PORTAL = "https://portal.example"
_CSRF = re.compile(r'data-csrf="([^"]+)"')


@pytest.fixture
def app_config(app_config):
    return {**app_config, "FRAME_ANCESTORS": [HOST, OTHER], "PUBLIC_URL": PORTAL}


def mint(api, key, **body):
    payload = {
        "organization": "acme-1",
        "end_user": {"id": "u-42", "email": "grace@acme.example", "display_name": "Grace H"},
        "allowed_origins": [HOST],
        **body,
    }
    return api.request("POST", "/api/v1/connect-sessions", key, json=payload)


def frame(app):
    """A browser tab whose frame loaded /embed (https: the cookies are Secure, Partitioned)."""
    browser = app.test_client()
    page = browser.get(
        "/embed",
        base_url=PORTAL,
        headers={"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site"},
    )
    assert page.status_code == 200
    match = _CSRF.search(page.get_data(as_text=True))
    return browser, match.group(1) if match else ""


def trade(browser, csrf, token, origin=HOST):
    return browser.post(
        "/embed/session",
        base_url=PORTAL,
        json={"token": token, "origin": origin},
        headers={"X-CSRFToken": csrf, "Sec-Fetch-Site": "same-origin"},
    )


def test_a_token_is_minted_once_stored_hashed_and_audited(app, api, make_key, host_org):
    answer = mint(api, make_key())
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert tokens.is_token(body["token"], tokens.CONNECT_TOKEN)
    assert body["allowed_origins"] == [HOST] and body["organization"] == "acme-1"
    with app.app_context():
        found = storage.get_connect_session(body["id"])
        assert found.token_hash == tokens.token_hash(body["token"])
        dump = "\n".join(db.get_db().iterdump())
        audit = storage.list_audit_events(org_id=host_org.id)
    assert body["token"] not in dump
    assert [e.action for e in audit] == ["connect_session.create"]
    left = time.mktime(time.strptime(body["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(
        time.gmtime()
    )
    assert 590 <= left <= 601


def test_minting_refuses_what_the_deployment_does_not_allow(
    api, make_key, host_org, make_connection, make_org
):
    key = make_key()
    assert_problem(
        mint(api, key, allowed_origins=["https://evil.example"]), 422, "origin_not_allowed"
    )
    assert_problem(
        mint(api, key, allowed_origins=["https://host.example/path"]), 400, "invalid_request"
    )
    assert_problem(mint(api, key, ttl_seconds=3601), 400, "invalid_request")
    assert_problem(
        mint(api, key, return_url="https://evil.example/back"), 422, "return_url_not_allowed"
    )
    other = make_connection(make_org("Elsewhere"), "customer_owned")
    assert_problem(mint(api, key, connection_id=other.id), 404, "not_found")
    mine = make_connection(host_org, "customer_owned")
    assert_problem(
        mint(api, key, connection_id=mine.id, kind="service_provider"), 422, "kind_mismatch"
    )
    assert_problem(mint(api, make_key("connections:read")), 403, "forbidden_scope")
    assert_problem(mint(api, key, organization="nobody"), 404, "not_found")


def test_the_frame_trades_a_token_once_for_a_session_framed_by_its_origins_only(
    app, api, make_key, host_org, make_connection
):
    connection = make_connection(host_org, "customer_owned", "HR sync")
    token = mint(api, make_key(), connection_id=connection.id).json()["token"]
    browser, csrf = frame(app)
    answer = trade(browser, csrf, token)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["next"] == f"/connections/{connection.id}/setup"
    page = browser.get(answer.json["next"], base_url=PORTAL, headers={"Sec-Fetch-Dest": "iframe"})
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors {HOST};" in csp + ";" and OTHER not in csp
    assert "Grace H" in page.get_data(as_text=True)
    assert f'name="portal-parent-origin" content="{HOST}"' in page.get_data(as_text=True)

    again, csrf2 = frame(app)
    replay = trade(again, csrf2, token)
    assert replay.status_code == 410 and replay.json["error"] == "token_used"


def test_a_token_from_an_origin_it_does_not_allow_is_refused_and_spent(
    app, api, make_key, host_org
):
    token = mint(api, make_key(), allowed_origins=[HOST]).json()["token"]
    browser, csrf = frame(app)
    refused = trade(browser, csrf, token, origin=OTHER)
    assert refused.status_code == 403 and refused.json["error"] == "origin_not_allowed"
    browser, csrf = frame(app)
    assert trade(browser, csrf, token).json["error"] == "token_used"
    with app.app_context():
        actions = [e.action for e in storage.list_audit_events(org_id=host_org.id)]
    assert actions.count("connect_session.refused") == 2


def test_a_token_is_traded_only_in_a_frame_that_loaded_embed(app, api, make_key, host_org):
    token = mint(api, make_key()).json()["token"]
    browser = app.test_client()
    page = browser.get("/embed", base_url=PORTAL, headers={"Sec-Fetch-Dest": "document"})
    assert "opens inside your product" in page.get_data(as_text=True)
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page.get_data(as_text=True)).group(1)
    assert trade(browser, csrf, token).status_code == 403


def test_an_expired_token_is_refused(app, api, make_key, host_org):
    body = mint(api, make_key(), ttl_seconds=30).json()
    with app.app_context():
        db.get_db().execute(
            "UPDATE connect_sessions SET expires_at = '2026-01-01T00:00:00+00:00' WHERE id = ?",
            [body["id"]],
        )
    browser, csrf = frame(app)
    answer = trade(browser, csrf, body["token"])
    assert answer.status_code == 410 and answer.json["error"] == "token_expired"


def embedded(app, api, key, **body):
    token = mint(api, key, **body).json()["token"]
    browser, csrf = frame(app)
    assert trade(browser, csrf, token).status_code == 200
    return browser


def test_the_embedded_user_is_an_admin_of_that_organization_and_nothing_else(
    app, api, make_key, host_org, make_connection, make_org
):
    mine = make_connection(host_org, "service_provider", "Mine")
    theirs = make_connection(make_org("Elsewhere"), "service_provider", "Theirs")
    browser = embedded(app, api, make_key())
    get = lambda path: browser.get(path, base_url=PORTAL)  # noqa: E731
    assert get(f"/connections/{mine.id}").status_code == 200
    assert get(f"/connections/{theirs.id}").status_code == 404
    assert "Mine" in get("/").get_data(as_text=True)
    assert get("/account/security").status_code == 404
    assert get("/support/").status_code in (403, 404)
    assert get("/connections/new").status_code == 200
    # No password: the guest's key is not an address anyone can sign in with.
    with app.app_context():
        guest = storage.get_user_by_email(f"connect-session/{host_org.id}/u-42")
    assert guest is not None and guest.sign_in == "connect_session"
    assert guest.password_hash == storage.NO_PASSWORD


def test_the_embedded_session_ends_after_its_lifetime_with_a_way_back(
    app, api, make_key, host_org, make_connection
):
    mine = make_connection(host_org, "service_provider", "Mine")
    browser = embedded(app, api, make_key())
    with browser.session_transaction(base_url=PORTAL) as session:
        session["signed_in_at"] -= app.config["GUEST_SESSION_MINUTES"] * 60 + 1
    gone = browser.get(f"/connections/{mine.id}", base_url=PORTAL)
    assert gone.status_code == 303 and gone.headers["Location"].endswith("/guest/ended")
    page = browser.get("/guest/ended", base_url=PORTAL)
    assert page.status_code == 401
    assert "open the connection again from your product" in page.get_data(as_text=True)
    again = browser.get(f"/connections/{mine.id}", base_url=PORTAL)
    assert again.headers["Location"].endswith("/guest/ended")
