"""Configuration order, key generation on first development run, production refusal."""

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal import create_app
from portal.config import ConfigError
from portal.storage import vault

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No PORTAL_* variables from the developer's shell; an empty instance folder."""
    for key in list(os.environ):
        if key.startswith("PORTAL_"):
            monkeypatch.delenv(key)
    instance = tmp_path / "instance"
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(instance))
    return instance


def test_development_generates_private_keys_once(clean_env):
    app = create_app()
    secret_file, vault_file = clean_env / "secret_key", clean_env / "vault.key"
    for path in (secret_file, vault_file):
        assert path.exists()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert app.config["SECRET_KEY"] == secret_file.read_text().strip()
    keyring = vault.Keyring.parse(vault_file.read_text())
    assert app.config["VAULT_KEYS"].primary_kid == keyring.primary_kid
    again = create_app()
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    assert again.config["VAULT_KEYS"].key_ids == keyring.key_ids


def test_production_refuses_to_start_without_a_secret_key(clean_env, monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "production")
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY"):
        create_app()
    assert not (clean_env / "secret_key").exists()


def test_production_refuses_to_start_without_a_vault_key(clean_env, monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "s" * 64)
    with pytest.raises(ConfigError, match="vault"):
        create_app()
    assert not (clean_env / "vault.key").exists()


def test_production_starts_with_keys_in_instance(clean_env, monkeypatch):
    create_app()  # development run writes the keys
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("PORTAL_PUBLIC_URL", "https://portal.example")
    app = create_app()
    assert app.config["ENV"] == "production"


def test_production_refuses_a_broken_keyring(clean_env, monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "s" * 64)
    monkeypatch.setenv("PORTAL_VAULT_KEYS", "k1:dG9vIHNob3J0")
    with pytest.raises(ConfigError, match="32 bytes"):
        create_app()


def test_environment_overrides_instance_config(clean_env, monkeypatch):
    clean_env.mkdir(parents=True)
    (clean_env / "config.py").write_text(
        "LOG_FORMAT = 'json'\nLOGIN_WINDOW_SECONDS = 60\nDEMO = False\n"
    )
    monkeypatch.setenv("PORTAL_DEMO", "true")
    monkeypatch.setenv("PORTAL_LOGIN_FREE_FAILURES", "7")
    monkeypatch.setenv("PORTAL_FRAME_ANCESTORS", "https://a.example, https://b.example:8443")
    app = create_app()
    assert app.config["LOG_FORMAT"] == "json"
    assert app.config["LOGIN_WINDOW_SECONDS"] == 60
    assert app.config["DEMO"] is True
    assert app.config["LOGIN_FREE_FAILURES"] == 7
    assert app.config["FRAME_ANCESTORS"] == ["https://a.example", "https://b.example:8443"]
    assert app.config["DATABASE"] == str(clean_env / "portal.sqlite3")


def test_test_mapping_ignores_the_environment(clean_env, monkeypatch, app_config):
    monkeypatch.setenv("PORTAL_DEMO", "true")
    monkeypatch.setenv("PORTAL_FRAME_ANCESTORS", "https://a.example")
    app = create_app(app_config)
    assert app.config["DEMO"] is False
    assert app.config["FRAME_ANCESTORS"] == []


@pytest.mark.parametrize(
    "key, value", [("ENV", "staging"), ("LOG_FORMAT", "xml"), ("SECRET_KEY", "short")]
)
def test_invalid_values_are_refused(app_config, key, value):
    app_config[key] = value
    with pytest.raises(ConfigError):
        create_app(app_config)


