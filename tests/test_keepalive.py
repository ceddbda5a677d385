"""Keep-alive of delegated connections (``flask --app portal refresh-tokens``), against the
simulator with the real msal: rotation persisted atomically, re-link on revocation and inactivity,
transient failures counted once per UTC day (their alarms and the token's life are in
``test_keepalive_life.py``), operator problems, serialization of concurrent runs, and the CLI
summary."""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from entrasim.testing import SimCertificate
from portal import storage
from portal.connections import keepalive, lifecycle
from portal.connections.keepalive import refresh as keepalive_refresh
from portal.entra.errors import classify
from tests.keepalive_helpers import (
    Provider,
    link_connection,
    stored_cache,
    stored_refresh_tokens,
    token_calls,
)
from tests.seeding import set_columns

DAY = timedelta(days=1)


@pytest.fixture
def provider(sim):
    return Provider.register(sim)


@pytest.fixture
def app_config(app_config, sim_server, provider, tmp_path):
    app_config["CLOUDS_FILE"] = str(sim_server.clouds_file(tmp_path / "clouds.json"))
    app_config.update(provider.config())
    return app_config


@pytest.fixture
def customer(provider):
    return provider.customer()


@pytest.fixture
def linked(app, sim, sim_server, provider, customer, org_a):
    """A connection of Contoso, consented two days ago (so due now)."""
    return link_connection(app, sim, sim_server, provider, customer, org_a)


def run_at(app, now: datetime, **kw) -> keepalive.RunSummary:
    with app.app_context():
        return keepalive.run_from_app(app, now=now, **kw)


def get(app, connection_id) -> storage.Connection:
    with app.app_context():
        return storage.get_connection(connection_id)


def events(app, connection_id) -> list[storage.HealthEvent]:
    with app.app_context():
        return storage.list_health_events(connection_id)


