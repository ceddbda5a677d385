"""Faults on demand and the request log.

A fault matches an endpoint name (see README) or "*", and affects `times` matching requests (None:
until cleared). Kinds: `latency` (sleep `ms`, then answer normally), `status` (answer `status`, with
`Retry-After` when given, in the endpoint's own error shape), `hang` (hold the request `seconds`,
then close the connection; other requests are served meanwhile, each having its own thread),
`drop` (close the TCP connection without any response).
"""

from __future__ import annotations

import errno
import socket
import threading
from dataclasses import asdict, dataclass

KINDS = {"latency", "status", "hang", "drop"}
CLOUDS = {"global", "usgov-l4", "usgov-l5", "china"}

ENDPOINTS = {
    "openid-configuration",
    "keys",
    "authorize",
    "token",
    "adminconsent",
    "graph.organization",
    "graph.serviceprincipal",
    "graph.approleassignments",
    "graph.roleassignments",
    "graph.me",
    "graph.users",
}


@dataclass
class Fault:
    endpoint: str
    kind: str
    times: int | None = None
    status: int | None = None
    retry_after: int | None = None
    ms: int | None = None
    seconds: float | None = None
    #: Only requests to this cloud's listener (None: every cloud). Extension: Microsoft's
    #: clouds fail independently of each other.
    cloud: str | None = None

    def matches(self, endpoint: str, cloud: str | None = None) -> bool:
        return self.endpoint in ("*", endpoint) and self.cloud in (None, cloud)


class DroppedConnection(ConnectionAbortedError):
    """Raised from the WSGI app after the socket is shut: werkzeug treats it as a dropped client
    connection and logs nothing."""


class Faults:
    """Registered faults, the request log and the wake-up event that ends hangs on reset."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.log: list[dict] = []
        self._wake = threading.Event()

    def add(self, fault: Fault) -> None:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; one of {sorted(KINDS)}")
        if fault.endpoint != "*" and fault.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {fault.endpoint!r}; one of {sorted(ENDPOINTS)}")
        if fault.cloud is not None and fault.cloud not in CLOUDS:
            raise ValueError(f"unknown cloud {fault.cloud!r}; one of {sorted(CLOUDS)}")
        if fault.kind == "status" and not fault.status:
            raise ValueError("a status fault needs `status`")
        with self.lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            # Release every request still hanging, so a reset never waits on an old test's fault.
            self._wake.set()
            self._wake = threading.Event()

    def reset(self) -> None:
        self.clear()
        with self.lock:
            self.log.clear()

    def take(self, endpoint: str, cloud: str | None = None) -> Fault | None:
        """The first fault matching this request, consuming one of its `times`."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(endpoint, cloud):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def wait(self, seconds: float) -> None:
        with self.lock:
            wake = self._wake
        wake.wait(seconds)

    def record(self, entry: dict) -> None:
        with self.lock:
            self.log.append(entry)
            if len(self.log) > 10_000:  # a long demo session must not grow without bound
                del self.log[:1_000]

    def entries(self, endpoint: str | None = None) -> list[dict]:
        with self.lock:
            return [dict(e) for e in self.log if endpoint in (None, e["endpoint"])]

    def describe(self) -> list[dict]:
        with self.lock:
            return [asdict(f) for f in self.faults]


def drop_connection(environ) -> None:
    """Shut the client's socket (no TLS close_notify, no HTTP response) and abort the request.

    ECONNRESET makes both werkzeug and gunicorn treat it as a client that went away (no log).
    """
    sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise DroppedConnection(errno.ECONNRESET, "entrasim fault: connection dropped")