def test_wsgi_module_is_two_lines():
    lines = [line for line in (ROOT / "wsgi.py").read_text().splitlines() if line.strip()]
    assert lines == ["from portal import create_app", "app = create_app()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_serves_wsgi_app(tmp_path):
    """gunicorn with the repository's ``gunicorn.conf.py`` starts (2 gthread workers, forked
    after create_app) and answers."""
    import requests

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env["PORTAL_INSTANCE_PATH"] = str(tmp_path / "instance")
    env["PORTAL_BIND"] = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        session = requests.Session()
        session.trust_env = False
        deadline = time.monotonic() + 20
        while True:
            try:
                # A worker's first request builds its app and migrates: give it time on a
                # loaded machine (the suite and other runs share two cores).
                response = session.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                if process.poll() is not None:
                    pytest.fail(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json() == {"ok": True, "database": True, "vault_key_loaded": True}
        login = session.get(f"http://127.0.0.1:{port}/login", timeout=10)
        assert login.status_code == 200 and "Sign in" in login.text
        session.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


@pytest.mark.parametrize(
    "key, value",
    [("CERT_KEY_SIZE", "1024"), ("CERT_VALIDITY_MONTHS", "25"), ("CERT_VALIDITY_MONTHS", "0")],
)
def test_certificate_settings_are_bounded(app_config, monkeypatch, key, value):
    app_config[key] = int(value)
    with pytest.raises(ConfigError, match=key):
        create_app(app_config)


def test_certificate_settings_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("PORTAL_CERT_KEY_SIZE", "4096")
    monkeypatch.setenv("PORTAL_CERT_VALIDITY_MONTHS", "24")
    app = create_app()
    assert app.config["CERT_KEY_SIZE"] == 4096 and app.config["CERT_VALIDITY_MONTHS"] == 24


# --- Log format and the metrics token --------------------------------------------------------


@pytest.mark.parametrize(
    "env, explicit, expected",
    [
        ("production", None, "json"),
        ("development", None, "text"),
        ("production", "text", "text"),
        ("development", "JSON", "json"),
    ],
)
def test_log_format_follows_the_environment_unless_set(
    app_config, monkeypatch, env, explicit, expected
):
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    app_config.update(ENV=env, PUBLIC_URL="https://portal.example")
    if explicit is not None:
        app_config["LOG_FORMAT"] = explicit
    assert create_app(app_config).config["LOG_FORMAT"] == expected


def test_log_format_from_the_environment_wins_in_production(clean_env, monkeypatch):
    create_app()  # development run writes the keys
    assert create_app().config["LOG_FORMAT"] == "text"
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("PORTAL_PUBLIC_URL", "https://portal.example")
    assert create_app().config["LOG_FORMAT"] == "json"
    monkeypatch.setenv("PORTAL_LOG_FORMAT", "text")
    assert create_app().config["LOG_FORMAT"] == "text"


def test_metrics_token_from_the_environment(clean_env, monkeypatch):
    assert create_app().config["METRICS_TOKEN"] is None
    monkeypatch.setenv("PORTAL_METRICS_TOKEN", "  abc-DEF_123.~+/==  ")
    app = create_app()
    assert app.config["METRICS_TOKEN"] == "abc-DEF_123.~+/=="
    assert json.loads(config_summary(app))["metrics"] is True
    assert "abc-DEF" not in config_summary(app)


def config_summary(app) -> str:
    from portal.config import describe

    return describe(app)


@pytest.mark.parametrize("token", ["with space", 'quote"s', "é" * 40, "=leading"])
def test_a_metrics_token_that_cannot_be_sent_is_refused(app_config, token):
    app_config["METRICS_TOKEN"] = token
    with pytest.raises(ConfigError, match="PORTAL_METRICS_TOKEN"):
        create_app(app_config)


# --- What production refuses ---------------------------------------------------------------


@pytest.fixture
def production(app_config, monkeypatch):
    """A safe production mapping (every test below spoils one thing); no debug from the shell."""
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    app_config.update(ENV="production", PUBLIC_URL="https://portal.example")
    return app_config


def _problems(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    return str(caught.value).splitlines()


def _key_text(*keys: bytes) -> str:
    return "".join(f"k{n}:{base64.b64encode(key).decode()}\n" for n, key in enumerate(keys))


def test_safe_production_settings_start(production):
    assert create_app(production).config["ENV"] == "production"
    production["METRICS_TOKEN"] = "x" * 32
    assert create_app(production).config["METRICS_TOKEN"] == "x" * 32


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("DEMO", True, "PORTAL_DEMO must be off in production"),
        ("DEBUG", True, "DEBUG / FLASK_DEBUG must be off in production"),
        (
            "PUBLIC_URL",
            "http://portal.example",
            "PORTAL_PUBLIC_URL must be https:// in production (got 'http://portal.example')",
        ),
        ("PUBLIC_URL", "http://127.0.0.1:5000", "the development default: it is not set"),
        ("PUBLIC_URL", "", "PORTAL_PUBLIC_URL must be set in production"),
        ("PUBLIC_URL", "portal.example", "PORTAL_PUBLIC_URL must be https://"),
        ("PUBLIC_URL", "https://localhost:8443", "not a loopback host"),
        ("METRICS_TOKEN", "x" * 31, "PORTAL_METRICS_TOKEN is too short for production"),
    ],
)
def test_production_refuses_an_unsafe_setting(production, key, value, expected):
    production[key] = value
    problems = _problems(production)
    assert len(problems) == 1 and expected in problems[0]


def test_production_refuses_flask_debug_from_the_environment(production, monkeypatch):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    assert _problems(production) == [
        "DEBUG / FLASK_DEBUG must be off in production (debug mode shows tracebacks and can run "
        "code sent from the browser)"
    ]


def test_production_refuses_every_simulator_cloud(production, sim_server, tmp_path):
    production["CLOUDS_FILE"] = sim_server.clouds_file(tmp_path / "sim-clouds.json")
    problems = _problems(production)
    assert len(problems) == 4  # one line per simulator cloud
    for problem, key in zip(
        problems, ("sim-global", "sim-usgov-l4", "sim-usgov-l5", "sim-china"), strict=True
    ):
        assert problem.startswith(f"PORTAL_CLOUDS_FILE: cloud '{key}' is a simulator")
        assert "marked as the simulator" in problem and "loopback host 127.0.0.1" in problem


def _cloud(host: str, **extra) -> dict:
    base = f"https://{host}"
    return {
        "key": "extra",
        "label": "Extra",
        "mirrors": "global",
        "login_base": base,
        "graph_base": base,
        "graph_resource": "https://graph.microsoft.com",
        "exchange_resource": "https://outlook.office365.com",
        "portal_url": base,
        **extra,
    }


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8443",
        "127.8.9.10",
        "localhost",
        "LOCALHOST.",
        "sim.localhost",
        "[::1]:9443",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
    ],
)
def test_production_refuses_a_cloud_on_a_loopback_host(production, tmp_path, host):
    """Even unmarked and without a CA of its own: a loopback cloud is never Microsoft."""
    path = tmp_path / "clouds.json"
    path.write_text(json.dumps([_cloud(host)]))
    production["CLOUDS_FILE"] = str(path)
    problems = _problems(production)
    assert len(problems) == 1 and "cloud 'extra'" in problems[0]
    assert "login_base is on the loopback host" in problems[0]