def at(day: int, hour: int = 10) -> datetime:
    """A fixed UTC clock for the portal: day 0 is today, at ``hour``."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=day, hours=hour)


# --- rotation ---------------------------------------------------------------------------------


def test_refresh_rotates_and_persists_the_newest_token_only(app, sim, linked, caplog):
    caplog.set_level(logging.DEBUG)
    before_calls = token_calls(sim)
    (old_rt,) = stored_refresh_tokens(app, linked.connection.id)
    assert old_rt == linked.refresh_token
    now = datetime.now(UTC)

    summary = run_at(app, now)

    assert (
        summary.refreshed,
        summary.relink,
        summary.transient,
        summary.skipped,
        summary.operator,
    ) == (1, 0, 0, 0, 0)
    assert summary.exit_code == 0
    assert token_calls(sim) == before_calls + 1
    (new_rt,) = stored_refresh_tokens(app, linked.connection.id)
    assert new_rt != old_rt
    # The old token is gone from storage: not in the decrypted cache, not in the raw database.
    cache = stored_cache(app, linked.connection.id)
    assert old_rt not in str(cache)
    connection = get(app, linked.connection.id)
    assert connection.refresh_last_ok_at == now.isoformat(timespec="seconds")
    assert (connection.refresh_failure_days, connection.refresh_last_failure_day) == (0, None)
    assert connection.state == "connected"
    # The refresh is a check too: its report follows the refresh_ok event.
    check, refreshed = events(app, linked.connection.id)[:2]
    assert refreshed.outcome == "refresh_ok" and refreshed.health == "healthy"
    assert check.outcome == "ok" and check.summary["trigger"] == "keep-alive"
    assert connection.last_checked_at and connection.last_check["kind"] == "service_provider"
    # No secret anywhere in the logs (item 21).
    text = caplog.text
    access_tokens = [at["secret"] for at in cache["AccessToken"].values()]
    for secret in (old_rt, new_rt, app.config["SP_CLIENT_SECRET"], *access_tokens):
        assert secret not in text
    with app.app_context():
        assert storage.table_counts(["refresh_leases"]) == {"refresh_leases": 0}


def test_raw_database_never_holds_a_refresh_token(app, sim, linked):
    run_at(app, datetime.now(UTC))
    (new_rt,) = stored_refresh_tokens(app, linked.connection.id)
    raw = b""
    for suffix in ("", "-wal"):
        try:
            with open(app.config["DATABASE"] + suffix, "rb") as f:
                raw += f.read()
        except FileNotFoundError:
            pass
    assert raw and linked.refresh_token.encode() not in raw and new_rt.encode() not in raw


def test_idle_less_than_24_hours_is_skipped(app, sim, provider, customer, org_a, sim_server):
    consented = at(0, 8)
    linked = link_connection(
        app, sim, sim_server, provider, customer, org_a, consented_at=consented
    )
    calls = token_calls(sim)
    summary = run_at(app, consented + timedelta(hours=23, minutes=59))
    assert (summary.refreshed, summary.skipped) == (0, 1)
    assert token_calls(sim) == calls

    summary = run_at(app, consented + timedelta(hours=24))
    assert summary.refreshed == 1 and token_calls(sim) == calls + 1
    # Refreshed at +24 h: idle is measured from the last refresh now.
    summary = run_at(app, consented + timedelta(hours=47))
    assert (summary.refreshed, summary.skipped) == (0, 1)
    assert token_calls(sim) == calls + 1
    assert get(app, linked.connection.id).refresh_last_ok_at == (
        consented + timedelta(hours=24)
    ).isoformat(timespec="seconds")


def test_idle_is_configurable(app, sim, linked):
    calls = token_calls(sim)
    summary = run_at(app, datetime.now(UTC), idle_hours=72)  # consented two days ago
    assert (summary.refreshed, summary.skipped) == (0, 1)
    assert token_calls(sim) == calls


def test_only_linked_service_provider_connections_are_considered(
    app, sim, linked, org_a, make_connection
):
    make_connection(org_a, "customer_owned", "Own app", consented_at="2020-01-01T00:00:00+00:00")
    make_connection(org_a, "service_provider", "Never linked")
    summary = run_at(app, datetime.now(UTC))
    assert [r.connection_id for r in summary.results] == [linked.connection.id]


# --- failed write keeps the previous token -----------------------------------------------------


def _fail_success_writes(app):
    """A trigger that aborts the success transaction after the token response arrived."""
    with app.app_context():
        storage.get_db().execute(
            "CREATE TRIGGER fail_refresh_ok BEFORE INSERT ON health_events "
            "WHEN NEW.outcome = 'refresh_ok' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )


def _stored_blob(app, connection_id):
    with app.app_context():
        return (
            storage.get_db()
            .execute(
                "SELECT key_id, nonce, ciphertext FROM vault_blobs "
                "WHERE owner_table = 'connections' AND owner_id = ? AND purpose = 'token_cache'",
                [connection_id],
            )
            .fetchone()
        )


def test_failed_write_keeps_previous_token_and_next_run_succeeds(app, sim, linked):
    _fail_success_writes(app)
    blob_before = _stored_blob(app, linked.connection.id)
    calls = token_calls(sim)
    now = datetime.now(UTC)

    summary = run_at(app, now)

    assert token_calls(sim) == calls + 1  # Entra did rotate the token…
    assert summary.operator == 1 and summary.refreshed == 0 and summary.exit_code == 1
    # …but nothing of the success transaction landed: same ciphertext, same refresh token.
    assert _stored_blob(app, linked.connection.id) == blob_before
    assert stored_refresh_tokens(app, linked.connection.id) == [linked.refresh_token]
    connection = get(app, linked.connection.id)
    assert connection.refresh_last_ok_at is None and connection.state == "connected"
    assert all(e.outcome != "refresh_ok" for e in events(app, linked.connection.id))

    with app.app_context():
        storage.get_db().execute("DROP TRIGGER fail_refresh_ok")
        assert storage.table_counts(["refresh_leases"]) == {"refresh_leases": 0}
    summary = run_at(app, now + timedelta(minutes=5))
    assert summary.refreshed == 1 and summary.exit_code == 0
    (rt,) = stored_refresh_tokens(app, linked.connection.id)
    assert rt != linked.refresh_token


# --- re-link needed ----------------------------------------------------------------------------


def test_revoked_refresh_token_means_relink_and_no_more_token_calls(app, sim, linked, customer):
    sim.revoke_refresh_tokens(customer.tenant_id, customer.admin_upn)
    now = datetime.now(UTC)
    calls = token_calls(sim)

    summary = run_at(app, now)

    assert (summary.relink, summary.refreshed, summary.operator) == (1, 0, 0)
    assert summary.results[0].reason == "AADSTS50173"
    assert summary.exit_code == 0  # the customer's problem, not the operator's
    assert token_calls(sim) == calls + 1
    connection = get(app, linked.connection.id)
    assert (connection.state, connection.health) == ("needs_reconnect", "failing")
    assert not keepalive.is_exhausted(connection)
    outcomes = [e.outcome for e in events(app, linked.connection.id)]
    assert "refresh_relink_needed" in outcomes and "needs_reconnect" in outcomes
    relink_event = next(
        e for e in events(app, linked.connection.id) if e.outcome == "refresh_relink_needed"
    )
    assert relink_event.summary["error_codes"] == [50173]
    assert relink_event.summary["trace_id"]  # support can look it up with Microsoft
    with app.app_context():
        assert storage.list_audit_events(
            connection_id=linked.connection.id, action="connection.needs_reconnect"
        )
    # The stored (dead) token is not overwritten by anything MSAL did to its cache.
    assert stored_refresh_tokens(app, linked.connection.id) == [linked.refresh_token]

    for later in (now + timedelta(hours=1), now + 2 * DAY):
        summary = run_at(app, later)
        assert summary.results == [] and summary.exit_code == 0
    assert token_calls(sim) == calls + 1


def test_ninety_days_inactive_means_relink(app, sim, linked):
    sim.advance_clock(91 * 24 * 3600)
    summary = run_at(app, datetime.now(UTC) + 91 * DAY)
    assert summary.relink == 1 and summary.results[0].reason == "AADSTS700082"
    assert get(app, linked.connection.id).state == "needs_reconnect"


def test_keepalive_prevents_the_ninety_day_expiry(app, sim, linked):
    """Refreshing every 60 days keeps the grant alive past 90 days of age."""
    start = datetime.now(UTC)
    for step in (1, 2, 3):
        sim.advance_clock(60 * 24 * 3600)
        summary = run_at(app, start + step * 60 * DAY)
        assert summary.refreshed == 1, summary.results
    assert get(app, linked.connection.id).state == "connected"


def test_missing_or_unreadable_cache_means_relink(app, sim, linked, provider, sim_server, org_a):
    """None stored, or a row no keyring can ever open (a damaged nonce): gone for the customer.
    (Our keyring failing to open a row is an operator alarm: test_keyring_alarm.py.)"""
    other = link_connection(
        app, sim, sim_server, provider, provider.customer("fabrikam.onmicrosoft.com"), org_a
    )
    with app.app_context():
        storage.delete_secret("connections", linked.connection.id, "token_cache")
        storage.get_db().execute(
            "UPDATE vault_blobs SET nonce = zeroblob(4) "
            "WHERE owner_id = ? AND purpose = 'token_cache'",
            [other.connection.id],
        )
    calls = token_calls(sim)
    summary = run_at(app, datetime.now(UTC))
    assert summary.relink == 2 and summary.exit_code == 0
    assert token_calls(sim) == calls
    assert {get(app, c.id).state for c in (linked.connection, other.connection)} == {
        "needs_reconnect"
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": "invalid_grant", "error_codes": [700082]}, "relink"),
        ({"error": "invalid_grant", "error_codes": [50173]}, "relink"),
        ({"error": "invalid_grant", "error_codes": [70043]}, "relink"),
        ({"error": "invalid_grant", "error_codes": [65001]}, "relink"),
        ({"error": "interaction_required", "error_codes": [50076]}, "relink"),
        ({"error": "invalid_grant"}, "relink"),
        ({"error": "temporarily_unavailable"}, "transient"),
        ({"error": "server_error", "error_codes": [500000]}, "transient"),
        ({"error": "invalid_client", "error_codes": [7000215]}, "operator"),
        ({"error": "invalid_client", "error_codes": [700027]}, "operator"),
        ({"error": "invalid_client", "error_codes": [7000222]}, "operator"),
        ({"error": "unauthorized_client", "error_codes": [700016]}, "operator"),
        ({"error": "invalid_scope", "error_codes": [70011]}, "operator"),
    ],
)
def test_classification(body, expected):
    assert keepalive.classify_failure(classify(body)) == expected


def test_classification_of_exceptions():
    import requests
    from msal.exceptions import MsalServiceError

    assert keepalive.classify_failure(classify(requests.ConnectionError("reset"))) == "transient"
    assert keepalive.classify_failure(classify(requests.ReadTimeout("slow"))) == "transient"
    assert (
        keepalive.classify_failure(classify(MsalServiceError(error="x", error_description="y")))
        == "transient"
    )


# --- transient failures: once per day ----------------------------------------------------------


def test_transient_failures_count_once_per_day(app, sim, provider, customer, org_a, sim_server):
    linked = link_connection(app, sim, sim_server, provider, customer, org_a, consented_at=at(-2))
    sim.set_fault("token", "status", status=503)
    calls = token_calls(sim)
    for hour in (1, 9, 17, 23):  # four runs on day 0
        summary = run_at(app, at(0, hour))
        assert (summary.transient, summary.exhausted, summary.exit_code) == (1, 0, 0)
        connection = get(app, linked.connection.id)
        assert connection.refresh_failure_days == 1
        assert connection.refresh_last_failure_day == at(0).date().isoformat()
    # Every run retries within its bounds (the outbound policy), and is counted once a day.
    assert token_calls(sim) == calls + 4 * app.config["OUTBOUND_ATTEMPTS"]
    connection = get(app, linked.connection.id)
    assert (connection.state, connection.health) == ("connected", "degraded")
    counted = [
        e.summary["counted"]
        for e in reversed(events(app, linked.connection.id))
        if e.outcome == "refresh_transient"
    ]
    assert counted == [True, False, False, False]

    summary = run_at(app, at(1, 0))
    assert get(app, linked.connection.id).refresh_failure_days == 2

    sim.clear_faults()
    summary = run_at(app, at(1, 6))
    assert summary.refreshed == 1
    connection = get(app, linked.connection.id)
    assert (connection.refresh_failure_days, connection.refresh_last_failure_day) == (0, None)
    assert connection.health == "healthy"  # our degradation is lifted


def test_relink_after_failures_starts_counting_again(
    app, sim, provider, customer, org_a, sim_server
):
    linked = link_connection(app, sim, sim_server, provider, customer, org_a, consented_at=at(-2))
    sim.set_fault("token", "status", status=429, retry_after=1)
    run_at(app, at(0))
    run_at(app, at(1))
    assert get(app, linked.connection.id).refresh_failure_days == 2
    # The customer links again on day 3 (the OAuth flow sets a new consent time).
    with app.app_context():
        storage.update_connection(linked.connection.id, consented_at=at(3, 1).isoformat())
    run_at(app, at(5))
    assert get(app, linked.connection.id).refresh_failure_days == 1


# --- operator problems --------------------------------------------------------------------------


def test_invalid_client_is_an_operator_problem_not_counted(app, sim, linked, runner):
    app.config["SP_CLIENT_SECRET"] = "not-the-secret-value"
    result = runner.invoke(args=["refresh-tokens"])
    assert result.exit_code == 1, result.output
    assert "operator problem (AADSTS7000215)" in result.output
    assert "operator problems 1" in result.output
    assert "not-the-secret-value" not in result.output
    connection = get(app, linked.connection.id)
    assert (connection.state, connection.refresh_failure_days) == ("connected", 0)
    assert connection.refresh_last_failure_day is None
    assert stored_refresh_tokens(app, linked.connection.id) == [linked.refresh_token]


def test_missing_configuration(app, sim, linked, runner):
    app.config["SP_CLIENT_ID"] = None
    calls = token_calls(sim)
    result = runner.invoke(args=["refresh-tokens"])
    assert result.exit_code == 1
    assert "not configured: SP_CLIENT_ID is not set" in result.output
    assert token_calls(sim) == calls
    assert get(app, linked.connection.id).refresh_failure_days == 0


def test_nothing_to_do_without_configuration_is_fine(app, runner):
    app.config["SP_CLIENT_ID"] = None
    result = runner.invoke(args=["refresh-tokens"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("skipped 0, operator problems 0")


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_summary(app, sim, sim_server, provider, org_a, org_b, runner, linked, customer):
    revoked_customer = provider.customer("fabrikam.onmicrosoft.com")
    revoked = link_connection(
        app,
        sim,
        sim_server,
        provider,
        revoked_customer,
        org_b,
        display_name="Fabrikam\nforged line",
    )
    link_connection(
        app,
        sim,
        sim_server,
        provider,
        provider.customer("tailspin.onmicrosoft.com"),
        org_b,
        consented_at=datetime.now(UTC) - timedelta(hours=2),
    )
    sim.revoke_refresh_tokens(revoked_customer.tenant_id, revoked_customer.admin_upn)

    result = runner.invoke(args=["refresh-tokens"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == (
        "Refresh tokens: refreshed 1, re-link needed 1, transient failures 0 "
        "(token life over 0), alarms 0, skipped 1, operator problems 0"
    )
    assert lines[0] == (
        f"  {revoked.connection.id} Fabrikam forged line: re-link needed (AADSTS50173)"
    )
    assert len(lines) == 2
    for secret in (linked.refresh_token, revoked.refresh_token, provider.secret):
        assert secret not in result.output
    verbose = runner.invoke(args=["refresh-tokens", "--verbose", "--idle-hours", "0"])
    assert f"{linked.connection.id} contoso.onmicrosoft.com: refreshed" in verbose.output


def test_certificate_file_credential(app, sim, sim_server, provider, org_a, tmp_path, runner):
    cert = SimCertificate()
    provider.add_certificate(cert)
    pem = tmp_path / "instance" / "sp.pem"
    pem.parent.mkdir(parents=True, exist_ok=True)
    pem.write_text(cert.key_pem + cert.cert_pem)
    app.config.update(provider.config(use_cert_file="sp.pem"))  # relative: instance folder
    linked = link_connection(app, sim, sim_server, provider, provider.customer(), org_a)
    result = runner.invoke(args=["refresh-tokens"])
    assert result.exit_code == 0, result.output
    assert "refreshed 1" in result.output
    assert stored_refresh_tokens(app, linked.connection.id) != [linked.refresh_token]


def test_certificate_file_errors(tmp_path):
    bad = tmp_path / "only-cert.pem"
    bad.write_text(SimCertificate().cert_pem)
    app_id = {"SP_CLIENT_ID": "11111111-2222-3333-4444-555555555555"}
    with pytest.raises(keepalive.KeepAliveConfigError, match="private key"):
        keepalive.settings_from_config({**app_id, "SP_CERT_FILE": str(bad)})
    with pytest.raises(keepalive.KeepAliveConfigError, match="cannot be read"):
        keepalive.settings_from_config({**app_id, "SP_CERT_FILE": str(tmp_path / "nope.pem")})
    with pytest.raises(keepalive.KeepAliveConfigError, match="SP_CLIENT_SECRET"):
        keepalive.settings_from_config(app_id)


def test_the_keep_alive_reads_our_app_with_link_accounts_rules():
    """One reader: a client id Link Account would refuse is refused here too (not used as
    typed), and a valid one is lower-cased for both."""
    secret = {"SP_CLIENT_SECRET": "s"}
    with pytest.raises(keepalive.KeepAliveConfigError, match="not an Application"):
        keepalive.settings_from_config({**secret, "SP_CLIENT_ID": "HR automation"})
    upper = "AAAAAAAA-2222-3333-4444-555555555555"
    assert keepalive.settings_from_config({**secret, "SP_CLIENT_ID": upper}).client_id == (
        upper.lower()
    )


# --- serialization ------------------------------------------------------------------------------


def test_concurrent_runs_refresh_each_connection_once(
    app, sim, linked, sim_server, provider, org_b
):
    second = link_connection(
        app, sim, sim_server, provider, provider.customer("fabrikam.onmicrosoft.com"), org_b
    )
    sim.set_fault("token", "latency", ms=1000)  # keep the first refresh in flight
    calls = token_calls(sim)
    now = datetime.now(UTC)
    barrier = threading.Barrier(4)
    summaries, errors = [], []

    def worker():
        try:
            barrier.wait()
            summaries.append(run_at(app, now))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert token_calls(sim) == calls + 2  # one per connection, not one per run
    assert sum(s.refreshed for s in summaries) == 2
    assert sum(s.skipped for s in summaries) == 6
    reasons = {r.reason for s in summaries for r in s.results if r.outcome == "skipped"}
    assert "another run is refreshing it" in reasons  # the runs really overlapped
    assert reasons <= {"another run is refreshing it", "refreshed recently"}
    assert all(s.exit_code == 0 for s in summaries)
    for conn in (linked.connection, second.connection):
        assert len(stored_refresh_tokens(app, conn.id)) == 1
        assert sum(e.outcome == "refresh_ok" for e in events(app, conn.id)) == 1


def test_lease_held_by_another_run_is_respected_until_it_expires(app, sim, linked):
    now = datetime.now(UTC)
    with app.app_context():
        assert storage.claim_refresh_lease(
            linked.connection.id, "other-run", now=now.timestamp(), ttl=keepalive.LEASE_SECONDS
        )
    calls = token_calls(sim)
    summary = run_at(app, now)
    assert (summary.refreshed, summary.skipped) == (0, 1) and token_calls(sim) == calls
    assert summary.results[0].reason == "another run is refreshing it"
    # A crashed run's lease expires.
    summary = run_at(app, now + timedelta(seconds=keepalive.LEASE_SECONDS + 1))
    assert summary.refreshed == 1


def test_tokens_stay_with_their_tenant(app, sim, sim_server, provider, org_a, org_b):
    a = link_connection(app, sim, sim_server, provider, provider.customer(), org_a)
    b = link_connection(
        app, sim, sim_server, provider, provider.customer("fabrikam.onmicrosoft.com"), org_b
    )
    assert run_at(app, datetime.now(UTC)).refreshed == 2
    for linked in (a, b):
        cache = stored_cache(app, linked.connection.id)
        realms = {at["realm"] for at in cache["AccessToken"].values()}
        assert realms == {linked.connection.tenant_id}


def test_database_error_in_success_write_is_reported_not_raised(app, sim, linked, monkeypatch):
    real = storage.put_secret

    def failing_put_secret(*args, **kwargs):
        real(*args, **kwargs)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(storage, "put_secret", failing_put_secret)
    summary = run_at(app, datetime.now(UTC))
    assert summary.operator == 1 and summary.exit_code == 1
    monkeypatch.undo()
    assert stored_refresh_tokens(app, linked.connection.id) == [linked.refresh_token]


def test_concurrent_cli_processes_refresh_once(app, sim, linked, tmp_path):
    """Three ``flask refresh-tokens`` processes at once (security.md §7 item 25): one token call,
    no 'database is locked'."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(
        {
            "PORTAL_INSTANCE_PATH": app.config["INSTANCE_PATH"]
            if "INSTANCE_PATH" in app.config
            else app.instance_path,
            "PORTAL_DATABASE": app.config["DATABASE"],
            "PORTAL_SECRET_KEY": app.config["SECRET_KEY"],
            "PORTAL_VAULT_KEYS": app.config["VAULT_KEYS"].dumps(),
            "PORTAL_CLOUDS_FILE": app.config["CLOUDS_FILE"],
            "PORTAL_SP_CLIENT_ID": app.config["SP_CLIENT_ID"],
            "PORTAL_SP_CLIENT_SECRET": app.config["SP_CLIENT_SECRET"],
        }
    )
    sim.set_fault("token", "latency", ms=1500)
    calls = token_calls(sim)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "portal", "refresh-tokens"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(__file__)),
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    lasts = sorted(out.strip().splitlines()[-1] for out, _ in outputs)
    assert lasts == sorted(
        [
            "Refresh tokens: refreshed 1, re-link needed 0, transient failures 0 "
            "(token life over 0), alarms 0, skipped 0, operator problems 0"
        ]
        + [
            "Refresh tokens: refreshed 0, re-link needed 0, transient failures 0 "
            "(token life over 0), alarms 0, skipped 1, operator problems 0"
        ]
        * 2
    ), outputs
    assert not any("locked" in err for _, err in outputs)
    assert token_calls(sim) == calls + 1
    assert len(stored_refresh_tokens(app, linked.connection.id)) == 1


