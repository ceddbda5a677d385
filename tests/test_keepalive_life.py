"""The keep-alive follows the refresh token's real life (entra.md §9: 90 days without use):
transient failures are retried for as long as the token can be alive, support is alarmed well
before that, and only a token whose life is surely over (or a grant Microsoft says is gone)
sends the customer to re-link. Against the simulator with the real msal."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from portal import storage
from portal.connections import keepalive
from tests.keepalive_helpers import Provider, link_connection, stored_refresh_tokens, token_calls
from tests.seeding import set_columns


@pytest.fixture
def provider(sim):
    return Provider.register(sim)


@pytest.fixture
def app_config(app_config, sim_server, provider, tmp_path):
    app_config["CLOUDS_FILE"] = str(sim_server.clouds_file(tmp_path / "clouds.json"))
    app_config.update(provider.config())
    # Two attempts per call: each failing day still retries once (honouring Retry-After: 1).
    app_config["OUTBOUND_ATTEMPTS"] = 2
    return app_config


def at(day: int, hour: int = 10) -> datetime:
    """A fixed UTC clock for the portal: day 0 is today, at ``hour``."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=day, hours=hour)


def run_at(app, now: datetime) -> keepalive.RunSummary:
    with app.app_context():
        return keepalive.run_from_app(app, now=now)


def get(app, connection_id) -> storage.Connection:
    with app.app_context():
        return storage.get_connection(connection_id)


def events(app, connection_id) -> list[storage.HealthEvent]:
    with app.app_context():
        return storage.list_health_events(connection_id, limit=200)


@pytest.fixture
def linked(app, sim, sim_server, provider, org_a):
    """Linked two days before day 0 (its token last proved alive then), so due on day 0."""
    return link_connection(
        app, sim, sim_server, provider, provider.customer(), org_a, consented_at=at(-2)
    )


@pytest.mark.parametrize("fault", ["503", "429", "drop"])
def test_five_failing_days_stay_connected_and_the_next_run_refreshes(app, sim, linked, fault):
    """Before: needs_reconnect on the 4th failing day although the token was still alive."""
    if fault == "drop":
        sim.set_fault("token", "drop")
    else:
        sim.set_fault("token", "status", status=int(fault), retry_after=1)
    for day in range(5):
        summary = run_at(app, at(day))
        assert (summary.transient, summary.exhausted, summary.exit_code) == (1, 0, 0)
        connection = get(app, linked.connection.id)
        assert (connection.state, connection.health) == ("connected", "degraded")
        assert connection.refresh_failure_days == day + 1
    sim.clear_faults()
    summary = run_at(app, at(4, 18))
    assert summary.refreshed == 1
    connection = get(app, linked.connection.id)
    assert (connection.state, connection.health) == ("connected", "healthy")
    assert (connection.refresh_failure_days, connection.refresh_last_failure_day) == (0, None)
    assert stored_refresh_tokens(app, linked.connection.id) != [linked.refresh_token]


def test_support_is_alarmed_after_three_days_and_again_with_thirty_days_left(
    app, sim, linked, caplog, support_client
):
    sim.set_fault("token", "status", status=503)
    alarms = {}
    for day in (0, 1, 2, 30, 58):
        caplog.clear()
        summary = run_at(app, at(day))
        assert summary.exit_code == 0 and summary.transient == 1
        alarms[day] = summary.results[0].alarm
        assert summary.alarms == (1 if alarms[day] else 0)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert bool(errors) == bool(alarms[day])
        assert "alarms " + str(summary.alarms) in summary.line()
    assert alarms[0] == alarms[1] == ""
    assert alarms[2].startswith("refresh failing on 3 days")
    # Linked on day -2: 90 days of life less a day's margin end on day 87; 29 days left.
    assert alarms[58].startswith("refresh token has 29 day(s) of life left")
    connection = get(app, linked.connection.id)
    assert (connection.state, connection.health) == ("connected", "degraded")
    assert connection.refresh_failure_days == 5
    latest = events(app, linked.connection.id)[0]
    assert latest.outcome == "refresh_transient" and latest.summary["alarm"] == alarms[58]
    # Support sees it on the connection's page.
    page = support_client.get(f"/support/connections/{linked.connection.id}")
    assert page.status_code == 200
    assert "29 day(s) of life left" in page.get_data(as_text=True)


def test_past_ninety_days_since_alive_means_reconnect_with_the_reason(app, sim, linked):
    sim.set_fault("token", "status", status=503)
    for day in (0, 45, 86):  # 88 days since the token proved alive: it still can be
        summary = run_at(app, at(day))
        assert summary.transient == 1 and summary.exhausted == 0
        assert get(app, linked.connection.id).state == "connected"
    summary = run_at(app, at(88))  # 90 days since it proved alive
    assert (summary.exhausted, summary.exit_code) == (1, 0)
    assert "token life over 1" in summary.line()
    connection = get(app, linked.connection.id)
    assert (connection.state, connection.health) == ("needs_reconnect", "failing")
    assert keepalive.is_exhausted(connection)
    reasons = [e.summary.get("reason", "") for e in events(app, linked.connection.id)]
    assert any("the refresh token's life is over" in r and "90 days" in r for r in reasons)
    calls = token_calls(sim)
    assert run_at(app, at(89)).results == [] and token_calls(sim) == calls


def test_a_refresh_after_the_failures_starts_the_life_again(app, sim, linked):
    sim.set_fault("token", "status", status=503)
    run_at(app, at(0))
    run_at(app, at(60))
    sim.clear_faults()
    assert run_at(app, at(61)).refreshed == 1
    sim.set_fault("token", "status", status=503)
    summary = run_at(app, at(120))  # 59 days after the refresh of day 61
    assert summary.transient == 1 and summary.exhausted == 0
    assert get(app, linked.connection.id).state == "connected"


def test_a_revoked_grant_means_reconnect_at_once(app, sim, linked):
    sim.revoke_refresh_tokens(linked.connection.tenant_id, "admin@contoso.onmicrosoft.com")
    summary = run_at(app, at(0))
    assert summary.relink == 1 and summary.results[0].reason == "AADSTS50173"
    assert get(app, linked.connection.id).state == "needs_reconnect"


def test_alarm_rules_are_pure(app, linked):
    """The alarm follows the stored columns and the clock only."""
    with app.app_context():
        connection = set_columns(linked.connection.id, refresh_failure_days=2)
    assert keepalive.alarm(connection, at(1)) is None
    with app.app_context():
        connection = set_columns(linked.connection.id, refresh_failure_days=3)
    assert keepalive.alarm(connection, at(1)).startswith("refresh failing on 3 days")
    assert keepalive.life_left(connection, at(87)) == timedelta(0)
    assert keepalive.life_over(connection, at(87)) and not keepalive.life_over(connection, at(86))
