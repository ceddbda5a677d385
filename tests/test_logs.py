"""Logging: request ids, one line per request, JSON lines, and no secret in any log."""

import io
import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal import logs, storage
from tests.conftest import login_as

CANARY = "CANARYc4n4ry7e5t"
CANARY_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJjYW5hcnkiOiJDQU5BUlkifQ.c2lnbmF0dXJlQ0FOQVJZ"
CANARY_PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEv" + CANARY + "QIBADANBgkqhkiG9w0BAQEFAASC\n"
    "-----END PRIVATE KEY-----\n"
)
TOKEN_CACHE = json.dumps(
    {
        "AccessToken": {"k": {"secret": CANARY + "-at", "credential_type": "AccessToken"}},
        "RefreshToken": {"k": {"secret": CANARY + "-rt", "credential_type": "RefreshToken"}},
        "IdToken": {"k": {"secret": CANARY_JWT}},
    }
)


@pytest.fixture
def captured(app):
    """Everything the portal's own handler would print, plus caplog (all loggers, DEBUG)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ScrubFilter())
    handler.setFormatter(logs.TextFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def plant_canaries(app, client, admin):
    """Secrets travel through the places they would in real life."""
    with app.app_context():
        org = storage.create_organization("Canary Org")
        connection = storage.create_connection(org.id, "service_provider")
        storage.put_secret("connections", connection.id, "token_cache", TOKEN_CACHE.encode())
        storage.add_certificate(
            connection.id,
            cert_pem="c",
            thumbprint_sha1="a",
            thumbprint_sha256="b",
            subject="s",
            not_before="n",
            not_after="n",
            private_key_pem=CANARY_PEM.encode(),
        )
    msal_log = logging.getLogger("msal.token_cache")
    msal_log.debug("token cache after response: %s", TOKEN_CACHE)
    logging.getLogger("msal.application").debug(
        "POST body: grant_type=refresh_token&refresh_token=%s&client_assertion=%s"
        "&client_assertion_type=jwt-bearer",
        CANARY + "rt2",
        CANARY_JWT,
    )
    logging.getLogger("urllib3.connectionpool").debug(
        'https://login.example:443 "GET /callback?code=%s&state=abc HTTP/1.1" 200 12',
        CANARY + "code",
    )
    logging.getLogger("portal.test").info(
        "headers: %s", {"Authorization": f"Bearer {CANARY}bearer"}
    )
    logging.getLogger("portal.test").warning("key material:\n%s", CANARY_PEM)
    try:
        raise ValueError(f"exchange failed for refresh_token={CANARY}exc")
    except ValueError:
        logging.getLogger("portal.test").exception("refresh failed")
    client.get(
        f"/login?code={CANARY}query&next=/",
        headers={"Authorization": f"Bearer {CANARY}hdr", "Cookie": f"session={CANARY}cookie"},
    )
    login_as(client, admin.email, CANARY + "password")


def test_canaries_never_reach_a_log(app, client, admin_a, captured, caplog):
    caplog.set_level(logging.DEBUG)
    plant_canaries(app, client, admin_a)
    text = captured.getvalue()
    assert "refresh failed" in text and "GET /login 200" in text
    for output in (text, caplog.text, "\n".join(r.getMessage() for r in caplog.records)):
        assert CANARY not in output
        assert CANARY_JWT not in output
        assert "BEGIN PRIVATE KEY" not in output or "[redacted PEM]" in output


def test_canaries_never_reach_the_database_files(app, client, admin_a):
    from portal.storage import db

    holder = db.open_db(app.config["DATABASE"])  # keeps the -wal file from being checkpointed away
    plant_canaries(app, client, admin_a)
    db_path = Path(app.config["DATABASE"])
    files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
    assert any(p.name.endswith("-wal") and p.stat().st_size > 0 for p in files)
    for path in files:
        data = path.read_bytes()
        assert CANARY.encode() not in data, path
        assert CANARY_JWT.encode() not in data, path
    holder.conn.close()


@pytest.mark.parametrize(
    "text, hidden",
    [
        ('{"refresh_token": "abc123"}', "abc123"),
        ("{'client_secret': 'abc123'}", "abc123"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("grant_type=authorization_code&code=abc123&code_verifier=xyz789", "abc123"),
        ("grant_type=authorization_code&code=abc123&code_verifier=xyz789", "xyz789"),
        ("password=hunter2hunter2", "hunter2"),
        ("client_assertion=eyJhbGciOiJ9.eyJzdWIiOiJ9.sig", "eyJhbGciOiJ9"),
    ],
)
def test_scrub(text, hidden):
    assert hidden not in logs.scrub(text)


def test_scrub_keeps_harmless_text():
    text = "GET /connections/abc 200 status_code=200 tokens_seen=0"
    assert logs.scrub(text) == text


def test_one_line_per_request_with_request_id(client, captured):
    response = client.get("/login")
    request_id = response.headers["X-Request-ID"]
    lines = [line for line in captured.getvalue().splitlines() if "portal.request" in line]
    assert len(lines) == 1
    assert f"[{request_id}]" in lines[0] and "GET /login 200" in lines[0]


def test_user_input_cannot_forge_log_lines(client, captured):
    client.get("/nothing%0d%0aINFO forged line")
    request_lines = [line for line in captured.getvalue().splitlines() if "portal.request" in line]
    assert len(request_lines) == 1
    assert "\\r\\nINFO forged line" in request_lines[0]


def test_json_lines(app_config):
    from portal import create_app

    app_config["LOG_FORMAT"] = "json"
    app = create_app(app_config)
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_portal_handler", False))
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    try:
        response = app.test_client().get("/login?code=" + CANARY)
    finally:
        handler.setStream(old_stream)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    request_record = next(r for r in records if r["logger"] == "portal.request")
    assert request_record["request_id"] == response.headers["X-Request-ID"]
    assert request_record["status"] == 200 and request_record["path"] == "/login"
    assert CANARY not in stream.getvalue()


def test_production_writes_json_lines_by_default(app_config, monkeypatch):
    from portal import create_app

    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    app_config.update(ENV="production", PUBLIC_URL="https://portal.example")
    assert "LOG_FORMAT" not in app_config
    app = create_app(app_config)
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_portal_handler", False))
    assert isinstance(handler.formatter, logs.JsonFormatter)
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    try:
        response = app.test_client().get("/healthz")
    finally:
        handler.setStream(old_stream)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    request_record = next(r for r in records if r["logger"] == "portal.request")
    assert request_record["request_id"] == response.headers["X-Request-ID"]
    assert request_record["path"] == "/healthz"


def test_development_writes_text_lines_by_default(app):
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_portal_handler", False))
    assert isinstance(handler.formatter, logs.TextFormatter)


_FRAGMENTS = st.sampled_from(
    [
        "Bearer ",
        "basic ",
        "-----BEGIN PRIVATE KEY-----",
        "-----END PRIVATE KEY-----",
        "eyJ",
        "eyJhbGciOi.eyJzdWIi.sig",
        "code=",
        "token",
        "Token=",
        "SECRET",
        '"refresh_token": "',
        "'client_secret': '",
        "Authorization: ",
        "\nCookie: ",
        "password=",
        "session",
        "=",
        ":",
        '"',
        "'",
        " ",
        "&",
        "\n",
        "abc123",
        "GET /connections/x 200 1.2ms user=7",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=12).map("".join))
def test_scrub_fast_path_never_skips_a_substitution(text):
    """Scrubbing with the cheap pre-check equals running every pattern."""
    full = text
    for pattern, replacement in logs._PATTERNS:
        full = pattern.sub(replacement, full)
    assert logs.scrub(text) == full