def test_success_lifts_only_our_own_degradation(app, sim, sim_server, provider, customer, org_a):
    """A connection that lacks a scope stays needs_attention after a successful refresh: the
    refresh's check still finds the scope missing; keep-alive only lifts what its transient
    failures set."""
    linked = link_connection(
        app,
        sim,
        sim_server,
        provider,
        customer,
        org_a,
        consented_at=at(-2),
        state="needs_attention",
        scopes=("User.ReadWrite.All", "Directory.AccessAsUser.All"),
    )
    with app.app_context():
        set_columns(linked.connection.id, health="degraded")
    sim.set_fault("token", "status", status=503)
    run_at(app, at(0))
    sim.clear_faults()
    assert run_at(app, at(1)).refreshed == 1
    connection = get(app, linked.connection.id)
    assert connection.state == "needs_attention" and connection.health != "healthy"
    assert connection.refresh_failure_days == 0
    missing = [i["key"] for i in connection.last_check["checklist"] if i["status"] == "missing"]
    assert missing == ["scope:Group.ReadWrite.All"]


@pytest.mark.parametrize("revoked", [False, True])
def test_a_link_finished_during_the_refresh_is_not_overwritten(
    app, sim, linked, customer, monkeypatch, revoked
):
    """The customer completes Link Account while the keep-alive is redeeming the old refresh
    token: the older result (rotated old grant, or its failure) must not replace the new link."""
    if revoked:
        sim.revoke_refresh_tokens(customer.tenant_id, customer.admin_upn)
    real_refresh = keepalive_refresh._refresh
    new_cache = b'{"AccessToken": {}, "RefreshToken": {}, "Account": {}}'

    def refresh_then_relink(*args, **kwargs):
        outcome = real_refresh(*args, **kwargs)
        with app.app_context():  # what the OAuth callback's link_recorded does
            storage.put_secret("connections", linked.connection.id, "token_cache", new_cache)
            set_columns(linked.connection.id, consented_at=storage.utcnow(), state="connected")
        return outcome

    monkeypatch.setattr(keepalive_refresh, "_refresh", refresh_then_relink)
    summary = run_at(app, datetime.now(UTC))
    assert summary.skipped == 1 and summary.refreshed == summary.relink == 0
    assert "meanwhile" in summary.results[0].reason
    with app.app_context():
        assert storage.get_secret("connections", linked.connection.id, "token_cache") == new_cache
        assert storage.table_counts(["refresh_leases"]) == {"refresh_leases": 0}
    assert get(app, linked.connection.id).state == "connected"


