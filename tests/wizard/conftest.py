"""Fixtures of the wizard tests: the portal with the simulator's clouds, a wizard, a tenant."""

from __future__ import annotations

import pytest

from tests.wizard.helpers import Wizard, start_wizard


@pytest.fixture
def app_config(app_config, sim_server, tmp_path):
    """The simulator's clouds, and 2048-bit certificates to keep the suite fast."""
    app_config["CLOUDS_FILE"] = sim_server.clouds_file(str(tmp_path / "sim-clouds.json"))
    app_config["CERT_KEY_SIZE"] = 2048
    app_config["PUBLIC_URL"] = "https://portal.example"
    return app_config


@pytest.fixture
def wizard(client_a) -> Wizard:
    return start_wizard(client_a)


@pytest.fixture
def tenant(sim):
    """A tenant in the simulator's global cloud with an app registration."""
    t = sim.create_tenant(
        cloud="global", domains=["contoso.onmicrosoft.com"], display_name="Contoso Ltd"
    )
    app = sim.create_app(t["id"], display_name="HR sync")
    return {"id": t["id"], "domain": "contoso.onmicrosoft.com", "client_id": app["app_id"]}
