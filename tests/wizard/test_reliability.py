"""Microsoft misbehaving during the checks of a linked connection, through the simulator (real
HTTPS, MSAL doing the protocol): 429 with Retry-After, 503, a dropped connection, a hang. A
fault that passes is retried and the check succeeds; one that lasts is a failed attempt: the
state and the last report stand, the retries are bounded, the customer reads "will retry"."""

from __future__ import annotations

import pytest

from tests.wizard.helpers import check_again, connection, link, ready, text

ATTEMPTS = 3

FAULTS = {
    "throttled": {"kind": "status", "status": 429, "retry_after": 1},
    "unavailable": {"kind": "status", "status": 503},
    "reset": {"kind": "drop"},
    "hang": {"kind": "hang", "seconds": 4},
}


@pytest.fixture
def app_config(app_config):
    """Short waits, so that a lasting fault ends each call quickly (and a hang by the deadline)."""
    app_config["OUTBOUND_ATTEMPTS"] = ATTEMPTS
    app_config["OUTBOUND_DEADLINE_SECONDS"] = 2.5
    app_config["OUTBOUND_BACKOFF_SECONDS"] = 0.05
    app_config["OUTBOUND_MAX_BACKOFF_SECONDS"] = 0.2
    return app_config


def token_requests(sim) -> int:
    return len(sim.requests("token"))


def linked(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    link(wizard)
    item = connection(app, wizard.id)
    assert (item.state, item.health) == ("connected", "healthy")
    return item


@pytest.mark.parametrize("name", ["throttled", "unavailable", "reset"])
def test_a_fault_that_passes_is_retried_and_the_check_succeeds(app, wizard, sim, tenant, name):
    before = linked(app, wizard, sim, tenant)
    seen = token_requests(sim)
    sim.set_fault("token", times=1, **FAULTS[name])
    body = text(check_again(wizard))
    item = connection(app, wizard.id)
    assert (item.state, item.health, item.error_class) == ("connected", "healthy", None)
    assert item.last_success_at >= before.last_success_at
    assert token_requests(sim) - seen == 2  # the refused one, then the retry
    assert "could not check" not in body
    token_step = next(s for s in item.last_check["steps"] if s["name"] == "token")
    assert token_step["attempts"] == 2  # the retry is visible in the report


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_a_lasting_fault_changes_nothing_but_the_health_record(
    app, wizard, sim, tenant, client_a, runner, name
):
    before = linked(app, wizard, sim, tenant)
    seen = token_requests(sim)
    sim.set_fault("token", **FAULTS[name])  # until cleared
    try:
        body = text(check_again(wizard))  # a person's Check again (a background job)
        result = runner.invoke(args=["check-health"])  # and the cron sweep
    finally:
        sim.clear_faults()
    item = connection(app, wizard.id)
    assert (item.state, item.last_check) == ("connected", before.last_check)
    assert item.error_class == "transient" and item.last_attempt_unfinished
    assert item.health == "degraded" and item.last_success_at == before.last_success_at
    assert "Microsoft did not let us finish this check" in body
    assert "could not check, will retry" in text(client_a.get(f"/connections/{wizard.id}"))
    assert result.exit_code == 0, result.output  # Microsoft's trouble is no operator problem
    assert "could not check 1" in result.output
    # Bounded: each of the two checks asked for a token at most ATTEMPTS times (a hang ends
    # at the deadline, possibly before its last attempt).
    assert 2 <= token_requests(sim) - seen <= 2 * ATTEMPTS

    body = text(check_again(wizard))  # Microsoft answers again: everything as before
    item = connection(app, wizard.id)
    assert (item.state, item.health, item.error_class) == ("connected", "healthy", None)
    assert not item.last_attempt_unfinished and "Linked." in body
