"""Tenant discovery against the simulator: found, other cloud, not found, malformed, cache."""

from __future__ import annotations

import pytest

from portal.entra.clouds import CloudTable, http_session
from portal.entra.retry import RetryPolicy
from portal.entra.tenant import DiscoveryCache, discover_tenant, parse_tenant_input


def test_found_by_domain_and_guid(sim, table):
    t = sim.create_tenant(cloud="global", domains=["contoso.onmicrosoft.com"])
    for text in ("contoso.onmicrosoft.com", t["id"].upper(), "{" + t["id"] + "}"):
        found = discover_tenant(table, "sim-global", parse_tenant_input(text), cache=None)
        assert found.ok and found.tenant_id == t["id"]
        assert found.region_scope == "NA" and found.region_sub_scope is None
        assert found.issuer.endswith(f"/{t['id']}/v2.0")


@pytest.mark.parametrize(
    ("home", "chosen", "expected"),
    [
        ("usgov-l4", "sim-usgov-l4", "found"),
        ("usgov-l5", "sim-usgov-l5", "found"),
        ("usgov-l5", "sim-usgov-l4", "other_cloud"),
        ("china", "sim-usgov-l5", "other_cloud"),
        ("global", "sim-china", "other_cloud"),
    ],
)
def test_us_clouds_told_apart_by_sub_scope(sim, table, home, chosen, expected):
    t = sim.create_tenant(cloud=home, domains=["agency.onmicrosoft.us"])
    found = discover_tenant(table, chosen, parse_tenant_input(t["id"]), cache=None)
    assert found.outcome == expected
    if expected == "other_cloud":
        assert found.other_cloud == f"sim-{home}"
        other = table.get(f"sim-{home}")
        assert found.message == (
            f"This tenant is in {other.name}, not {table.get(chosen).name}. "
            f"Choose {other.name} instead."
        )


def test_not_found_anywhere(sim, table):
    found = discover_tenant(
        table, "sim-global", parse_tenant_input("ghost.onmicrosoft.com"), cache=None
    )
    assert found.outcome == "not_found" and not found.ok
    assert found.problem.code == 90002 and found.problem.raw.trace_id
    assert "couldn't find this tenant" in found.message
    # every simulator login host was asked once (the simulator gives L4 and L5 a listener each;
    # the built-in L4/L5 share one login host and are asked once); built-in clouds never
    clouds = sorted(r["cloud"] for r in sim.requests("openid-configuration"))
    assert clouds == ["china", "global", "usgov-l4", "usgov-l5"]


def test_builtin_family_is_not_probed_from_the_file_family(sim, table):
    sim_family = [c.key for c in table.family_of(table.get("sim-global"))]
    assert sim_family == ["sim-global", "sim-usgov-l4", "sim-usgov-l5", "sim-china"]
    assert [c.key for c in table.family_of(table.get("global"))] == [
        "global",
        "usgov-l4",
        "usgov-l5",
        "china",
    ]


def test_probe_failures_still_give_not_found(sim, table):
    sim.set_fault("openid-configuration", "status", status=503)
    found = discover_tenant(
        table, "sim-global", parse_tenant_input("x.onmicrosoft.com"), cache=None
    )
    assert found.outcome == "error" and found.problem.category == "transient"


def test_dropped_connection_is_transient(sim, table):
    sim.set_fault("openid-configuration", "drop")  # every attempt (a single drop is retried)
    found = discover_tenant(
        table, "sim-global", parse_tenant_input("x.onmicrosoft.com"), cache=None
    )
    assert found.outcome == "error" and found.problem.category == "transient"


def test_cache_ttl_with_injected_clock(sim, table):
    t = sim.create_tenant(cloud="global", domains=["contoso.onmicrosoft.com"])
    now = [1000.0]
    cache = DiscoveryCache(ttl=300, negative_ttl=60, clock=lambda: now[0])
    ref = parse_tenant_input("contoso.onmicrosoft.com")
    ghost = parse_tenant_input("ghost.onmicrosoft.com")
    assert discover_tenant(table, "sim-global", ref, cache=cache).tenant_id == t["id"]
    assert discover_tenant(table, "sim-global", ghost, cache=cache).outcome == "not_found"
    calls = len(sim.requests())
    assert discover_tenant(table, "sim-global", ref, cache=cache).from_cache
    assert discover_tenant(table, "sim-global", ghost, cache=cache).from_cache
    assert len(sim.requests()) == calls
    now[0] += 61  # negative results expire sooner
    assert not discover_tenant(table, "sim-global", ghost, cache=cache).from_cache
    assert discover_tenant(table, "sim-global", ref, cache=cache).from_cache
    now[0] += 300
    assert not discover_tenant(table, "sim-global", ref, cache=cache).from_cache


def test_errors_are_not_cached(sim, table):
    cache = DiscoveryCache()
    sim.set_fault("openid-configuration", "status", status=503)
    ref = parse_tenant_input("x.onmicrosoft.com")
    assert discover_tenant(table, "sim-global", ref, cache=cache).outcome == "error"
    sim.clear_faults()
    assert not discover_tenant(table, "sim-global", ref, cache=cache).from_cache


def test_probe_timeouts_are_short(sim, table):
    import time

    sim.create_tenant(cloud="china", domains=["cn.onmicrosoft.com"])
    sim.set_fault("openid-configuration", "hang", seconds=8, times=1)  # the chosen cloud hangs
    session = http_session(table, timeout=(1, 1), retry=RetryPolicy(attempts=1))
    began = time.monotonic()
    found = discover_tenant(
        table, "sim-global", parse_tenant_input("cn.onmicrosoft.com"), session=session, cache=None
    )
    assert time.monotonic() - began < 3
    assert found.outcome == "error"
    sim.clear_faults()


def test_only_table_hosts_are_contacted(sim, table):
    session = http_session(CloudTable(tuple(c for c in table.all() if c.key != "sim-china")))
    t = sim.create_tenant(cloud="china", domains=["cn.onmicrosoft.com"])
    sub = CloudTable(tuple(c for c in table.all() if c.key != "sim-china"))
    found = discover_tenant(
        sub, "sim-global", parse_tenant_input(t["id"]), session=session, cache=None
    )
    assert found.outcome == "not_found"
