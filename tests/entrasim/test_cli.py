"""`python -m entrasim serve`: ports, CA, seed-demo idempotence, state persistence, clouds file."""

import json
import subprocess
import sys
from pathlib import Path

from entrasim.testing import trusting_session

ROOT = Path(__file__).resolve().parents[2]


def serve(tmp_path, *extra):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "entrasim",
            "serve",
            "--port",
            "0",
            "--state",
            str(tmp_path / "state.json"),
            "--seed-demo",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.strip() == "ready":
            break
    return proc, lines


def stop(proc):
    proc.terminate()
    proc.communicate(timeout=15)


def test_serve_seeds_persists_and_writes_clouds(tmp_path):
    clouds = tmp_path / "clouds.json"
    proc, lines = serve(tmp_path, "--write-clouds", str(clouds))
    try:
        ca = next(x.split(": ", 1)[1] for x in lines if x.startswith("CA certificate"))
        base = next(x.split()[1] for x in lines if x.startswith("global"))
        assert any("created tenant 'Contoso demo'" in x for x in lines)
        rows = json.loads(clouds.read_text())
        assert [r["key"] for r in rows] == [
            "sim-global",
            "sim-usgov-l4",
            "sim-usgov-l5",
            "sim-china",
        ]
        assert rows[0]["login_base"] == base and rows[0]["ca_bundle"] == ca
        with trusting_session(ca) as http:
            with http.get(
                f"{base}/contosodemo.onmicrosoft.com/v2.0/.well-known/openid-configuration"
            ) as resp:
                assert resp.status_code == 200
            with http.post(f"{base}/_sim/api/create_tenant", json={"display_name": "Kept"}) as resp:
                assert resp.status_code == 200
    finally:
        stop(proc)
    proc, lines = serve(tmp_path, "--server", "werkzeug")  # the other server, same state
    try:
        assert any("already exists" in x for x in lines)
        state = json.loads((tmp_path / "state.json").read_text())
        assert sorted(t["display_name"] for t in state["tenants"]) == ["Contoso demo", "Kept"]
    finally:
        stop(proc)
