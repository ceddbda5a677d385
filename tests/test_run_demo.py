"""`make run` from nothing: the demo launcher starts the simulator and the portal under gunicorn."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port_block(count: int) -> int:
    """A base port with ``count`` free consecutive ports after it (the simulator needs four)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count >= 65535:
            continue
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free block of ports")


def test_demo_serves_login_and_demo_sign_in_works(tmp_path):
    port, sim_port = free_port_block(1), free_port_block(4)
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path / "instance")}
    with subprocess.Popen(
        [sys.executable, "scripts/run_demo.py", "--port", str(port), "--sim-port", str(sim_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            _check_demo(process, port, tmp_path)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def _check_demo(process, port: int, tmp_path: Path) -> None:
    """Wait for the banner, then sign in with the printed demo password."""
    output = []
    deadline = time.monotonic() + 60
    password = None
    while time.monotonic() < deadline and password is None:
        line = process.stdout.readline()
        assert line, "the launcher exited early:\n" + "".join(output)
        output.append(line)
        match = re.search(r"Password\s+(\S+)", line)
        password = match.group(1) if match else None
    assert password, "".join(output)
    session = requests.Session()
    session.trust_env = False
    for _ in range(100):  # gunicorn's workers boot after the banner, then build their app
        try:
            page = session.get(f"http://127.0.0.1:{port}/login", timeout=10)
            break
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    assert page.status_code == 200 and "Sign in" in page.text
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    signed_in = session.post(
        f"http://127.0.0.1:{port}/login",
        data={"email": "admin@demo.example", "password": password, "csrf_token": token},
        headers={"Origin": f"http://127.0.0.1:{port}"},
        allow_redirects=False,
        timeout=5,
    )
    assert signed_in.status_code == 302, signed_in.text
    # The simulator is offered as demo clouds, and the demo keys were generated privately.
    instance = tmp_path / "instance"
    assert "sim-global" in (instance / "sim-clouds.json").read_text()
    for name in ("secret_key", "vault.key", "demo-sp-app.pem", "demo.json"):
        assert (instance / name).stat().st_mode & 0o077 == 0, name
