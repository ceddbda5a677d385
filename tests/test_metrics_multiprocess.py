"""Multiprocess mode (PROMETHEUS_MULTIPROC_DIR): the calls counted by several processes add up
in one scrape, and the database gauges are counted once, not once per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portal import metrics

ROOT = Path(__file__).resolve().parents[1]

#: A worker: counts ``n`` token calls through the observer the app installs, then exits.
COUNT = """
import sys
from portal import create_app
from portal.entra.outbound import OutboundCall, _notify
from portal.storage import vault

create_app({"TESTING": True, "INSTANCE_PATH": sys.argv[1], "SECRET_KEY": "k" * 64,
            "VAULT_KEYS": vault.Keyring.generate(), "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
for _ in range(int(sys.argv[2])):
    _notify(OutboundCall("global", "token", "POST", 200, "ok", 0.2))
"""

#: Another worker answers the scrape: it made one connection and two calls of its own.
SCRAPE = """
import sys
from portal import create_app, storage
from portal.entra.outbound import OutboundCall, _notify
from portal.storage import vault

app = create_app({"TESTING": True, "INSTANCE_PATH": sys.argv[1], "SECRET_KEY": "k" * 64,
                  "VAULT_KEYS": vault.Keyring.generate(), "METRICS_TOKEN": "t" * 32,
                  "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
with app.app_context():
    storage.create_connection(storage.create_organization("Contoso").id, "customer_owned")
for _ in range(2):
    _notify(OutboundCall("global", "token", "POST", 200, "ok", 0.2))
response = app.test_client().get("/metrics", headers={"Authorization": "Bearer " + "t" * 32})
assert response.status_code == 200, response.status_code
sys.stdout.write(response.get_data(as_text=True))
"""


def run(code: str, *args: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name} {labels}")


def test_two_processes_counters_add_up_and_gauges_do_not(tmp_path):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")},
        metrics.MULTIPROC_ENV: str(shared),
    }
    instance = str(tmp_path / "instance")
    run(COUNT, instance, "3", env=env)
    run(COUNT, instance, "4", env=env)
    assert len(list(shared.glob("*.db"))) >= 2  # one file set per process

    text = run(SCRAPE, instance, env=env)
    token = {"cloud": "global", "endpoint": "token"}
    assert value(text, "portal_microsoft_calls_total", **token, outcome="ok") == 3 + 4 + 2
    assert value(text, "portal_microsoft_call_duration_seconds_count", **token) == 9
    assert value(text, "portal_microsoft_call_duration_seconds_sum", **token) == pytest.approx(
        9 * 0.2
    )
    # Three processes ran; the one connection is still one.
    connections = {"state": "draft", "health": "unknown", "kind": "customer_owned"}
    assert value(text, "portal_connections", **connections) == 1


def test_gunicorn_hooks_empty_the_directory_and_clean_up_after_a_worker(tmp_path, monkeypatch):
    shared = tmp_path / "prometheus"
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(shared))
    metrics.gunicorn_on_starting(server=None)  # creates it when missing
    assert shared.is_dir() and oct(shared.stat().st_mode & 0o777) == "0o700"
    (shared / "counter_123.db").write_bytes(b"old run")
    (shared / "gauge_livesum_123.db").write_bytes(b"old run")
    (shared / "README").write_text("not ours")
    metrics.gunicorn_on_starting(server=None)
    assert sorted(p.name for p in shared.iterdir()) == ["README"]

    (shared / "gauge_livesum_77.db").write_bytes(b"")
    (shared / "counter_77.db").write_bytes(b"")
    metrics.gunicorn_child_exit(server=None, worker=type("Worker", (), {"pid": 77})())
    # The live gauge of the dead worker goes; its counters still count.
    assert sorted(p.name for p in shared.iterdir()) == ["README", "counter_77.db"]
