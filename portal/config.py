"""Configuration: defaults, then instance/config.py, then PORTAL_* environment variables.

A test mapping passed to ``create_app`` replaces the last two, so a developer's environment never
leaks into tests. Keys are generated into ``instance/`` on the first development run only; in
production a missing key, a weak key or an unsafe setting stops the start, every problem named
on a line of its own (``production_problems``), so an operator fixes them all in one round.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from portal.entra.retry import RetryPolicy
from portal.production_checks import production_problems, weak_key_problems
from portal.storage import vault
from portal.storage.files import create_private_once, make_private_dir, write_private

#: htmx is fetched by the Makefile into static/vendor/ and checked against this hash (one place).
HTMX_VERSION = "2.0.11"
HTMX_PATH = "vendor/htmx.min.js"
HTMX_SRI = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"

SECRET_KEY_FILE = "secret_key"
VAULT_KEY_FILE = "vault.key"
#: Creates the missing key files of a new production instance (portal/cli.py ``vault init``).
BOOTSTRAP_COMMAND = "flask --app portal vault init"

DEFAULTS: dict[str, object] = {
    "ENV": "development",
    "SECRET_KEY": None,
    "VAULT_KEYS": None,
    "DATABASE": None,  # -> <instance>/portal.sqlite3
    "FRAME_ANCESTORS": [],
    "CSP_FORM_ACTION_EXTRA": [],
    "TRUSTED_ORIGINS": [],
    "TRUSTED_PROXY_HOPS": 0,
    "CLOUDS_FILE": None,
    "LOG_FORMAT": None,  # -> json in production (one object per line), text in development
    "LOG_LEVEL": "INFO",
    # Failed sign-ins: one account from one address gets LOGIN_FREE_FAILURES tries, then waits
    # LOGIN_DELAY_SECONDS, doubling per further failure up to LOGIN_MAX_DELAY_SECONDS; one
    # address gets LOGIN_MAX_FAILURES_PER_ADDRESS failures (any accounts) per window.
    "LOGIN_FREE_FAILURES": 3,
    "LOGIN_DELAY_SECONDS": 30,
    "LOGIN_MAX_DELAY_SECONDS": 900,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "LOGIN_WINDOW_SECONDS": 900,
    "PASSWORD_HASH_METHOD": "scrypt",
    "SESSION_HOURS": 8,  # idle lifetime of a sign-in
    "SESSION_MAX_HOURS": 12,  # absolute lifetime of a sign-in, whatever the activity
    "REAUTH_MINUTES": 15,  # sensitive actions need a password entered this recently
    # A guest (a connect session's or a setup link's user, no password) is signed in this long.
    "GUEST_SESSION_MINUTES": 60,
    "DEMO": False,
    # The portal's public base URL. Redirect URIs sent to Microsoft are built from it, never
    # from the request's Host / X-Forwarded-Host (RFC 9700 section 4.1.3).
    "PUBLIC_URL": "http://127.0.0.1:5000",
    # The service provider application (our multi-tenant app) — operator settings.
    "SP_CLIENT_ID": None,
    "SP_CERT_FILE": None,  # PEM holding the private key and the certificate (preferred)
    "SP_CLIENT_SECRET": None,  # used only when no certificate is configured
    "SP_CLOUDS": ["global"],  # cloud keys in which the multi-tenant app is registered
    "SP_EXTRA_SCOPES": [],  # delegated scopes required on top of the product's list
    "REFRESH_IDLE_HOURS": 24,  # refresh-tokens keeps alive connections idle at least this long
    "RATELIMIT_STORAGE_URI": "memory://",  # flask-limiter storage (portal/ratelimit.py)
    # Certificates the portal issues for customer-owned applications.
    "CERT_KEY_SIZE": 3072,  # RSA bits; at least 2048 (Entra rejects smaller keys)
    "CERT_VALIDITY_MONTHS": 12,  # 1 to 24
    # Bearer token a Prometheus scraper presents to GET /metrics; unset: the route answers 404.
    "METRICS_TOKEN": None,
    # Calls to Microsoft (portal/entra/retry.py): attempts per call, the deadline of one call
    # with its waits (below gunicorn's 30 s worker timeout), back-off without a Retry-After.
    "OUTBOUND_ATTEMPTS": 4,
    "OUTBOUND_DEADLINE_SECONDS": 20.0,
    "OUTBOUND_BACKOFF_SECONDS": 0.5,
    "OUTBOUND_MAX_BACKOFF_SECONDS": 8.0,
    # Background jobs (portal/connections/breaker.py): a cloud is paused after this many
    # consecutive transient failures, for the cool-off (at least the largest Retry-After seen);
    # a shorter Retry-After than BREAKER_MAX_SLEEP_SECONDS is slept, a longer one pauses.
    "BREAKER_FAILURES": 5,
    "BREAKER_COOLOFF_SECONDS": 300.0,
    "BREAKER_MAX_SLEEP_SECONDS": 5.0,
}

# Flask settings that follow from ours (not meant to be overridden by the environment).
_FLASK_FIXED = {
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": True,
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SECURE": True,
    "WTF_CSRF_SSL_STRICT": False,  # our Origin / Sec-Fetch-Site check replaces the Referer check
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    "MAX_CONTENT_LENGTH": 1024 * 1024,
}

_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to fix."""


