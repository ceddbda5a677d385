"""Command line: `python -m entrasim serve --port 8443 [--state FILE] [--latency-ms N]
[--write-clouds FILE] [--seed-demo] [--cert-dir DIR]`.

Listens on 127.0.0.1, one HTTPS port per cloud alias starting at --port (0: ephemeral ports), and
prints the CA file clients must trust and each cloud's base URL.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from . import catalog, directory
from .app import Sim
from .server import Certificates, SimServer, cloud_entry, port_free
from .tokens import Signer

DEMO_DOMAIN = "contosodemo.onmicrosoft.com"
DEMO_ADMIN = f"admin@{DEMO_DOMAIN}"


def seed_demo(sim: Sim) -> list[str]:
    """Create the demo tenant and its admin once; returns lines describing what exists."""
    store = sim.store
    lines = []
    with store.lock:
        t = store.find_tenant(DEMO_DOMAIN)
        if t is None:
            made = directory.create_tenant(store, "global", [DEMO_DOMAIN], "Contoso demo")
            t = store.tenants[made["id"]]
            lines.append(f"created tenant 'Contoso demo' {t.id} ({DEMO_DOMAIN}, global cloud)")
        else:
            lines.append(f"tenant 'Contoso demo' {t.id} already exists")
        if store.find_user(DEMO_ADMIN) is None:
            directory.create_user(store, t.id, DEMO_ADMIN, "Demo Admin", admin=True)
            lines.append(f"created admin user {DEMO_ADMIN} (Global Administrator)")
        else:
            lines.append(f"admin user {DEMO_ADMIN} already exists")
    return lines


class StateFile:
    """Loads state at start and saves it whenever it changed (checked every second) and at exit."""

    def __init__(self, path: str, sim: Sim) -> None:
        self.path, self.sim = Path(path), sim
        self._last = None
        self._stop = threading.Event()

    def load(self) -> bool:
        if not self.path.exists():
            return False
        self.sim.store.load(json.loads(self.path.read_text()))
        self._last = self._dump()
        return True

    def _dump(self) -> str:
        return json.dumps(self.sim.store.to_dict(), sort_keys=True)

    def save(self) -> None:
        text = self._dump()
        if text != self._last:
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)
            self._last = text

    def run(self) -> None:
        while not self._stop.wait(1.0):
            self.save()

    def stop(self) -> None:
        self._stop.set()
        self.save()


def _signer(cert_dir: Path) -> Signer:
    """The token-signing key, kept in the certificate directory so tokens survive a restart."""
    path = cert_dir / "token-signing-key.pem"
    if path.exists():
        return Signer(path.read_bytes())
    signer = Signer()
    path.write_bytes(signer.private_pem())
    path.chmod(0o600)
    return signer


def serve(args) -> int:
    cert_dir = Path(
        args.cert_dir
        or (
            Path(args.state).resolve().parent / "entrasim-tls"
            if args.state
            else Path.home() / ".cache" / "entrasim"
        )
    )
    cert_dir.mkdir(parents=True, exist_ok=True)
    if args.port:
        busy = [
            p
            for p in range(args.port, args.port + len(catalog.CLOUDS))
            if not port_free(args.host, p)
        ]
        if busy:
            print(f"entrasim: port(s) {busy} already in use", file=sys.stderr)
            return 2
    sim = Sim(signer=_signer(cert_dir), base_latency_ms=args.latency_ms)
    state = StateFile(args.state, sim) if args.state else None
    if state and state.load():
        print(f"state: loaded {args.state}")
    server = None
    if args.server == "werkzeug":
        server = SimServer(sim, port=args.port, host=args.host, cert_dir=cert_dir).start()
        certs, ports = server.certs, [server.port(key) for key in catalog.CLOUDS]
    else:
        certs = Certificates(cert_dir)
        ports = (
            [args.port + i for i in range(len(catalog.CLOUDS))]
            if args.port
            else [_free_port(args.host) for _ in catalog.CLOUDS]
        )
    bases = {
        key: f"https://{args.host}:{port}" for key, port in zip(catalog.CLOUDS, ports, strict=True)
    }
    print(f"CA certificate (trust this): {certs.ca_path}")
    for key, base in bases.items():
        print(f"{key:9} {base}   admin center: {base}/_sim/admin")
    if args.seed_demo:
        for line in seed_demo(sim):
            print(f"demo: {line}")
    if state:
        state.save()
        print(f"state: saving to {args.state}")
    if args.latency_ms:
        print(f"latency: {args.latency_ms} ms on every protocol endpoint")
    sys.stdout.flush()

    def announce():  # once the listeners accept connections
        if args.write_clouds:
            print(
                f"clouds file: {write_clouds(args.write_clouds, bases, certs.ca_path)}", flush=True
            )

    if server is None:
        return _run_gunicorn(sim, args.host, ports, bases, certs, state, args.threads, announce)
    announce()
    if state:
        threading.Thread(target=state.run, daemon=True, name="entrasim-state").start()
    print("ready", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    if state:
        state.stop()
    return 0


def _run_gunicorn(sim, host, ports, bases, certs, state, threads, on_ready) -> int:
    from .app import Listener, create_app
    from .production import GunicornServer, PortDispatch

    app = create_app(sim)
    dispatch = PortDispatch(
        {
            port: Listener(app, key, bases[key])
            for key, port in zip(catalog.CLOUDS, ports, strict=True)
        }
    )
    cert_file = str(Path(certs.dir) / "server.pem")
    certs.server_cert.private_key_and_cert_chain_pem.write_to_path(cert_file)
    Path(cert_file).chmod(0o600)

    def started():  # in the worker process: threads do not survive gunicorn's fork
        if state:
            state.load()  # a re-spawned worker continues from the last saved state
            threading.Thread(target=state.run, daemon=True, name="entrasim-state").start()

    GunicornServer(
        dispatch,
        host,
        ports,
        cert_file,
        threads=threads,
        on_ready=on_ready,
        on_worker_start=started,
        on_worker_exit=state.stop if state else None,
    ).run()
    return 0


def write_clouds(path: str, bases: dict, ca_path: str) -> str:
    """The PORTAL_CLOUDS_FILE for these base URLs (same format as SimServer.clouds())."""
    rows = [cloud_entry(key, base, ca_path) for key, base in bases.items()]
    # Written once the listeners accept connections, atomically: launchers wait for this file.
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(rows, indent=2))
    os.replace(tmp, path)
    return path


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrasim", description="Entra ID / Microsoft Graph simulator"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve HTTPS on 127.0.0.1, one port per cloud")
    s.add_argument(
        "--port",
        type=int,
        default=8443,
        help="first port (global); the other clouds take the next ones; 0: ephemeral",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--state", help="JSON state file: loaded at start, saved on change")
    s.add_argument("--latency-ms", type=int, default=0, help="added to every protocol endpoint")
    s.add_argument("--write-clouds", metavar="FILE", help="write a PORTAL_CLOUDS_FILE")
    s.add_argument(
        "--seed-demo",
        action="store_true",
        help="create the 'Contoso demo' tenant and its admin (idempotent)",
    )
    s.add_argument("--cert-dir", help="where the CA and signing key are kept")
    s.add_argument(
        "--server",
        choices=["gunicorn", "werkzeug"],
        default="gunicorn",
        help="gunicorn (keep-alive, fast; default) or the werkzeug dev server",
    )
    s.add_argument("--threads", type=int, default=64, help="gunicorn worker threads")
    args = parser.parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
