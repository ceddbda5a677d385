"""`make run`: the portal in demo mode, with the Entra simulator offered as a set of demo clouds.

Starts the simulator (state kept in instance/, so a restart keeps what the person did), registers
the portal's own multi-tenant application in it once (for service-provider connections), makes a
demo organization and sign-in once, prints how to use it, then serves the portal until Ctrl-C.
Nothing here is used in production: the production configuration has no simulator cloud.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("PORTAL_INSTANCE_PATH") or ROOT / "instance").resolve()
SIM_DIR = INSTANCE / "entrasim"
CLOUDS_FILE = INSTANCE / "sim-clouds.json"
SP_CERT_FILE = INSTANCE / "demo-sp-app.pem"
DEMO_FILE = INSTANCE / "demo.json"
DEMO_ORG = "Contoso (demo)"
DEMO_EMAIL = "admin@demo.example"
PUBLISHER_DOMAIN = "hrautomation-publisher.onmicrosoft.com"
SP_APP_NAME = "HR Automation (demo service provider app)"


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (keys, the demo password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def start_simulator(port: int) -> subprocess.Popen:
    """Start the simulator and wait until it has written the portal's clouds file."""
    SIM_DIR.mkdir(parents=True, exist_ok=True)
    if CLOUDS_FILE.exists():
        CLOUDS_FILE.unlink()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "entrasim",
            "serve",
            "--port",
            str(port),
            "--state",
            str(INSTANCE / "entrasim-state.json"),
            "--cert-dir",
            str(SIM_DIR),
            "--write-clouds",
            str(CLOUDS_FILE),
            "--seed-demo",
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not CLOUDS_FILE.exists():
        if process.poll() is not None:
            raise SystemExit(
                f"the Entra simulator exited ({process.returncode}); "
                f"is port {port} (or one of the next three) in use?"
            )
        if time.monotonic() > deadline:
            process.terminate()
            raise SystemExit("the Entra simulator did not start within 30 s")
        time.sleep(0.1)
    return process


def register_service_provider_app(clouds: list[dict], public_url: str) -> str:
    """Register the portal's multi-tenant app in the simulator's global cloud, once.

    Returns its client id. The certificate's private key stays in instance/ (mode 0600).
    """
    from entrasim.admin_client import SimAdmin
    from portal.entra.certificates import issue_certificate

    sim_global = next(c for c in clouds if c["key"] == "sim-global")
    admin = SimAdmin(sim_global["login_base"], sim_global["ca_bundle"])
    try:
        demo = json.loads(DEMO_FILE.read_text()) if DEMO_FILE.exists() else {}
        state = admin.state()
        known_apps = json.dumps(state)
        if (
            demo.get("sp_client_id")
            and demo["sp_client_id"] in known_apps
            and SP_CERT_FILE.exists()
        ):
            return demo["sp_client_id"]
        tenant = admin.create_tenant(
            cloud="global",
            domains=[PUBLISHER_DOMAIN],
            display_name="HR Automation (publisher, demo)",
        )
        app = admin.create_app(
            tenant["id"],
            display_name=SP_APP_NAME,
            multi_tenant=True,
            redirect_uris=[public_url + "/oauth/callback"],
        )
        cert = issue_certificate(
            "HR Automation demo service provider app",
            "demo-sp-app",
            validity_days=365,
            key_size=2048,
        )
        admin.upload_certificate(tenant["id"], app["app_id"], cert.cert_pem)
        write_private(SP_CERT_FILE, cert.private_key_pem + b"\n" + _bytes(cert.cert_pem))
        demo["sp_client_id"] = app["app_id"]
        write_private(DEMO_FILE, json.dumps(demo, indent=2).encode())
        return app["app_id"]
    finally:
        admin.close()


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def ensure_demo_login(env: dict) -> str:
    """Create the demo organization and admin once; returns the password (kept in instance/)."""
    os.environ.update(env)
    from werkzeug.security import generate_password_hash

    from portal import create_app, storage

    demo = json.loads(DEMO_FILE.read_text()) if DEMO_FILE.exists() else {}
    app = create_app()
    with app.app_context():
        org = storage.get_organization_by_name(DEMO_ORG) or storage.create_organization(DEMO_ORG)
        user = storage.get_user_by_email(DEMO_EMAIL)
        if user is None or not demo.get("password"):
            demo["password"] = secrets.token_urlsafe(12)
            password_hash = generate_password_hash(demo["password"], method="scrypt")
            if user is None:
                storage.create_user(DEMO_EMAIL, "admin", password_hash, org.id)
            else:
                storage.set_password_hash(user.id, password_hash)
            write_private(DEMO_FILE, json.dumps(demo, indent=2).encode())
    return demo["password"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)))
    parser.add_argument("--sim-port", type=int, default=int(os.environ.get("SIM_PORT", 8443)))
    args = parser.parse_args()
    # SIGTERM (a service manager, `timeout`) stops the demo like Ctrl-C: both children end too.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    INSTANCE.mkdir(mode=0o700, exist_ok=True)
    public_url = f"http://127.0.0.1:{args.port}"
    simulator = start_simulator(args.sim_port)
    try:
        clouds = json.loads(CLOUDS_FILE.read_text())
        client_id = register_service_provider_app(clouds, public_url)
        env = {
            "PORTAL_INSTANCE_PATH": str(INSTANCE),
            "PORTAL_CLOUDS_FILE": str(CLOUDS_FILE),
            "PORTAL_DEMO": "1",
            "PORTAL_PUBLIC_URL": public_url,
            "PORTAL_SP_CLIENT_ID": client_id,
            "PORTAL_SP_CERT_FILE": str(SP_CERT_FILE),
            "PORTAL_SP_CLOUDS": "sim-global",
        }
        password = ensure_demo_login(env)
        admin_center = next(c for c in clouds if c["key"] == "sim-global")["portal_url"]
        print(
            f"""
  Portal (demo mode)   {public_url}
  Sign in as           {DEMO_EMAIL}
  Password             {password}
  Simulator admin      {admin_center}
                       (a self-signed CA: your browser will warn once; the demo tenant is
                        'Contoso demo', contosodemo.onmicrosoft.com, in the simulator's global
                        cloud)
  Stop with Ctrl-C.
""",
            flush=True,
        )
        # gunicorn with the repository's settings, as in production: it forks its workers
        # before any database connection or job thread exists.
        portal = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(ROOT / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{args.port}",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
        )
        try:
            return portal.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            stop(portal)
    finally:
        stop(simulator)


def stop(process: subprocess.Popen) -> None:
    """Terminate a child and wait for it (kill it if it does not stop)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    raise SystemExit(main())
