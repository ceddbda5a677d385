"""Throughput of the host API's connection list and connect-session minting, relative to a bare
Flask hello-world.

Measured as bench/validate.py measures the format fragment: both apps under gunicorn with 2 sync
workers on loopback, loaded by wrk in alternating rounds of the same length, so machine noise
hits both alike. The figure that matters is the ratio: the API's cost over Flask's own floor,
with its real per-request work (key lookup and hash, scope, rate limit, request and response
validation, security headers, request log). The organization has CONNECTIONS connections, each
with a finished check and a certificate. Minting a connect session also writes: the host user's
guest row, the session (token hash) and an audit row, in SQLite.

    .venv/bin/python bench/api.py [--seconds 8] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import requests
from validate import ROOT, free_port, gunicorn, wait_until_up, wrk

CONNECTIONS = 5
LIST = "/api/v1/organizations/bench-org/connections"
MINT = "/api/v1/connect-sessions"
HOST_ORIGIN = "https://host.example"
MINT_SCRIPT = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{{"organization": "bench-org", "end_user": {{"id": "u-1"}},' ..
           ' "allowed_origins": ["{HOST_ORIGIN}"]}}'
"""


def make_bench_data(instance: Path) -> str:
    """An organization with connections and a key; returns the key."""
    instance.mkdir(parents=True, exist_ok=True)
    # The per-key limit (600 a minute) would stop wrk in a second: raise it, keep it counted.
    (instance / "config.py").write_text(
        f'API_RATE_LIMIT = "100000000 per minute"\nFRAME_ANCESTORS = [{HOST_ORIGIN!r}]\n'
    )
    os.environ["PORTAL_INSTANCE_PATH"] = str(instance)
    from portal import create_app, storage
    from portal.api import keys

    app = create_app()
    with app.app_context():
        org, _ = storage.put_organization_by_external_id("bench-org", "Bench org")
        for n in range(CONNECTIONS):
            connection = storage.create_connection(org.id, "customer_owned", f"Bench {n}")
            storage.update_connection(
                connection.id,
                cloud="global",
                tenant_id="11111111-2222-3333-4444-555555555555",
                tenant_name="Bench Ltd",
                tenant_domain="bench.onmicrosoft.com",
                last_checked_at=storage.utcnow(),
                last_check={"checklist": [{"key": f"item{i}", "status": "ok"} for i in range(6)]},
            )
            storage.add_certificate(
                connection.id,
                cert_pem="-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
                thumbprint_sha1="ab" * 20,
                thumbprint_sha256="cd" * 32,
                subject="CN=bench",
                not_before="2026-01-01T00:00:00+00:00",
                not_after="2027-01-01T00:00:00+00:00",
            )
        return keys.issue("bench", ["connections:read", "sessions:write"]).key


def check_list(base: str, key: str) -> None:
    session = requests.Session()
    session.trust_env = False
    answer = session.get(base + LIST, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    if answer.status_code != 200 or len(answer.json()["items"]) != CONNECTIONS:
        raise SystemExit(f"the connection list did not answer: {answer.status_code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        instance = Path(tmp) / "instance"
        key = make_bench_data(instance)
        env = {**os.environ, "PORTAL_INSTANCE_PATH": str(instance)}
        portal_port, hello_port = free_port(), free_port()
        servers = [
            gunicorn("wsgi:app", portal_port, env, ROOT),
            gunicorn("hello:app", hello_port, env, ROOT / "bench"),
        ]
        try:
            portal, hello = f"http://127.0.0.1:{portal_port}", f"http://127.0.0.1:{hello_port}"
            wait_until_up(portal + "/api/v1/openapi.json")
            wait_until_up(hello + "/")
            check_list(portal, key)
            headers = {"Authorization": f"Bearer {key}"}
            wrk(hello + "/", 1, args.connections, {})  # warm up both
            wrk(portal + LIST, 1, args.connections, headers)
            script = Path(tmp) / "mint.lua"
            script.write_text(MINT_SCRIPT)
            hello_rates, list_rates, mint_rates = [], [], []
            for _ in range(args.rounds):
                hello_rates.append(wrk(hello + "/", args.seconds, args.connections, {}))
                list_rates.append(wrk(portal + LIST, args.seconds, args.connections, headers))
                mint_rates.append(
                    wrk(portal + MINT, args.seconds, args.connections, headers, str(script))
                )
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)

    ratios = [r / h for r, h in zip(list_rates, hello_rates, strict=True)]
    mint_ratios = [r / h for r, h in zip(mint_rates, hello_rates, strict=True)]
    print(
        f"gunicorn 2 sync workers, wrk -t2 -c{args.connections}, {args.rounds} x "
        f"{args.seconds} s rounds, loopback, {os.cpu_count()} cores, {CONNECTIONS} connections"
    )
    print("hello-world req/s:      " + "  ".join(f"{r:8.0f}" for r in hello_rates))
    print("connection list req/s:  " + "  ".join(f"{r:8.0f}" for r in list_rates))
    print("connect session req/s:  " + "  ".join(f"{r:8.0f}" for r in mint_rates))
    print("list ratio per round:   " + "  ".join(f"{r:8.2f}" for r in ratios))
    print("mint ratio per round:   " + "  ".join(f"{r:8.2f}" for r in mint_ratios))
    print(f"hello_rps = {statistics.median(hello_rates):.0f}")
    print(f"connection_list_rps = {statistics.median(list_rates):.0f}")
    print(f"connect_session_rps = {statistics.median(mint_rates):.0f}")
    print(f"connection_list_ratio = {statistics.median(ratios):.2f}")
    print(f"connect_session_ratio = {statistics.median(mint_ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