def load(app, test_config: dict | None) -> None:
    """Fill ``app.config``: defaults, instance/config.py, environment (or the test mapping)."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(_FLASK_FIXED)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.update(_from_environment(os.environ))
    else:
        app.config.from_mapping(test_config)
    _normalize(app)
    problems = [*_ensure_secret_key(app), *_ensure_vault_keys(app)]
    if app.config["ENV"] == "production":
        problems += production_problems(app)
    if problems:
        raise ConfigError("\n".join(problems))
    _cookie_policy(app)


def _coerce(key: str, raw: str, default: object) -> object:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"PORTAL_{key} must be a whole number, not {raw!r}") from exc
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"PORTAL_{key} must be a number, not {raw!r}") from exc
    if isinstance(default, list):
        return parse_list(raw)
    return raw


def _from_environment(environ) -> dict:
    """Read ``PORTAL_<KEY>`` for every known key, typed like its default."""
    values = {}
    for key, default in DEFAULTS.items():
        raw = environ.get(f"PORTAL_{key}")
        if raw is not None and raw != "":
            values[key] = _coerce(key, raw, default)
    return values


def parse_list(value) -> list[str]:
    """Accept a list, or a string separated by spaces and/or commas."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    return [str(part) for part in value]


def validate_origin(origin: str) -> str:
    """Return ``origin`` if it is exactly scheme://host[:port]; raise ConfigError otherwise."""
    if not _ORIGIN_RE.match(origin):
        raise ConfigError(
            f"FRAME_ANCESTORS entry {origin!r} must be an exact origin such as "
            "https://app.example.com (scheme://host[:port], no path, no wildcard)"
        )
    parts = urlsplit(origin)
    if parts.port is not None and not 0 < parts.port < 65536:
        raise ConfigError(f"FRAME_ANCESTORS entry {origin!r} has an invalid port")
    return origin


_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalize_client_id(value) -> str | None:
    """An application (client) ID as every reader compares it: trimmed, and lower-cased when it
    is a GUID (Entra treats GUIDs case-insensitively and issues them lower-case). Anything else
    is kept as typed, for Link Account's settings check to name."""
    text = str(value or "").strip()
    return (text.lower() if _GUID.fullmatch(text.lower()) else text) or None


