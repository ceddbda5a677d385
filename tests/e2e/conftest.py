"""Browser tests: Debian's Chromium driven by Playwright, against live servers on loopback.

Playwright's own browser download is not reachable here, so the session launches
/usr/bin/chromium through ``executable_path``. The portal runs in a thread of the test process
(werkzeug, threaded) next to the Entra simulator's listeners, so a test can restart it on the
same port and see what a real restart keeps: only what is in SQLite and the instance folder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from werkzeug.serving import make_server

from portal import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch Debian's Chromium with the flags that work on these machines."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_FLAGS,
        "headless": True,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    """Trust the simulator's self-made CA (it is its own origin) and allow downloads."""
    return {**browser_context_args, "ignore_https_errors": True, "accept_downloads": True}


@pytest.fixture(scope="session")
def base_url():
    """No global base URL: each test builds absolute URLs from its own live servers.

    (This also replaces pytest-playwright's fallback fixture, an instance-method fixture that
    pytest 9 deprecates, which our ``filterwarnings = error`` would turn into an error.)
    """
    return None


class LiveServer:
    """A WSGI app served on a loopback port in a background thread; restartable on that port."""

    def __init__(self, make_app: Callable[[], object], host: str = "127.0.0.1") -> None:
        self._make_app = make_app
        self.host = host
        self.port = 0
        self.app = None
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveServer:
        self.app = self._make_app()
        self._server = make_server(self.host, self.port, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def restart(self) -> None:
        """Stop, then serve a freshly built app on the same port (a server restart)."""
        self.stop()
        self.start()

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"


@pytest.fixture
def portal_config(app_config, sim_server, tmp_path):
    """The portal's test mapping with the simulator's clouds configured."""
    config = dict(app_config)
    config["CLOUDS_FILE"] = sim_server.clouds_file(str(tmp_path / "sim-clouds.json"))
    return config


@pytest.fixture
def live_portal(portal_config, sim):
    """``live_portal(**overrides) -> LiveServer``: the portal served on a loopback port."""
    servers: list[LiveServer] = []

    def start(host: str = "127.0.0.1", **overrides) -> LiveServer:
        config = {**portal_config, **overrides}
        server = LiveServer(lambda: create_app(dict(config)), host=host).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def console_errors(page):
    """Collects console errors and uncaught page errors; a test asserts the list is empty."""
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@pytest.fixture
def tenant(sim):
    """The customer's tenant in the simulator's global cloud, with an app registration."""
    t = sim.create_tenant(
        cloud="global", domains=["contoso.onmicrosoft.com"], display_name="Contoso Ltd"
    )
    app = sim.create_app(t["id"], display_name="HR sync")
    return {"id": t["id"], "domain": "contoso.onmicrosoft.com", "client_id": app["app_id"]}
