"""GET /metrics: calls to Microsoft counted from a real check against the simulator, connection
gauges read from the database, the cron jobs' last runs, and who may read them."""

from __future__ import annotations

import collections
import logging
import secrets
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portal import create_app, storage
from portal.connections.verification import run_check
from tests.seeding import set_columns
from tests.wizard.helpers import connection, link, ready, start_wizard

TOKEN = secrets.token_urlsafe(32)
CLOUD = "sim-global"  # the portal's key of the simulator's global cloud
#: The simulator's request log names endpoints its own way; the portal counts endpoint kinds.
SIM_KIND = {
    "token": "token",
    "openid-configuration": "discovery",
    "instance-discovery": "discovery",
    "keys": "keys",
}


@pytest.fixture
def app_config(app_config, sim_server, tmp_path):
    app_config["CLOUDS_FILE"] = sim_server.clouds_file(str(tmp_path / "sim-clouds.json"))
    app_config["CERT_KEY_SIZE"] = 2048
    app_config["PUBLIC_URL"] = "https://portal.example"
    app_config["METRICS_TOKEN"] = TOKEN
    return app_config


@pytest.fixture
def tenant(sim):
    t = sim.create_tenant(
        cloud="global", domains=["contoso.onmicrosoft.com"], display_name="Contoso Ltd"
    )
    app = sim.create_app(t["id"], display_name="HR sync")
    return {"id": t["id"], "domain": "contoso.onmicrosoft.com", "client_id": app["app_id"]}


def scrape_text(client, token: str = TOKEN) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample: (sample name, its labels) -> value."""
    samples = {}
    for family in text_string_to_metric_families(scrape_text(client)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def calls(samples, endpoint: str, outcome: str = "ok") -> float:
    labels = frozenset({"cloud": CLOUD, "endpoint": endpoint, "outcome": outcome}.items())
    return samples.get(("portal_microsoft_calls_total", labels), 0.0)


def timed(samples, endpoint: str) -> float:
    labels = frozenset({"cloud": CLOUD, "endpoint": endpoint}.items())
    return samples.get(("portal_microsoft_call_duration_seconds_count", labels), 0.0)


def kinds(requests: list[dict]) -> collections.Counter:
    """What the simulator saw, by the portal's endpoint kinds (Graph paths are under /v1.0)."""
    return collections.Counter(
        SIM_KIND.get(r["endpoint"], "graph" if r["path"].startswith("/v1.0/") else "other")
        for r in requests
    )


def test_a_check_counts_every_call_it_made(app, client, client_a, sim, tenant):
    wizard = start_wizard(client_a)
    before, seen_before = scrape(client), len(sim.requests())
    ready(app, wizard, sim, tenant)  # the tenant lookup: discovery
    link(wizard)  # the check: token, Graph
    assert connection(app, wizard.id).state == "connected"
    with app.app_context():  # and a check outside any request, as the sweep does
        assert run_check(storage.get_connection(wizard.id), trigger="test")["ok"]
    after = scrape(client)

    made = kinds(sim.requests()[seen_before:])
    assert made["token"] >= 2 and made["graph"] >= 2 and made["discovery"] >= 1, made
    for endpoint in ("token", "graph", "discovery", "keys", "other"):
        moved = calls(after, endpoint) - calls(before, endpoint)
        assert moved == made[endpoint], (endpoint, moved, made)
        assert timed(after, endpoint) - timed(before, endpoint) == made[endpoint]


def test_a_503_on_the_token_endpoint_is_a_server_error(app, client, client_a, sim, tenant):
    wizard = start_wizard(client_a)
    ready(app, wizard, sim, tenant)
    link(wizard)
    sim.set_fault("token", "status", status=503)
    before, seen_before = scrape(client), len(sim.requests())
    with app.app_context():
        outcome = run_check(storage.get_connection(wizard.id), trigger="test")
    assert outcome.get("transient"), outcome
    after = scrape(client)
    refused = [r for r in sim.requests()[seen_before:] if r["endpoint"] == "token"]
    assert refused and all(r["status"] == 503 for r in refused)
    assert calls(after, "token", "server_error") - calls(before, "token", "server_error") == len(
        refused
    )
    assert calls(after, "token") == calls(before, "token")  # nothing counted as ok