def test_no_secret_in_output_or_logs_on_failures(
    app, sim, sim_server, provider, org_a, org_b, linked, customer, runner, caplog
):
    """security.md §7 item 21 for the keep-alive: failing paths at DEBUG (msal, urllib3 too)."""
    caplog.set_level(logging.DEBUG)
    other = link_connection(
        app, sim, sim_server, provider, provider.customer("fabrikam.onmicrosoft.com"), org_b
    )
    sim.revoke_refresh_tokens(customer.tenant_id, customer.admin_upn)
    outputs = [runner.invoke(args=["refresh-tokens"]).output]  # re-link + refreshed
    with app.app_context():
        storage.update_connection(
            other.connection.id, refresh_last_ok_at="2020-01-01T00:00:00+00:00"
        )
    sim.set_fault("token", "status", status=503)  # every attempt: one 503 is retried
    outputs.append(runner.invoke(args=["refresh-tokens"]).output)  # transient
    sim.clear_faults()
    app.config["SP_CLIENT_SECRET"] = "wrong-" + provider.secret
    outputs.append(runner.invoke(args=["refresh-tokens"]).output)  # invalid_client
    assert "re-link needed 1" in outputs[0] and "transient failures 1" in outputs[1]
    assert "operator problems 1" in outputs[2]
    secrets_ = [
        linked.refresh_token,
        other.refresh_token,
        provider.secret,
        *stored_refresh_tokens(app, other.connection.id),
    ]
    for text in (*outputs, caplog.text):
        for secret in secrets_:
            assert secret not in text


@pytest.mark.parametrize("transient", [False, True], ids=["success", "transient"])
def test_a_reconnect_needed_during_the_refresh_is_kept(app, sim, linked, monkeypatch, transient):
    """Something else finds the credential unusable (a secret unreadable, a check) while the
    keep-alive is redeeming: its result is dropped as skipped, not an unexpected error, and the
    connection stays waiting for the customer."""
    if transient:
        sim.set_fault("token", "status", status=503)  # every attempt: one 503 is retried
    real_refresh = keepalive_refresh._refresh

    def refresh_then_break(*args, **kwargs):
        outcome = real_refresh(*args, **kwargs)
        with app.app_context():
            lifecycle.needs_reconnect(linked.connection.id, "found unusable meanwhile")
        return outcome

    monkeypatch.setattr(keepalive_refresh, "_refresh", refresh_then_break)
    summary = run_at(app, datetime.now(UTC))
    assert summary.skipped == 1 and summary.operator == 0, summary.results
    assert "meanwhile" in summary.results[0].reason
    assert get(app, linked.connection.id).state == "needs_reconnect"
    with app.app_context():
        assert storage.table_counts(["refresh_leases"]) == {"refresh_leases": 0}
