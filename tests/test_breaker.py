"""The per-cloud circuit breaker: its rules with a fake clock, and the health sweep through the
simulator (one cloud failing is paused and reported once; another cloud is still checked)."""

from __future__ import annotations

import logging

import pytest

from portal import storage
from portal.connections import verification
from portal.connections.breaker import CloudBreaker
from portal.entra.certificates import issue_certificate
from tests.entra.sim_helpers import ALL_GRAPH, USER_ADMIN


class Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _breaker(clock, **kw) -> CloudBreaker:
    return CloudBreaker(clock=clock, sleep=clock.sleep, **({"failures": 3, "cooloff": 60} | kw))


def test_consecutive_transient_failures_pause_the_cloud_once(caplog):
    clock = Clock()
    breaker = _breaker(clock)
    with caplog.at_level(logging.WARNING, logger="portal.breaker"):
        for _ in range(3):
            assert breaker.admit("global")
            breaker.record("global", transient=True)
        assert [breaker.admit("global") for _ in range(4)] == [False] * 4
    assert breaker.admit("usgov-l4")  # other clouds are not affected
    assert breaker.skipped() == {"global": 4} and breaker.paused() == ["global"]
    pauses = [r.getMessage() for r in caplog.records if r.name == "portal.breaker"]
    assert pauses == [
        "background job: cloud global paused for 60 s (3 consecutive transient failures); its "
        "connections are not checked until then"
    ]


def test_an_answer_resets_the_count():
    clock = Clock()
    breaker = _breaker(clock)
    for transient in (True, True, False, True, True):
        assert breaker.admit("global")
        breaker.record("global", transient=transient)
    assert breaker.admit("global")


def test_after_the_cooloff_one_trial_decides():
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.admit("global")
        breaker.record("global", transient=True)
    clock.now += 61
    assert breaker.admit("global")  # the trial
    breaker.record("global", transient=True)
    assert not breaker.admit("global")  # paused again
    clock.now += 61
    assert breaker.admit("global")
    breaker.record("global", transient=False)
    assert breaker.admit("global") and breaker.admit("global")  # closed


def test_a_trial_without_any_call_leaves_the_next_to_decide():
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.admit("global")
        breaker.record("global", transient=True)
    clock.now += 61
    assert breaker.admit("global")
    breaker.undecided("global")  # e.g. that connection has no certificate: nothing was sent
    assert breaker.admit("global")


def test_cooloff_is_at_least_the_largest_retry_after():
    clock = Clock()
    breaker = _breaker(clock, max_sleep=5)
    breaker.admit("global")
    breaker.record("global", transient=True, retry_after=2)
    breaker.admit("global")  # sleeps out the short Retry-After first
    assert clock.sleeps == [2]
    breaker.record("global", transient=True, retry_after=4)
    breaker.admit("global")
    breaker.record("global", transient=True)
    clock.now += 3  # the cool-off is 60 s; nothing asked for longer
    assert not breaker.admit("global")
    clock.now += 58
    assert breaker.admit("global")
    long = _breaker(Clock(), max_sleep=5, cooloff=10)
    for retry_after in (1, 1, 300):
        long.admit("china")
        long.record("china", transient=True, retry_after=retry_after)
    long.clock.now += 11  # type: ignore[attr-defined]
    assert not long.admit("china")  # Microsoft asked for 300 s: the cool-off grows to it


def test_a_long_retry_after_pauses_instead_of_sleeping():
    clock = Clock()
    breaker = _breaker(clock, max_sleep=5)
    breaker.admit("global")
    breaker.record("global", transient=True, retry_after=120)
    assert not breaker.admit("global") and clock.sleeps == []
    clock.now += 121
    assert breaker.admit("global")  # then one trial, as after any pause


# --- The health sweep through the simulator --------------------------------------------------


@pytest.fixture
def app_config(app_config, sim_server, tmp_path):
    app_config["CLOUDS_FILE"] = sim_server.clouds_file(str(tmp_path / "sim-clouds.json"))
    app_config.update(
        OUTBOUND_ATTEMPTS=2,
        OUTBOUND_BACKOFF_SECONDS=0.01,
        OUTBOUND_MAX_BACKOFF_SECONDS=0.02,
        BREAKER_FAILURES=3,
    )
    return app_config


@pytest.fixture(scope="module")
def certificate():
    return issue_certificate("Test Portal", "breaker", key_size=2048)