def test_the_exposition_names_no_tenant_domain_connection_or_url(
    app, client, client_a, sim, tenant
):
    wizard = start_wizard(client_a)
    ready(app, wizard, sim, tenant)
    link(wizard)
    text = scrape_text(client)
    item = connection(app, wizard.id)
    assert "portal_microsoft_calls_total" in text
    for secret in (
        tenant["id"],
        tenant["domain"],
        tenant["client_id"],
        item.id,
        item.tenant_name,
        "Contoso",
        "://",
        "127.0.0.1",
        "localhost",
        TOKEN,
    ):
        assert secret and secret not in text, secret


# --- Who may read it -------------------------------------------------------------------------


def test_without_the_setting_the_route_does_not_exist(app_config):
    app_config.pop("METRICS_TOKEN")
    response = (
        create_app(app_config)
        .test_client()
        .get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    )
    assert response.status_code == 404
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    "header, error",
    [
        (None, False),
        ("Bearer ", False),
        (f"Basic {TOKEN}", False),
        ("Bearer wrong-" + TOKEN, True),
        (f"Bearer {TOKEN[:-1]}", True),
    ],
)
def test_a_wrong_or_missing_token_is_refused(client, header, error):
    response = client.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert ('error="invalid_token"' in challenge) is error
    assert "portal_" not in response.get_data(as_text=True)


def test_the_right_token_reads_the_metrics_uncached_and_without_cookies(client):
    response = client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    assert "# TYPE portal_connections gauge" in response.get_data(as_text=True)


def test_a_browser_session_is_neither_refreshed_nor_cleared_here(app, client_a):
    # An expired sign-in: any other route logs it out and clears the cookie.
    with client_a.session_transaction() as session:
        session["signed_in_at"] = time.time() - 48 * 3600
        session["_refreshed_at"] = 0
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        response = client_a.get("/metrics", headers=headers)
        assert response.status_code in (200, 401)
        assert "Set-Cookie" not in response.headers
    assert "Set-Cookie" in client_a.get("/").headers  # the same session elsewhere


def test_a_scrape_logs_at_debug_and_a_refusal_at_info(client, caplog):
    with caplog.at_level(logging.DEBUG, logger="portal.request"):
        scrape_text(client)
        client.get("/metrics")
    levels = [r.levelno for r in caplog.records if r.name == "portal.request"]
    assert levels == [logging.DEBUG, logging.INFO]


# --- Gauges from the database ----------------------------------------------------------------


def test_connection_gauges_match_the_database(app, client, make_org, make_connection):
    org = make_org()
    wanted = [
        ("customer_owned", "draft", "unknown"),
        ("customer_owned", "connected", "healthy"),
        ("customer_owned", "connected", "healthy"),
        ("customer_owned", "needs_attention", "failing"),
        ("service_provider", "connected", "degraded"),
        ("service_provider", "needs_reconnect", "failing"),
        ("service_provider", "waiting", "unknown"),
    ]
    for kind, state, health in wanted:
        made = make_connection(org, kind)
        with app.app_context():
            set_columns(made.id, state=state, health=health)
    gone = make_connection(org, "customer_owned")
    with app.app_context():
        storage.get_db().execute(
            "UPDATE connections SET state = 'deleted', deleted_at = ? WHERE id = ?",
            [storage.utcnow(), gone.id],
        )
        expected = collections.Counter(
            (c.state, c.health, c.kind) for c in storage.list_all_connections()
        )
    assert sum(expected.values()) == len(wanted)

    gauges = {
        (dict(labels)["state"], dict(labels)["health"], dict(labels)["kind"]): value
        for (name, labels), value in scrape(client).items()
        if name == "portal_connections"
    }
    assert {key: value for key, value in gauges.items() if value} == expected
    assert ("connected", "unknown", "service_provider") in gauges  # zeros are series too
    assert not any(state == "deleted" for state, _, _ in gauges)