def _normalize(app) -> None:
    config = app.config
    env = str(config["ENV"]).lower()
    if env not in {"development", "production"}:
        raise ConfigError(f"PORTAL_ENV must be 'development' or 'production', not {env!r}")
    config["ENV"] = env
    fmt = str(config["LOG_FORMAT"] or ("json" if env == "production" else "text")).lower()
    if fmt not in {"text", "json"}:
        raise ConfigError(f"PORTAL_LOG_FORMAT must be 'text' or 'json', not {fmt!r}")
    config["LOG_FORMAT"] = fmt
    config["FRAME_ANCESTORS"] = [validate_origin(o) for o in parse_list(config["FRAME_ANCESTORS"])]
    config["TRUSTED_ORIGINS"] = [validate_origin(o) for o in parse_list(config["TRUSTED_ORIGINS"])]
    config["CSP_FORM_ACTION_EXTRA"] = [
        validate_origin(o) for o in parse_list(config["CSP_FORM_ACTION_EXTRA"])
    ]
    config["SP_CLIENT_ID"] = normalize_client_id(config.get("SP_CLIENT_ID"))
    config["METRICS_TOKEN"] = _metrics_token(config.get("METRICS_TOKEN"))
    if not config.get("DATABASE"):
        config["DATABASE"] = os.path.join(app.instance_path, "portal.sqlite3")
    config["PERMANENT_SESSION_LIFETIME"] = int(config["SESSION_HOURS"]) * 3600
    if int(config["SESSION_MAX_HOURS"]) < 1 or int(config["REAUTH_MINUTES"]) < 1:
        raise ConfigError("SESSION_MAX_HOURS and REAUTH_MINUTES must be at least 1")
    if int(config["CERT_KEY_SIZE"]) < 2048:
        raise ConfigError("CERT_KEY_SIZE must be at least 2048 (Entra rejects smaller RSA keys)")
    if not 1 <= int(config["CERT_VALIDITY_MONTHS"]) <= 24:
        raise ConfigError("CERT_VALIDITY_MONTHS must be between 1 and 24")
    _normalize_outbound(config)


def _normalize_outbound(config) -> None:
    """The retry and breaker settings as numbers, within sane bounds."""
    for key in ("OUTBOUND_ATTEMPTS", "BREAKER_FAILURES"):
        config[key] = int(config[key])
        if config[key] < 1:
            raise ConfigError(f"{key} must be at least 1")
    for key in (
        "OUTBOUND_DEADLINE_SECONDS",
        "OUTBOUND_BACKOFF_SECONDS",
        "OUTBOUND_MAX_BACKOFF_SECONDS",
        "BREAKER_COOLOFF_SECONDS",
        "BREAKER_MAX_SLEEP_SECONDS",
    ):
        config[key] = float(config[key])
        if config[key] < 0:
            raise ConfigError(f"{key} must not be negative")
    if not 0 < config["OUTBOUND_DEADLINE_SECONDS"] < 30:
        # A web request waiting on Microsoft longer than gunicorn's worker timeout is killed
        # without an answer page.
        raise ConfigError("OUTBOUND_DEADLINE_SECONDS must be more than 0 and less than 30")


def retry_policy(config) -> RetryPolicy:
    """The retry policy of every call to Microsoft, from the normalised settings."""
    return RetryPolicy(
        attempts=config["OUTBOUND_ATTEMPTS"],
        deadline=config["OUTBOUND_DEADLINE_SECONDS"],
        base_backoff=config["OUTBOUND_BACKOFF_SECONDS"],
        max_backoff=config["OUTBOUND_MAX_BACKOFF_SECONDS"],
    )


#: RFC 6750 section 2.1: what a bearer token may be made of (so a scraper can send it).
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def _metrics_token(value) -> str | None:
    token = str(value or "").strip()
    if token and not _BEARER_TOKEN.fullmatch(token):
        raise ConfigError(
            "PORTAL_METRICS_TOKEN may hold only letters, digits and -._~+/ (then = padding): "
            "it is sent as an HTTP bearer token"
        )
    return token or None


# --- Bootstrapping a new instance (``flask --app portal vault init``) -------------------------