def _tenant(sim, cloud, domain, certificate):
    t = sim.create_tenant(cloud=cloud, domains=[domain])
    app = sim.create_app(t["id"], display_name="HR sync")
    sim.upload_certificate(t["id"], app["app_id"], certificate.cert_pem)
    for permission in ALL_GRAPH:
        sim.grant_app_role(t["id"], app["app_id"], permission)
    sim.assign_directory_role(t["id"], app["app_id"], USER_ADMIN)
    return t["id"], app["app_id"]


def _connected(app, org, cloud, tenant_id, client_id, certificate) -> str:
    with app.app_context():
        item = storage.create_connection(org.id, "customer_owned", f"{cloud} connection")
        storage.write_lifecycle(
            item.id,
            state="connected",
            health="healthy",
            cloud=cloud,
            tenant_id=tenant_id,
            client_id=client_id,
        )
        storage.add_certificate(
            item.id,
            cert_pem=certificate.cert_pem.decode(),
            thumbprint_sha1=certificate.thumbprint_sha1,
            thumbprint_sha256=certificate.thumbprint_sha256,
            subject=certificate.subject,
            not_before=certificate.not_before.isoformat(),
            not_after=certificate.not_after.isoformat(),
            private_key_pem=certificate.private_key_pem,
        )
        return item.id


def test_sweep_pauses_a_failing_cloud_and_still_checks_the_others(
    app, sim, org_a, certificate, caplog
):
    global_ids = _tenant(sim, "global", "contoso.onmicrosoft.com", certificate)
    gov_ids = _tenant(sim, "usgov-l4", "agency.onmicrosoft.us", certificate)
    failing = [_connected(app, org_a, "sim-global", *global_ids, certificate) for _ in range(6)]
    working = _connected(app, org_a, "sim-usgov-l4", *gov_ids, certificate)
    sim.set_fault("token", "status", status=503, cloud="global")

    with app.app_context(), caplog.at_level(logging.WARNING):
        summary = verification.sweep()

    # Three checks failed (two attempts each), the other three were never sent.
    assert len([r for r in sim.requests("token") if r["cloud"] == "global"]) == 3 * 2
    assert summary.not_checked == 3 and summary.paused == {"sim-global": 3}
    assert summary.checked == 1 and summary.healthy == 1
    assert summary.line().endswith(", not checked (cloud paused) 3: sim-global 3")
    pauses = [r for r in caplog.records if r.name == "portal.breaker"]
    assert len(pauses) == 1 and "sim-global paused" in pauses[0].getMessage()
    with app.app_context():
        assert storage.get_connection(working).health == "healthy"
        healths = [storage.get_connection(i).health for i in failing]
    assert sorted(healths) == ["degraded"] * 3 + ["healthy"] * 3  # skipped ones untouched


def test_sweep_honours_retry_after_across_connections(app, sim, org_a, certificate):
    ids = _tenant(sim, "global", "contoso.onmicrosoft.com", certificate)
    for _ in range(3):
        _connected(app, org_a, "sim-global", *ids, certificate)
    # Microsoft says "wait 120 s": longer than a call's deadline and than the breaker sleeps.
    sim.set_fault("token", "status", status=429, retry_after=120, cloud="global")
    with app.app_context():
        summary = verification.sweep()
    assert len(sim.requests("token")) == 1  # nothing more went to that cloud
    assert summary.not_checked == 1 and summary.paused == {"sim-global": 2}


def test_keepalive_pauses_a_failing_cloud(app, sim, sim_server, org_a, caplog):
    from portal.connections.keepalive.runner import PAUSED, run
    from portal.connections.keepalive.settings import settings_from_config
    from portal.services import cloud_table
    from tests.keepalive_helpers import Provider, link_connection

    provider = Provider.register(sim)
    for n in range(5):
        customer = provider.customer(domain=f"customer{n}.onmicrosoft.com")
        link_connection(app, sim, sim_server, provider, customer, org_a)
    sim.set_fault("token", "status", status=503, cloud="global")
    before = len(sim.requests("token"))
    with app.app_context(), caplog.at_level(logging.WARNING):
        settings = settings_from_config({**app.config, **provider.config()}, app.instance_path)
        summary = run(
            settings=settings,
            cloud_table=cloud_table(),
            breaker=CloudBreaker(failures=3, cooloff=60),
        )
    outcomes = sorted((r.outcome, r.reason) for r in summary.results)
    assert [o for o, _ in outcomes] == ["skipped", "skipped", "transient", "transient", "transient"]
    assert {reason for o, reason in outcomes if o == "skipped"} == {PAUSED}
    assert len(sim.requests("token")) - before == 3 * 2  # two attempts each, then nothing
    assert len([r for r in caplog.records if r.name == "portal.breaker"]) == 1
