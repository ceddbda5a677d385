"""Configuration order, key generation on first development run, production refusal."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal import create_app, vault
from portal.config import ConfigError

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
        "LOG_FORMAT = 'json'\nLOGIN_WINDOW_SECONDS = 60\nDEMO = False\n")
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


@pytest.mark.parametrize("key, value", [("ENV", "staging"), ("LOG_FORMAT", "xml"),
                                        ("SECRET_KEY", "short")])
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
    """``gunicorn wsgi:app`` starts (2 workers, forked after create_app) and answers."""
    import requests

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env["PORTAL_INSTANCE_PATH"] = str(tmp_path / "instance")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
                if time.monotonic() > deadline or process.poll() is not None:
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


@pytest.mark.parametrize("key, value", [("CERT_KEY_SIZE", "1024"), ("CERT_VALIDITY_MONTHS", "25"),
                                        ("CERT_VALIDITY_MONTHS", "0")])
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
