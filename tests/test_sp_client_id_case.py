"""SP_CLIENT_ID is read once, normalised at start: an upper-case setting must not stop the
keep-alive from renewing the refresh token that Link Account stored (the callback stored the
lower-cased id while the keep-alive compared the configured text exactly)."""

from __future__ import annotations

import pytest

from portal import storage
from tests import test_oauth as base
from tests.test_oauth import reload, run_flow

sp_cert, provider = base.sp_cert, base.provider
sp_connection = base.sp_connection


@pytest.fixture
def app_config(app_config, sim_server, provider, tmp_path):
    """test_oauth's configuration, with the client id typed in upper case and spaces."""
    app_config.update(
        {
            "CLOUDS_FILE": sim_server.clouds_file(str(tmp_path / "clouds.json")),
            "PUBLIC_URL": base.PUBLIC_URL,
            "SP_CLIENT_ID": "  " + provider["app"]["app_id"].upper() + " ",
            "SP_CERT_FILE": provider["pem"],
            "SP_CLOUDS": ["sim-global"],
        }
    )
    return app_config


def test_upper_case_client_id_links_and_keeps_alive(
    app, client_a, runner, sim, sim_session, sp_connection, provider
):
    assert app.config["SP_CLIENT_ID"] == provider["app"]["app_id"]  # normalised once
    assert run_flow(client_a, sim, sim_session, sp_connection).status_code == 200
    linked = reload(app, sp_connection.id)
    assert linked.state == "connected" and linked.client_id == provider["app"]["app_id"]
    tokens_before = len(sim.requests(endpoint="token"))
    result = runner.invoke(args=["refresh-tokens", "--idle-hours", "0", "--verbose"])
    assert result.exit_code == 0, result.output
    assert "operator" not in result.output.lower() or "operator problems 0" in result.output
    assert len(sim.requests(endpoint="token")) == tokens_before + 1  # really renewed
    with app.app_context():
        assert storage.get_connection(sp_connection.id).state == "connected"
