"""HTTPS listeners on loopback, one per national-cloud alias, sharing one simulator.

The werkzeug server is threaded (a `hang` fault holds only its own request) and quiet (no request
lines). TLS handshakes run in each request's thread, not in the accept loop, so a client that
connects and stalls cannot block the listener.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import tempfile
import threading
from pathlib import Path

import trustme
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from . import catalog
from .app import Listener, Sim, create_app

HANDSHAKE_TIMEOUT = 10


class QuietHandler(WSGIRequestHandler):
    def setup(self):
        # Complete the TLS handshake here, in the request's own thread.
        sock = self.request
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(HANDSHAKE_TIMEOUT)
            sock.do_handshake()
            sock.settimeout(None)
        super().setup()

    def log_request(self, code="-", size="-"):
        pass

    def log(self, type, message, *args):
        if type == "error" and os.environ.get("ENTRASIM_DEBUG"):
            super().log(type, message, *args)


class TLSServer(ThreadedWSGIServer):
    def __init__(self, host, port, app, ssl_context: ssl.SSLContext):
        super().__init__(host, port, app, handler=QuietHandler)
        self.socket = ssl_context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self.ssl_context = ssl_context  # werkzeug reads it for wsgi.url_scheme

    def handle_error(self, request, client_address):
        pass  # failed handshakes and dropped clients are normal here; never print tracebacks


class Certificates:
    """The simulator CA (trustme) and its server certificate for 127.0.0.1 / localhost.

    With `directory`, the CA is kept there (entrasim-ca.pem + key) and reused on the next start,
    so a browser or portal that trusts it keeps working across restarts.
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.dir = Path(directory or tempfile.mkdtemp(prefix="entrasim-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        ca_file, key_file = self.dir / "entrasim-ca.pem", self.dir / "entrasim-ca.key"
        if ca_file.exists() and key_file.exists():
            self.ca = trustme.CA.from_pem(ca_file.read_bytes(), key_file.read_bytes())
        else:
            self.ca = trustme.CA(organization_name="entrasim")
            key_file.write_bytes(self.ca.private_key_pem.bytes())
            key_file.chmod(0o600)
            self.ca.cert_pem.write_to_path(str(ca_file))
        self.ca_path = str(ca_file)
        self.server_cert = self.ca.issue_cert("127.0.0.1", "localhost", "::1")

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.server_cert.configure_cert(ctx)
        return ctx


class SimServer:
    """A running simulator: one HTTPS listener per cloud on 127.0.0.1."""

    def __init__(
        self, sim: Sim | None = None, port: int = 0, host: str = "127.0.0.1", cert_dir=None
    ) -> None:
        self.sim = sim or Sim()
        self.app = create_app(self.sim)
        self.host = host
        self.certs = Certificates(cert_dir)
        self.ca_path = self.certs.ca_path
        self._port = port
        self._servers: dict[str, TLSServer] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> SimServer:
        ctx = self.certs.server_context()
        for i, key in enumerate(catalog.CLOUDS):
            listener = Listener(self.app, key, "")
            server = TLSServer(self.host, self._port + i if self._port else 0, listener, ctx)
            listener.base = f"https://{self.host}:{server.socket.getsockname()[1]}"
            self._servers[key] = server
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"entrasim-{key}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.sim.faults.clear()  # wake hanging requests
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def base_url(self, cloud_key: str = "global") -> str:
        key = cloud_key.removeprefix("sim-")
        return self._servers[key].app.base

    def port(self, cloud_key: str = "global") -> int:
        return self._servers[cloud_key.removeprefix("sim-")].socket.getsockname()[1]

    def clouds(self) -> list[dict]:
        """The simulator's clouds in the portal's PORTAL_CLOUDS_FILE format (README)."""
        return [cloud_entry(key, self.base_url(key), self.ca_path) for key in catalog.CLOUDS]

    def clouds_file(self, path) -> str:
        Path(path).write_text(json.dumps(self.clouds(), indent=2))
        return str(path)


def cloud_entry(key: str, base: str, ca_path: str) -> dict:
    """One cloud in the portal's PORTAL_CLOUDS_FILE format (README)."""
    c = catalog.CLOUDS[key]
    return {
        "key": f"sim-{key}",
        "label": c.label,
        "mirrors": key,
        "login_base": base,
        "graph_base": base,
        "graph_resource": c.graph_resource,
        "exchange_resource": c.exchange_resource,
        "portal_url": f"{base}/_sim/admin",
        "entra_url": f"{base}/_sim/admin",
        "ca_bundle": ca_path,
        "tenant_region_scope": c.tenant_region_scope,
        "tenant_region_sub_scope": c.tenant_region_sub_scope,
        "simulator": True,  # the portal refuses a simulator cloud in production
    }


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
