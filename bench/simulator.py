"""Client-credentials token requests per second against the Entra simulator.

    python bench/simulator.py                       # starts `python -m entrasim serve` itself
    python bench/simulator.py --url https://127.0.0.1:8443 --ca /path/entrasim-ca.pem

Each request carries a fresh MSAL-shaped client assertion (RS256, `x5t` with padding, claims `aud`
= token endpoint, `iss` = `sub` = client id, `jti`, float `iat`/`exp` — what msal 1.39 sends for a
{"private_key", "thumbprint"} credential), signed by the client per request, as a health sweep
would. `--msal` drives real `msal.ConfidentialClientApplication`s instead (slower client side).
The server's CPU is what is measured; a separate process avoids sharing the GIL with the client.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from entrasim.testing import SimAdmin, SimCertificate, trusting_session  # noqa: E402

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def start_server() -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "entrasim",
            "serve",
            "--port",
            "0",
            "--cert-dir",
            os.path.join("/tmp", f"entrasim-bench-{os.getpid()}"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    ca = url = None
    for line in proc.stdout:
        if line.startswith("CA certificate"):
            ca = line.split(": ", 1)[1].strip()
        elif line.startswith("global"):
            url = re.search(r"https://\S+", line).group(0)
        elif line.strip() == "ready":
            break
    return proc, url, ca


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children (the gunicorn worker), from /proc."""
    total, pids = 0.0, [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def assertion(cert: SimCertificate, client_id: str, token_endpoint: str) -> str:
    now = time.time()
    x5t = base64.urlsafe_b64encode(bytes.fromhex(cert.sha1)).decode()  # MSAL keeps the padding
    return jwt.encode(
        {
            "aud": token_endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 600,
        },
        cert.key,
        algorithm="RS256",
        headers={"x5t": x5t, "typ": "JWT"},
    )


def worker(url, ca, tenant, client_id, cert, deadline, counts, errors, use_msal, presign, barrier):
    session = trusting_session(ca)
    endpoint = f"{url}/{tenant}/oauth2/v2.0/token"
    scope = "https://graph.microsoft.com/.default"
    n = bad = 0
    if use_msal:
        import msal

        app = msal.ConfidentialClientApplication(
            client_id,
            authority=f"{url}/{tenant}",
            http_client=session,
            instance_discovery=False,
            client_credential={"private_key": cert.key_pem, "thumbprint": cert.sha1},
        )
    # Assertions are signed before the clock starts (each with its own jti), so the figure measures
    # the simulator rather than this client's RSA signing; --msal signs inside the loop like MSAL.
    pool = [] if use_msal else [assertion(cert, client_id, endpoint) for _ in range(presign)]
    i = 0
    barrier.wait()
    while time.monotonic() < deadline["deadline"]:
        if use_msal:
            app.remove_tokens_for_client()  # force a network request every time
            ok = "access_token" in app.acquire_token_for_client([scope])
        else:
            data = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "scope": scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": pool[i % len(pool)],
            }
            i += 1
            with session.post(endpoint, data=data, timeout=30) as resp:
                ok = resp.status_code == 200
        n, bad = n + ok, bad + (not ok)
    counts.append(n)
    errors.append(bad)
    session.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="base URL of a running simulator's global listener")
    p.add_argument("--ca", help="its CA file (printed by `serve`)")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--msal", action="store_true", help="use real MSAL clients")
    args = p.parse_args()
    proc = None
    if args.url:
        url, ca = args.url.rstrip("/"), args.ca
    else:
        proc, url, ca = start_server()
    try:
        admin = SimAdmin(url, ca)
        tenant = admin.create_tenant(display_name="Bench")["id"]
        app = admin.create_app(tenant, display_name="bench")
        cert = SimCertificate()
        admin.upload_certificate(tenant, app["app_id"], cert.cert_pem)
        admin.grant_app_role(tenant, app["app_id"], "User.ReadWrite.All")
        admin.close()
        # Warm up (first requests pay for imports and caches).
        s = trusting_session(ca)
        endpoint = f"{url}/{tenant}/oauth2/v2.0/token"
        for _ in range(5):
            s.post(
                endpoint,
                data={
                    "grant_type": "client_credentials",
                    "client_id": app["app_id"],
                    "scope": "https://graph.microsoft.com/.default",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": assertion(cert, app["app_id"], endpoint),
                },
            ).close()
        s.close()
        counts, errors = [], []
        barrier = threading.Barrier(args.threads + 1)
        presign = max(50, int(400 * args.seconds / args.threads))
        box = {}
        threads = [
            threading.Thread(
                target=worker,
                args=(
                    url,
                    ca,
                    tenant,
                    app["app_id"],
                    cert,
                    box,
                    counts,
                    errors,
                    args.msal,
                    presign,
                    barrier,
                ),
            )
            for _ in range(args.threads)
        ]
        for t in threads:
            t.start()
        box["deadline"] = time.monotonic() + 3600  # set properly once every pool is signed
        barrier.wait()
        cpu_before = cpu_seconds(proc.pid) if proc else None
        start = time.monotonic()
        box["deadline"] = start + args.seconds
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        total = sum(counts)
        print(
            f"client-credentials token requests: {total} in {elapsed:.1f}s with "
            f"{args.threads} threads{' (msal)' if args.msal else ''} -> "
            f"{total / elapsed:.0f}/s, errors: {sum(errors)}"
        )
        if proc and total:
            # Load-independent figure: what one request costs the simulator.
            cpu = cpu_seconds(proc.pid) - cpu_before
            print(
                f"simulator CPU per request: {cpu / total * 1000:.2f} ms "
                f"(about {total / cpu:.0f} requests per CPU-second)"
            )
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
