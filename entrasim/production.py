"""Serving the simulator with gunicorn (the `serve` command's default).

The werkzeug server closes the connection after every response, so each token request pays a TLS
handshake on both sides. gunicorn's threaded worker keeps connections alive, which is what lets
`bench/simulator.py` pass 200 client-credentials requests per second on two cores. One worker
process only: the directory lives in that process's memory. Each listener is one bound port; the
request's SERVER_PORT (gunicorn sets it from the listening socket) says which cloud it is.
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from .app import Listener


class PortDispatch:
    """WSGI app: route each request to the Listener of the port it arrived on."""

    def __init__(self, listeners: dict[int, Listener]) -> None:
        self.listeners = listeners

    def __call__(self, environ, start_response):
        listener = self.listeners[int(environ["SERVER_PORT"])]
        return listener(environ, start_response)


class GunicornServer(BaseApplication):
    def __init__(
        self,
        app: PortDispatch,
        host: str,
        ports: list[int],
        cert_file: str,
        threads: int = 64,
        on_ready=None,
        on_worker_start=None,
        on_worker_exit=None,
    ) -> None:
        self.dispatch, self.host, self.ports, self.cert_file = app, host, ports, cert_file
        self.threads, self.on_start, self.on_exit = threads, on_worker_start, on_worker_exit
        self.on_ready = on_ready
        super().__init__()

    def load_config(self) -> None:
        settings = {
            "bind": [f"{self.host}:{p}" for p in self.ports],
            "workers": 1,
            "worker_class": "gthread",
            "threads": self.threads,
            "worker_connections": 2000,
            "keepalive": 30,
            "certfile": self.cert_file,
            "keyfile": self.cert_file,
            "loglevel": "warning",
            "accesslog": None,
            "timeout": 0,
            # A `hang` fault holds a thread for its duration; keep enough for many at once.
        }
        settings["when_ready"] = lambda server: self._ready()
        if self.on_start:
            settings["post_worker_init"] = lambda worker: self.on_start()
        if self.on_exit:
            settings["worker_exit"] = lambda server, worker: self.on_exit()
        for key, value in settings.items():
            self.cfg.set(key, value)

    def _ready(self) -> None:
        # The listening sockets are bound now (connections queue until the worker accepts), so
        # whoever waits for the clouds file or for "ready" can connect at once.
        if self.on_ready:
            self.on_ready()
        print("ready", flush=True)

    def load(self):
        return self.dispatch
