"""Shared fixtures. The Entra simulator's fixtures come from its own pytest plugin."""

pytest_plugins = ["entrasim.testing"]

import itertools  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import time  # noqa: E402

import pyotp  # noqa: E402
import pytest  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from portal import create_app, mfa, storage  # noqa: E402
from portal.storage import vault  # noqa: E402
from tests.seeding import set_columns  # noqa: E402

#: Password of every user made by ``make_user`` (unless given).
TEST_PASSWORD = "correct horse battery staple"
#: A cheap hash for tests (production uses scrypt).
FAST_HASH = "pbkdf2:sha256:1000"

_CSRF_RE = re.compile(r'"X-CSRFToken": "([^"]+)"')
_counter = itertools.count(1)


@pytest.fixture
def app_config(tmp_path):
    """The test mapping given to ``create_app``; change it before the ``app`` fixture is built."""
    instance = tmp_path / "instance"
    return {
        "TESTING": True,
        "ENV": "development",
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": secrets.token_hex(32),
        "VAULT_KEYS": vault.Keyring.generate(),
        "DATABASE": str(instance / "portal.sqlite3"),
        "PASSWORD_HASH_METHOD": FAST_HASH,
        # Retries as in production (attempts, Retry-After, deadline), with short back-off so
        # that a fault lasting a whole test costs tenths of a second, not seconds.
        "OUTBOUND_BACKOFF_SECONDS": 0.05,
        "OUTBOUND_MAX_BACKOFF_SECONDS": 0.2,
    }


@pytest.fixture
def app(app_config):
    """A portal with a fresh instance folder, database and vault keyring."""
    app = create_app(app_config)
    yield app


@pytest.fixture
def client(app):
    """An anonymous browser."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Runs ``flask --app portal ...`` commands against ``app``."""
    return app.test_cli_runner()


@pytest.fixture
def app_ctx(app):
    """An app context (for calling ``portal.store`` directly in a test)."""
    with app.app_context():
        yield app


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token of ``client``'s session, read from a page's ``hx-headers``."""
    response = client.get(path)
    match = _CSRF_RE.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


def login_as(client, email: str, password: str = TEST_PASSWORD, next_path: str | None = None):
    """Sign ``client`` in through the real form; returns the POST response."""
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    if next_path is not None:
        data["next"] = next_path
    return client.post("/login", data=data)


def enrol_totp(app, user) -> str:
    """Give ``user`` an authenticator app directly in the store (tests that are not about
    enrolment); returns the TOTP secret."""
    secret = mfa.new_secret()
    with app.app_context():
        storage.enrol_totp(user.id, secret, 0, [])
    return secret


def totp_code(app, user) -> str:
    """The code the user's app shows, read from the enrolled secret, for a time step later
    than the last one the portal accepted (a code is never accepted twice)."""
    with app.app_context():
        secret = storage.get_totp_secret(user.id)
        last = storage.get_user(user.id).totp_last_step or 0
    now = time.time()
    step = max(mfa.current_step(now), last + 1)
    if step > mfa.current_step(now) + mfa.DRIFT_STEPS:  # used up: wait for the next step
        time.sleep((step - mfa.DRIFT_STEPS) * mfa.STEP_SECONDS - now + 0.05)
    return pyotp.TOTP(secret).at(step * mfa.STEP_SECONDS)


def pass_second_factor(client, app, user):
    """Answer the second-factor page a sign-in was sent to; returns the POST response."""
    token = csrf_token(client, "/login/second-factor")
    return client.post(
        "/login/second-factor", data={"code": totp_code(app, user), "csrf_token": token}
    )


@pytest.fixture
def make_org(app):
    """``make_org(name=None) -> Organization``."""

    def make(name: str | None = None) -> storage.Organization:
        with app.app_context():
            return storage.create_organization(name or f"Org {next(_counter)}")

    return make


@pytest.fixture
def make_user(app, make_org):
    """``make_user(email=None, role="admin", org=None, password=TEST_PASSWORD, totp=None)``.

    Support users must sign in with a second factor, so they get an authenticator app
    (``totp=None``: only support; ``True``/``False`` to choose).
    """

    def make(
        email: str | None = None,
        role: str = "admin",
        org=None,
        password: str = TEST_PASSWORD,
        totp: bool | None = None,
    ) -> storage.User:
        if role == "admin" and org is None:
            org = make_org()
        email = email or f"user{next(_counter)}@example.com"
        with app.app_context():
            user = storage.create_user(
                email,
                role,
                generate_password_hash(password, FAST_HASH),
                org.id if org is not None and role == "admin" else None,
            )
        if totp or (totp is None and role == "support"):
            enrol_totp(app, user)
            with app.app_context():
                user = storage.get_user(user.id)
        return user

    return make


@pytest.fixture
def make_connection(app):
    """``make_connection(org, kind="customer_owned", display_name=None, **fields)``."""

    def make(
        org, kind: str = "customer_owned", display_name: str | None = None, **fields
    ) -> storage.Connection:
        with app.app_context():
            connection = storage.create_connection(org.id, kind, display_name)
            if fields:
                connection = set_columns(connection.id, **fields)
            return connection

    return make


@pytest.fixture
def login(app):
    """``login(user, password=TEST_PASSWORD) -> test client`` signed in as ``user`` (passing
    the second factor too when the user has one)."""

    def sign_in(user, password: str = TEST_PASSWORD):
        client = app.test_client()
        response = login_as(client, user.email, password)
        assert response.status_code == 302, response.get_data(as_text=True)
        if response.headers["Location"] == "/login/second-factor":
            response = pass_second_factor(client, app, user)
            assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return sign_in


@pytest.fixture
def org_a(make_org):
    return make_org("Contoso")


@pytest.fixture
def org_b(make_org):
    return make_org("Fabrikam")


@pytest.fixture
def admin_a(make_user, org_a):
    return make_user("admin@contoso.example", "admin", org_a)


@pytest.fixture
def admin_b(make_user, org_b):
    return make_user("admin@fabrikam.example", "admin", org_b)


@pytest.fixture
def support_user(make_user):
    return make_user("helpdesk@portal.example", "support")


@pytest.fixture
def client_a(login, admin_a):
    """A browser signed in as the admin of organization A (Contoso)."""
    return login(admin_a)


@pytest.fixture
def client_b(login, admin_b):
    """A browser signed in as the admin of organization B (Fabrikam)."""
    return login(admin_b)


@pytest.fixture
def support_client(login, support_user):
    """A browser signed in as support staff."""
    return login(support_user)