def bootstrap_keys(app) -> list[str]:
    """Create the key files a new production instance lacks; one line per file, for the operator.

    ``app`` is a bare Flask object (``portal.bare_app``): production refuses to build the real
    app before these files exist. Keys configured elsewhere (``PORTAL_SECRET_KEY``,
    ``PORTAL_VAULT_KEYS`` or instance/config.py) count as present. Raises ConfigError when both
    keys are present already: an existing key file is never overwritten (losing the vault key
    makes every stored secret unreadable).
    """
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(_from_environment(os.environ))
    instance = Path(app.instance_path)
    vault_path, secret_path = instance / VAULT_KEY_FILE, instance / SECRET_KEY_FILE
    have_vault = bool(app.config.get("VAULT_KEYS")) or vault_path.exists()
    have_secret = bool(app.config.get("SECRET_KEY")) or secret_path.exists()
    if have_vault and have_secret:
        raise ConfigError(
            f"Already initialised: {vault_path} (or PORTAL_VAULT_KEYS) and {secret_path} (or "
            "PORTAL_SECRET_KEY) exist. Nothing was overwritten; add a vault key with "
            "'flask --app portal vault add-key'."
        )
    make_private_dir(instance)
    done = []
    if have_vault:
        done.append(f"Vault key: kept what exists ({vault_path} or PORTAL_VAULT_KEYS).")
    else:
        keyring = vault.Keyring.generate()
        write_private(vault_path, keyring.dumps())
        done.append(
            f"Created {vault_path} (primary key {keyring.primary_kid}, mode 0600). "
            "Back it up: without it no stored secret can be read."
        )
    if have_secret:
        done.append(f"Session signing key: kept what exists ({secret_path} or PORTAL_SECRET_KEY).")
    else:
        write_private(secret_path, secrets.token_hex(32) + "\n")
        done.append(f"Created {secret_path} (mode 0600).")
    return done


def _ensure_secret_key(app) -> list[str]:
    """Load (or, in development, generate) the session signing key; the problems, if any."""
    path = Path(app.instance_path) / SECRET_KEY_FILE
    if app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = str(app.config["SECRET_KEY"])
    elif path.exists():
        app.config["SECRET_KEY"] = path.read_text().strip()
    elif app.config["ENV"] == "production":
        return [
            f"No session signing key: set PORTAL_SECRET_KEY or create {path} with "
            f"'{BOOTSTRAP_COMMAND}'. Production never invents a key."
        ]
    else:
        key = create_private_once(path, secrets.token_hex(32) + "\n")
        app.config["SECRET_KEY"] = key.strip()
    if len(app.config["SECRET_KEY"]) < 32:
        return ["SECRET_KEY is too short (at least 32 characters)"]
    return []


def _ensure_vault_keys(app) -> list[str]:
    """Load (or, in development, generate) the vault keyring; the problems, if any."""
    value = app.config.get("VAULT_KEYS")
    path = Path(app.instance_path) / VAULT_KEY_FILE
    production = app.config["ENV"] == "production"
    try:
        if isinstance(value, vault.Keyring):
            keyring, where = value, "VAULT_KEYS"
        elif value:
            keyring, where = _parse_keyring(value, "PORTAL_VAULT_KEYS"), "PORTAL_VAULT_KEYS"
        elif path.exists():
            keyring, where = _parse_keyring(path.read_text(), str(path)), str(path)
        elif production:
            return [
                f"No vault key: set PORTAL_VAULT_KEYS or create {path} with "
                f"'{BOOTSTRAP_COMMAND}'. Production never invents a key and never stores "
                "secrets unencrypted."
            ]
        else:
            text = create_private_once(path, vault.Keyring.generate().dumps())
            keyring, where = _parse_keyring(text, str(path)), str(path)
    except ConfigError as exc:
        return [str(exc)]
    app.config["VAULT_KEYS"] = keyring
    return weak_key_problems(keyring, where) if production else []


def _parse_keyring(value, where: str) -> vault.Keyring:
    try:
        if isinstance(value, (list, tuple)):
            value = "\n".join(value)
        return vault.Keyring.parse(str(value))
    except vault.KeyringError as exc:
        raise ConfigError(f"Vault keyring in {where} is unusable: {exc}") from exc


def _cookie_policy(app) -> None:
    """SameSite=Lax by default; partitioned SameSite=None cookies when the portal may be framed."""
    if app.config["FRAME_ANCESTORS"]:
        app.config["SESSION_COOKIE_SAMESITE"] = "None"
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["SESSION_COOKIE_PARTITIONED"] = True


def describe(app) -> str:
    """A one-line, secret-free summary of the configuration (for logs and the CLI)."""
    safe = {
        "env": app.config["ENV"],
        "database": app.config["DATABASE"],
        "frame_ancestors": app.config["FRAME_ANCESTORS"],
        "log_format": app.config["LOG_FORMAT"],
        "vault_primary_key": app.config["VAULT_KEYS"].primary_kid,
        "demo": app.config["DEMO"],
        "metrics": bool(app.config["METRICS_TOKEN"]),
    }
    return json.dumps(safe)