def test_failing_connections_and_background_jobs_are_counted(app, client, client_a, sim, tenant):
    wizard = start_wizard(client_a)
    ready(app, wizard, sim, tenant, roles=())  # set up, but the role is missing
    link(wizard)  # a background job that finishes: needs the customer
    other = start_wizard(client_a)
    ready(app, other, sim, tenant)
    sim.set_fault("token", "status", status=503)  # until cleared: every retry refused too
    try:
        link(other)
    finally:
        sim.clear_faults()
    samples = scrape(client)

    def value(name, **labels):
        return samples.get((name, frozenset(labels.items())), 0)

    assert value("portal_connections_failing", error_class="needs_customer") == 1
    assert value("portal_connections_failing", error_class="transient") == 1
    assert value("portal_connections_failing", error_class="our_config") == 0
    assert value("portal_background_jobs", kind="check", status="done") == 1
    assert value("portal_background_jobs", kind="check", status="failed") == 1
    assert value("portal_background_jobs", kind="check", status="running") == 0


def test_check_health_records_a_finished_run(app, client, client_a, runner, sim, tenant):
    wizard = start_wizard(client_a)
    ready(app, wizard, sim, tenant)
    link(wizard)
    start_wizard(client_a)  # a draft: not the sweep's
    started = time.time()
    result = runner.invoke(args=["check-health"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        [run] = storage.list_job_runs("check-health")
    assert not run.running and run.outcome == "ok"
    assert run.processed == run.total == 1
    assert run.summary == {
        "checked": 1,
        "healthy": 1,
        "needs_attention": 0,
        "not_checked": 0,
        "expiring": 0,
    }
    assert started <= run.started_at <= run.finished_at <= time.time()

    samples = scrape(client)
    job = frozenset({"job": "check-health"}.items())
    assert samples[("portal_job_running", job)] == 0
    assert samples[("portal_job_last_processed", job)] == 1
    assert samples[("portal_job_last_total", job)] == 1
    assert samples[("portal_job_last_started_timestamp_seconds", job)] == run.started_at
    assert samples[("portal_job_last_finished_timestamp_seconds", job)] == run.finished_at
    assert samples[("portal_job_last_success_timestamp_seconds", job)] == run.finished_at


def test_refresh_tokens_records_its_run_too(app, client, runner):
    result = runner.invoke(args=["refresh-tokens"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        [run] = storage.list_job_runs("refresh-tokens")
    assert (run.outcome, run.processed, run.total) == ("ok", 0, 0)
    assert run.summary["refreshed"] == 0
    job = frozenset({"job": "refresh-tokens"}.items())
    assert scrape(client)[("portal_job_running", job)] == 0


def test_a_running_and_a_failed_run_show_as_such(app, client):
    from portal import metrics

    with app.app_context():
        with pytest.raises(RuntimeError), metrics.job_run("check-health", total=3):
            raise RuntimeError("the sweep broke")
        [failed] = storage.list_job_runs("check-health")
        with metrics.job_run("check-health", total=5) as run:
            run.progress(2)
            samples = scrape(client)
            run.finish(processed=5)
    assert failed.outcome == "failed" and failed.summary == {"error": "RuntimeError"}
    job = frozenset({"job": "check-health"}.items())
    assert samples[("portal_job_running", job)] == 1
    assert samples[("portal_job_last_processed", job)] == 2
    assert samples[("portal_job_last_total", job)] == 5
    assert samples[("portal_job_last_finished_timestamp_seconds", job)] == failed.finished_at
    assert ("portal_job_last_success_timestamp_seconds", job) not in samples


def test_the_sweep_reports_its_progress(app, client_a, sim, tenant):
    from portal.connections import verification

    for _ in range(2):
        wizard = start_wizard(client_a)
        ready(app, wizard, sim, tenant)
        link(wizard)
    seen: list[int] = []
    with app.app_context():
        summary = verification.sweep(progress=seen.append)
    assert seen == [0, 1] and summary.checked == 2


def test_each_job_keeps_its_last_runs(app):
    from portal.storage import job_runs

    with app.app_context():
        for _ in range(job_runs.KEEP_RUNS + 5):  # two jobs taking turns
            storage.start_job_run("check-health")
            storage.start_job_run("refresh-tokens")
        for job in ("check-health", "refresh-tokens"):
            kept = storage.list_job_runs(job, limit=1000)
            assert len(kept) == job_runs.KEEP_RUNS
