"""Sign-in, sign-out, rate limits, redirect targets, and the account CLI."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal import storage
from tests.conftest import TEST_PASSWORD, csrf_token, login_as


def test_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b'name="password"' in response.data
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_home_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/")


def test_login_success_regenerates_session_and_logout_ends_it(client, admin_a):
    csrf_token(client)
    before = client.get_cookie("session").value
    response = login_as(client, admin_a.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    after = client.get_cookie("session").value
    assert after != before
    assert client.get("/").status_code == 200
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302
    # Replaying the old cookie after sign-out does not bring the session back.
    client.set_cookie("session", after)
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_in_plain_words(client, admin_a):
    response = login_as(client, admin_a.email, "wrong password")
    assert response.status_code == 200
    assert b"The email or password is not right." in response.data
    assert client.get("/").status_code == 302


def test_unknown_account_gets_the_same_answer(client):
    response = login_as(client, "nobody@example.com", "whatever")
    assert b"The email or password is not right." in response.data


def test_logout_needs_post_and_csrf(client_a):
    assert client_a.get("/logout").status_code == 405
    assert client_a.post("/logout").status_code == 400
    assert client_a.get("/").status_code == 200


def test_failures_slow_down_that_account_from_that_address(app, client, admin_a, monkeypatch):
    import time

    start = time.time()
    monkeypatch.setattr(time, "time", lambda: start)
    for _ in range(app.config["LOGIN_FREE_FAILURES"] - 1):
        assert login_as(client, admin_a.email, "bad").status_code == 200
    response = login_as(client, admin_a.email, "bad")
    assert response.status_code == 429
    assert b"Too many failed sign-ins. Try again in 30 seconds." in response.data
    assert response.headers["Retry-After"] == "30"
    # While the pause lasts even the right password is refused from this address...
    assert login_as(client, admin_a.email, TEST_PASSWORD).status_code == 429
    # ...and each further failure doubles it.
    monkeypatch.setattr(time, "time", lambda: start + 31)
    response = login_as(client, admin_a.email, "bad")
    assert response.status_code == 429 and response.headers["Retry-After"] == "60"
    monkeypatch.setattr(time, "time", lambda: start + 92)
    assert login_as(client, admin_a.email, TEST_PASSWORD).status_code == 302


def test_a_stranger_never_locks_the_owner_out(app, admin_a, monkeypatch):
    import time

    start = time.time()
    stranger = app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "192.0.2.77"
    for offset in (0, 0, 0, 31, 92, 213):  # past any per-account limit, each pause waited out
        monkeypatch.setattr(time, "time", lambda o=offset: start + o)
        login_as(stranger, admin_a.email, "guess")
    assert login_as(stranger, admin_a.email, TEST_PASSWORD).status_code == 429
    owner = app.test_client()
    assert login_as(owner, admin_a.email, TEST_PASSWORD).status_code == 302


def test_delays_double_and_are_capped(app_ctx):
    waits = []
    for failures in range(1, 12):
        storage.record_login_attempt("a@example.com", "192.0.2.1", False, now=1000.0 + failures)
        waits.append(
            storage.login_lockout_seconds(
                "a@example.com",
                "192.0.2.1",
                free_failures=3,
                first_delay=30,
                max_delay=900,
                max_per_address=100,
                window=900,
                now=1000.0 + failures,
            )
        )
    assert waits == [0, 0, 30, 60, 120, 240, 480, 900, 900, 900, 900]
    assert (
        storage.login_lockout_seconds(
            "a@example.com",
            "192.0.2.2",
            free_failures=3,
            first_delay=30,
            max_delay=900,
            max_per_address=100,
            window=900,
            now=1012.0,
        )
        == 0
    )


def test_rate_limit_per_address(app, client, make_user):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    victim = make_user()
    for i in range(3):
        login_as(client, f"spray{i}@example.com", "bad")
    response = login_as(client, victim.email, TEST_PASSWORD)
    assert response.status_code == 429
    assert b"Try again in 15 minutes." in response.data
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    assert login_as(elsewhere, victim.email, TEST_PASSWORD).status_code == 302


def test_lockout_counts_in_the_database(app_ctx):
    """Every gunicorn worker sees the same counts: they live in SQLite."""
    now = 10_000.0
    for i in range(5):
        storage.record_login_attempt("a@example.com", "1.2.3.4", False, now=now + i)
    wait = storage.login_lockout_seconds(
        "a@example.com",
        "1.2.3.4",
        free_failures=3,
        first_delay=30,
        max_delay=900,
        max_per_address=5,
        window=900,
        now=now + 10,
    )
    assert wait == pytest.approx(890)  # the address cap: five failures in the window
    assert (
        storage.login_lockout_seconds(
            "a@example.com",
            "1.2.3.4",
            free_failures=3,
            first_delay=30,
            max_delay=900,
            max_per_address=5,
            window=900,
            now=now + 901,
        )
        == 0
    )


def test_success_resets_the_pair_counter(app_ctx):
    for i in range(4):
        storage.record_login_attempt("a@example.com", "1.2.3.4", False, now=100.0 + i)
    storage.record_login_attempt("a@example.com", "1.2.3.4", True, now=110.0)
    storage.record_login_attempt("a@example.com", "1.2.3.4", False, now=111.0)
    assert (
        storage.login_lockout_seconds(
            "a@example.com",
            "1.2.3.4",
            free_failures=3,
            first_delay=30,
            max_delay=900,
            max_per_address=20,
            window=900,
            now=112.0,
        )
        == 0
    )


@pytest.fixture
def behind_proxy(app_config):
    app_config["TRUSTED_PROXY_HOPS"] = 1


def _from(app, forwarded_for: str):
    browser = app.test_client()
    browser.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return browser


def test_behind_a_trusted_proxy_the_real_client_address_counts(behind_proxy, app, make_user):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    victim = make_user()
    attacker = _from(app, "203.0.113.7")
    for i in range(3):
        login_as(attacker, f"spray{i}@example.com", "bad")
    assert login_as(attacker, victim.email, TEST_PASSWORD).status_code == 429
    # Another customer behind the same proxy is not stopped by the attacker's failures.
    assert login_as(_from(app, "198.51.100.20"), victim.email, TEST_PASSWORD).status_code == 302
    with app.app_context():
        assert len(storage.recent_failures(address="203.0.113.7", window=900)) == 3
        assert storage.recent_failures(address="127.0.0.1", window=900) == []


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(app, make_user):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    victim = make_user()
    for i in range(3):  # a new made-up address each time does not escape the address cap
        login_as(_from(app, f"203.0.113.{i}"), f"spray{i}@example.com", "bad")
    assert login_as(_from(app, "198.51.100.20"), victim.email, TEST_PASSWORD).status_code == 429
    with app.app_context():
        assert len(storage.recent_failures(address="127.0.0.1", window=900)) == 3


OPEN_REDIRECT_PROBES = [
    "https://evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "%5C%5Cevil.example",
    "/%5Cevil.example",
    "/%252F%252Fevil.example",
    "///evil.example",
    "http://localhost/",
    "/\t/evil.example",
    "/%09/evil.example",
    " //evil.example",
    "/%0d%0aSet-Cookie:x=y",
    "/nowhere-in-this-app",
]


@pytest.mark.parametrize("target", OPEN_REDIRECT_PROBES)
def test_next_never_leaves_the_application(client, admin_a, target):
    response = login_as(client, admin_a.email, next_path=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", OPEN_REDIRECT_PROBES)
def test_login_page_drops_a_foreign_next(client, target):
    response = client.get("/login", query_string={"next": target})
    assert b'name="next" type="hidden" value=""' in response.data


def test_next_to_a_page_of_the_application_is_kept(client, admin_a):
    response = login_as(client, admin_a.email, next_path="/connections/")
    assert response.headers["Location"] == "/connections/"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(target=st.text(max_size=40) | st.from_regex(r"[/\\%:a-z0-9.]{0,20}", fullmatch=True))
def test_no_string_yields_a_foreign_location(app, target):
    from urllib.parse import urlsplit

    from portal.next_page import safe_next

    with app.test_request_context():
        result = safe_next(target)
    if result is not None:
        assert result.startswith("/") and not result.startswith("//")
        assert urlsplit(result).netloc == "" and "\\" not in result


def test_cli_create_org_and_user_with_generated_password(app, runner):
    assert runner.invoke(args=["create-org", "Contoso"]).exit_code == 0
    assert "already exists" in runner.invoke(args=["create-org", "Contoso"]).output
    result = runner.invoke(
        args=["create-user", "Ada@Contoso.example", "--org", "Contoso", "--role", "admin"]
    )
    assert result.exit_code == 0, result.output
    password = re.search(r"Password \(shown once\): (\S+)", result.output).group(1)
    client = app.test_client()
    assert login_as(client, "ada@contoso.example", password).status_code == 302


def test_cli_create_user_reads_password_from_stdin(app, runner):
    result = runner.invoke(
        args=["create-user", "help@portal.example", "--role", "support"],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert "shown once" not in result.output
    with app.app_context():
        user = storage.get_user_by_email("help@portal.example")
        assert user.is_support and user.org_id is None
        assert user.password_hash.startswith("pbkdf2:")  # the configured (test) method
    response = login_as(app.test_client(), "help@portal.example", "a long enough password")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/enrol"  # support must set up a second factor


def test_cli_refuses_admin_without_org(runner):
    result = runner.invoke(args=["create-user", "x@example.com", "--role", "admin"])
    assert result.exit_code != 0
    assert "--org" in result.output


def test_production_hashes_with_scrypt(app):
    from portal.blueprints.auth import hash_password

    app.config["PASSWORD_HASH_METHOD"] = "scrypt"
    with app.app_context():
        assert hash_password("pw").startswith("scrypt:")
