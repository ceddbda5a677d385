"""Plain helpers of the wizard tests: a signed-in browser working through the wizard."""

from __future__ import annotations

import html
import re
import time

from portal import storage
from tests.conftest import csrf_token

HX = {"HX-Request": "true"}
GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


class Wizard:
    """A signed-in browser working on one connection's wizard."""

    def __init__(self, client, connection_id: str):
        self.client = client
        self.id = connection_id
        self.token = csrf_token(client, f"/connections/{connection_id}/setup")

    @property
    def url(self) -> str:
        return f"/connections/{self.id}/setup"

    def post(self, path: str, data: dict | None = None, htmx: bool = True):
        data = {**(data or {}), "csrf_token": self.token}
        return self.client.post(path, data=data, headers=HX if htmx else {})

    def cloud(self, key: str, htmx: bool = True):
        return self.post(f"{self.url}/cloud", {"cloud": key}, htmx)

    def ids(self, tenant: str = "", client_id: str = "", htmx: bool = True):
        return self.post(f"{self.url}/ids", {"tenant_input": tenant, "client_id": client_id}, htmx)

    def page(self) -> str:
        return text(self.client.get(self.url))


def start_wizard(client) -> Wizard:
    token = csrf_token(client, "/connections/new")
    response = client.post("/connections/new", data={"kind": "customer_owned", "csrf_token": token})
    assert response.status_code == 302
    connection_id = response.headers["Location"].split("/")[2]
    return Wizard(client, connection_id)


def connection(app, connection_id: str) -> storage.Connection:
    with app.app_context():
        return storage.get_connection(connection_id)


def text(response) -> str:
    """The body with HTML character references decoded (markup stays)."""
    return html.unescape(response.get_data(as_text=True))


ALL_GRAPH = (
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
    "User.EnableDisableAccount.All",
)
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"


def ready(app, wizard, sim, tenant, grants=ALL_GRAPH, roles=(USER_ADMIN,), upload=True):
    """Walk the wizard to step 6 and set the app up in the simulator as a customer would."""
    wizard.cloud("sim-global")
    wizard.ids(tenant["domain"], tenant["client_id"])
    wizard.post(f"{wizard.url}/registered")
    with app.app_context():
        cert = storage.active_certificate(wizard.id)
    if upload:
        sim.upload_certificate(tenant["id"], tenant["client_id"], cert.cert_pem)
    for permission in grants:
        sim.grant_app_role(tenant["id"], tenant["client_id"], permission)
    for role in roles:
        sim.assign_directory_role(tenant["id"], tenant["client_id"], role)
    return cert


#: The poll of a running job's progress region (``connection/_job.html``).
JOB_POLL = re.compile(r'hx-get="([^"]+/jobs/[^"]+)" hx-trigger="every 1s"')


def follow_job(client, response, timeout: float = 30.0):
    """Poll the progress region in ``response`` as the browser does, until the job is
    finished; returns the last answer (the response itself when nothing runs)."""
    end = time.monotonic() + timeout
    while True:
        found = JOB_POLL.search(response.get_data(as_text=True))
        if found is None:
            return response
        assert time.monotonic() < end, "the job did not finish"
        time.sleep(0.05)
        response = client.get(html.unescape(found.group(1)), headers=HX)
        assert response.status_code == 200


def wait_for_jobs(app, connection_id: str, timeout: float = 30.0) -> storage.Job | None:
    """Wait until the connection's newest job is finished (a browser without JavaScript)."""
    end = time.monotonic() + timeout
    while True:
        with app.app_context():
            job = storage.latest_job(connection_id)
        if job is None or job.finished:
            return job
        assert time.monotonic() < end, "the job did not finish"
        time.sleep(0.05)


def link(wizard, htmx=True, **data):
    """Link Account / Check again from the wizard, followed to its result (htmx)."""
    response = wizard.post(f"/connections/{wizard.id}/check", {"where": "wizard", **data}, htmx)
    return follow_job(wizard.client, response) if htmx else response


def check_again(wizard, **data):
    """Check again from the connection page (htmx), followed to its result."""
    response = wizard.post(f"/connections/{wizard.id}/check", {"where": "page", **data})
    return follow_job(wizard.client, response)
