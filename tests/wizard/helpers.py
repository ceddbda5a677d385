"""Plain helpers of the wizard tests: a signed-in browser working through the wizard."""

from __future__ import annotations

import html

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


def link(wizard, htmx=True, **data):
    return wizard.post(f"/connections/{wizard.id}/check", {"where": "wizard", **data}, htmx)
