"""Throughput of the live tenant-ID format fragment, relative to a bare Flask hello-world.

Both apps run under gunicorn with 2 sync workers on loopback and are loaded by wrk on the same
machine, in alternating rounds of the same length, so machine noise hits both alike. The figure
that matters is the ratio (aim: >= 0.8): the fragment's cost over Flask's own floor, with the
portal's real per-request work included (session, user load, security headers, request log).

    .venv/bin/python bench/validate.py [--seconds 8] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
FRAGMENT = "/connections/validate/tenant?tenant_input=contoso.onmicrosoft.com"
PASSWORD = "bench-password-not-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gunicorn(app: str, port: int, env: dict, chdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(chdir),
            app,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until_up(url: str) -> None:
    session = requests.Session()
    session.trust_env = False
    for _ in range(200):
        try:
            session.get(url, timeout=5)  # a worker's first request builds its app
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def make_bench_user(instance: Path) -> None:
    os.environ["PORTAL_INSTANCE_PATH"] = str(instance)
    from werkzeug.security import generate_password_hash

    from portal import create_app, storage

    app = create_app()
    with app.app_context():
        org = storage.create_organization("Bench org")
        storage.create_user("bench@example.com", "admin", generate_password_hash(PASSWORD), org.id)


def session_cookie(base: str) -> str:
    """Sign in through the real form; returns the Cookie header value."""
    session = requests.Session()
    session.trust_env = False
    page = session.get(base + "/login", timeout=5)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    answer = session.post(
        base + "/login",
        data={
            "email": "bench@example.com",
            "password": PASSWORD,
            "csrf_token": token,
        },
        headers={"Origin": base},
        allow_redirects=False,
        timeout=10,
    )
    if answer.status_code != 302:
        raise SystemExit(f"sign-in failed: {answer.status_code}")
    check = session.get(base + FRAGMENT, headers={"HX-Request": "true"}, timeout=5)
    if check.status_code != 200 or "tenant" not in check.text.lower():
        raise SystemExit(f"the fragment did not render: {check.status_code}")
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def wrk(
    url: str, seconds: int, connections: int, headers: dict[str, str], script: str | None = None
) -> float:
    """Requests per second; ``script``: a wrk Lua file (e.g. a POST with its body)."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s"]
    if script:
        command += ["-s", script]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        instance = Path(tmp) / "instance"
        make_bench_user(instance)
        env = {**os.environ, "PORTAL_INSTANCE_PATH": str(instance)}
        portal_port, hello_port = free_port(), free_port()
        servers = [
            gunicorn("wsgi:app", portal_port, env, ROOT),
            gunicorn("hello:app", hello_port, env, ROOT / "bench"),
        ]
        try:
            portal, hello = f"http://127.0.0.1:{portal_port}", f"http://127.0.0.1:{hello_port}"
            wait_until_up(portal + "/login")
            wait_until_up(hello + "/")
            cookie = session_cookie(portal)
            fragment_headers = {"Cookie": cookie, "HX-Request": "true"}
            wrk(hello + "/", 1, args.connections, {})  # warm up both
            wrk(portal + FRAGMENT, 1, args.connections, fragment_headers)
            hello_rates, fragment_rates = [], []
            for _ in range(args.rounds):
                hello_rates.append(wrk(hello + "/", args.seconds, args.connections, {}))
                fragment_rates.append(
                    wrk(portal + FRAGMENT, args.seconds, args.connections, fragment_headers)
                )
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)

    ratios = [f / h for f, h in zip(fragment_rates, hello_rates, strict=True)]
    print(
        f"gunicorn 2 sync workers, wrk -t2 -c{args.connections}, {args.rounds} x "
        f"{args.seconds} s rounds, loopback, {os.cpu_count()} cores"
    )
    print("hello-world req/s:      " + "  ".join(f"{r:8.0f}" for r in hello_rates))
    print("format fragment req/s:  " + "  ".join(f"{r:8.0f}" for r in fragment_rates))
    print("ratio per round:        " + "  ".join(f"{r:8.2f}" for r in ratios))
    print(f"median ratio: {statistics.median(ratios):.2f}  (aim >= 0.8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