def test_production_refuses_a_cloud_with_its_own_ca(production, tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    path = tmp_path / "clouds.json"
    path.write_text(json.dumps([_cloud("login.sovereign.example", ca_bundle="ca.pem")]))
    production["CLOUDS_FILE"] = str(path)
    assert "its own CA bundle" in _problems(production)[0]


def test_production_accepts_a_real_extra_cloud(production, tmp_path):
    path = tmp_path / "clouds.json"
    path.write_text(json.dumps([_cloud("login.sovereign.example")]))
    production["CLOUDS_FILE"] = str(path)
    assert create_app(production).config["ENV"] == "production"


@pytest.mark.parametrize(
    "keys, expected",
    [
        ((bytes(32),), "vault key 'k0' is weak: every byte is the same"),
        ((b"\xa5" * 32,), "vault key 'k0' is weak: every byte is the same"),
        ((b"0123456789abcdef" * 2,), "vault key 'k0' is weak: too few different byte values"),
        ((bytes(range(32)), bytes(range(32))), "vault keys 'k0' and 'k1' are the same key"),
    ],
)
def test_production_refuses_a_weak_vault_key(production, keys, expected):
    production["VAULT_KEYS"] = _key_text(*keys)
    problems = _problems(production)
    assert len(problems) == 1 and problems[0].startswith(f"PORTAL_VAULT_KEYS: {expected}")
    for key in keys:  # the error names the setting and the key id, never the key
        assert base64.b64encode(key).decode() not in "\n".join(problems)


def test_production_refuses_a_short_vault_key_naming_the_setting(production):
    production["VAULT_KEYS"] = _key_text(secrets.token_bytes(16))
    (problem,) = _problems(production)
    assert problem.startswith("Vault keyring in PORTAL_VAULT_KEYS is unusable")
    assert "32 bytes" in problem


def test_production_refuses_a_weak_key_file(production, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    (instance / "vault.key").write_text(_key_text(bytes(32)))
    production.pop("VAULT_KEYS")
    (problem,) = _problems(production)
    assert problem.startswith(f"{instance / 'vault.key'}: vault key 'k0' is weak")


def test_production_reports_every_problem_at_once(production, sim_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    production.update(
        DEMO=True,
        PUBLIC_URL="http://portal.example",
        CLOUDS_FILE=sim_server.clouds_file(tmp_path / "sim-clouds.json"),
        VAULT_KEYS=_key_text(bytes(32)),
        SECRET_KEY=None,
        INSTANCE_PATH=str(tmp_path / "empty"),
    )
    problems = _problems(production)
    starts = [p.split(" ")[0] for p in problems]
    assert starts == [
        "No",
        "PORTAL_VAULT_KEYS:",
        "PORTAL_DEMO",
        "DEBUG",
        "PORTAL_PUBLIC_URL",
        *["PORTAL_CLOUDS_FILE:"] * 4,
    ]
    assert "PORTAL_SECRET_KEY" in problems[0]


def test_development_keeps_accepting_what_production_refuses(app_config, sim_server, tmp_path):
    app_config.update(
        DEMO=True,
        PUBLIC_URL="http://127.0.0.1:5000",
        CLOUDS_FILE=sim_server.clouds_file(tmp_path / "sim-clouds.json"),
        VAULT_KEYS=_key_text(bytes(32)),
    )
    assert create_app(app_config).config["ENV"] == "development"


def test_workers_starting_together_share_one_generated_key(tmp_path):
    """gunicorn's workers each build the app on a new instance: the second to create a key
    file reads the first one's key instead of failing (the gunicorn smoke test's flake)."""
    from portal.storage.files import create_private_once

    path = tmp_path / "vault.key"
    assert create_private_once(path, "first\n") == "first\n"
    assert create_private_once(path, "second\n") == "first\n"
    assert path.read_text() == "first\n" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["vault.key"]
