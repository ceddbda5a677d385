"""Every verification outcome, end to end over HTTPS against the Entra simulator with real MSAL."""

from __future__ import annotations

import time
import uuid

import pytest

from portal.entra.client import CertificateCredential
from portal.entra.retry import RetryPolicy
from portal.entra.tenant import DiscoveryCache
from portal.entra.verify import verify_customer_owned

from .sim_helpers import ALL_GRAPH, EXCHANGE_ADMIN, USER_ADMIN, customer_owned

NO_SLEEP = {"retry": RetryPolicy(sleep=lambda seconds: None)}


def _statuses(report):
    return {item.key: item.status for item in report.checklist}


def _verify(table, s, cloud="sim-global", tenant=None, exchange=False, **kw):
    kw.setdefault("graph_options", NO_SLEEP)
    return verify_customer_owned(
        table, cloud, tenant or s.domain, s.client_id, s.credential, exchange, **kw
    )


def test_all_granted(sim, table, cert):
    s = customer_owned(sim, cert)
    report = _verify(table, s)
    assert report.ok and report.problem is None
    assert set(_statuses(report).values()) == {"ok"}
    assert "exchange:Exchange.ManageAsApp" not in _statuses(report)
    assert (report.tenant.id, report.tenant.name, report.tenant.default_domain) == (
        s.tenant_id,
        "Contoso Ltd",
        "contoso.onmicrosoft.com",
    )
    names = [step.name for step in report.steps]
    assert names[:2] == ["discovery", "token"] and names[-1] == "total"
    assert {"app role assignments", "directory roles", "organization"} <= set(names)
    assert all(step.ms >= 0 for step in report.steps)
    assert report.as_dict()["ok"] is True
    assert not [r for r in sim.requests() if r["endpoint"] == "token" and r["method"] != "POST"]


def test_every_check_asks_for_a_new_token(sim, table, cert):
    s = customer_owned(sim, cert)
    first = _verify(table, s, tenant=s.tenant_id)
    assert first.ok and len(sim.requests("token")) == 1
    second = _verify(table, s, tenant=s.tenant_id)
    assert second.ok and len(sim.requests("token")) == 2
    assert [step.outcome for step in second.steps if step.name == "token"] == [
        "ok (identity_provider)"
    ]


@pytest.mark.parametrize("permission", ALL_GRAPH)
def test_each_permission_missing(sim, table, cert, permission):
    s = customer_owned(sim, cert, grants=[p for p in ALL_GRAPH if p != permission])
    report = _verify(table, s)
    assert not report.ok
    statuses = _statuses(report)
    assert statuses.pop(f"app:{permission}") == "missing"
    if permission == "Directory.ReadWrite.All":
        # Without it the app can't read its role assignments any more: we can't tell, so we say so.
        assert statuses.pop("role:user-administrator") in ("ok", "unknown")
    assert set(statuses.values()) == {"ok"}
    assert report.problem is not None and report.problem.category == "customer_action"
    missing = next(i for i in report.checklist if i.key == f"app:{permission}")
    assert permission in missing.fix and "CallAnAPI" in (missing.fix_url or "")
    assert missing.fix_url.startswith(table.get("sim-global").portal_url)


def test_nothing_granted_means_no_roles_claim(sim, table, cert):
    s = customer_owned(sim, cert, grants=(), roles=())
    report = _verify(table, s)
    assert not report.ok
    statuses = _statuses(report)
    assert all(statuses[f"app:{p}"] == "missing" for p in ALL_GRAPH)
    assert statuses["role:user-administrator"] in ("missing", "unknown")


def test_role_missing(sim, table, cert):
    s = customer_owned(sim, cert, roles=())
    report = _verify(table, s)
    assert not report.ok
    assert _statuses(report)["role:user-administrator"] == "missing"
    item = next(i for i in report.checklist if i.key == "role:user-administrator")
    assert "User Administrator" in item.fix and item.fix_url.endswith("AllRoles")


def test_exchange_on_all_granted(sim, table, cert):
    s = customer_owned(sim, cert, exchange=True)
    report = _verify(table, s, exchange=True)
    assert report.ok, report.problem
    assert _statuses(report)["exchange:Exchange.ManageAsApp"] == "ok"
    assert _statuses(report)["role:exchange-administrator"] == "ok"
    assert any(step.name == "exchange token" for step in report.steps)


def test_exchange_on_but_not_set_up(sim, table, cert):
    s = customer_owned(sim, cert)
    report = _verify(table, s, exchange=True)
    assert not report.ok
    statuses = _statuses(report)
    assert statuses["exchange:Exchange.ManageAsApp"] == "missing"
    assert statuses["role:exchange-administrator"] == "missing"
    assert statuses["app:User.ReadWrite.All"] == "ok"


def test_exchange_role_missing(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.grant_app_role(s.tenant_id, s.client_id, "Exchange.ManageAsApp", resource="exchange")
    report = _verify(table, s, exchange=True)
    assert _statuses(report)["exchange:Exchange.ManageAsApp"] == "ok"
    assert _statuses(report)["role:exchange-administrator"] == "missing"


def test_exchange_off_asks_no_exchange_token(sim, table, cert):
    s = customer_owned(sim, cert, exchange=True)
    report = _verify(table, s, exchange=False)
    assert report.ok
    assert "exchange:Exchange.ManageAsApp" not in _statuses(report)
    assert len(sim.requests("token")) == 1


def test_wrong_certificate(sim, table, cert, other_cert):
    s = customer_owned(sim, cert)
    wrong = CertificateCredential(other_cert.private_key_pem, other_cert.cert_pem)
    report = verify_customer_owned(table, "sim-global", s.tenant_id, s.client_id, wrong, False)
    assert not report.ok
    assert report.problem.code == 700027 and report.problem.category == "customer_action"
    assert "Credentials" in report.problem.fix_url(table.get("sim-global"), s.client_id)
    assert set(_statuses(report).values()) == {"unknown"}
    assert report.support and report.support[-1]["error_codes"] == [700027]
    assert report.support[-1]["trace_id"] and report.support[-1]["correlation_id"]


def test_certificate_not_uploaded(sim, table, cert):
    s = customer_owned(sim, cert, upload=False)
    report = _verify(table, s)
    assert report.problem.code == 700027


def test_app_not_in_tenant(sim, table, cert):
    s = customer_owned(sim, cert)
    s.client_id = str(uuid.uuid4())
    report = _verify(table, s)
    assert not report.ok
    assert report.problem.code in (700016, 700011)
    assert report.problem.category == "wrong_input"


def test_app_disabled(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.set_service_principal_enabled(s.tenant_id, s.client_id, False)
    report = _verify(table, s)
    assert report.problem.code == 7000112 and report.problem.link == "enterprise_app"


@pytest.mark.parametrize(
    ("home", "chosen", "word"),
    [
        ("usgov-l4", "sim-global", "L4"),
        ("global", "sim-usgov-l4", "global"),
        ("usgov-l5", "sim-usgov-l4", "L5"),
        ("usgov-l4", "sim-usgov-l5", "L4"),
        ("china", "sim-global", "China"),
    ],
)
def test_wrong_cloud(sim, table, cert, home, chosen, word):
    s = customer_owned(sim, cert, cloud=home)
    report = _verify(table, s, cloud=chosen)
    assert not report.ok
    assert report.discovery.outcome == "other_cloud"
    assert report.discovery.other_cloud == f"sim-{home}"
    assert report.problem.category == "wrong_input" and report.problem.title == "Wrong cloud"
    assert word in report.problem.message
    assert report.problem.message.startswith("This tenant is in ")
    assert not sim.requests("token")


def test_tenant_nowhere(sim, table, cert):
    report = verify_customer_owned(
        table,
        "sim-global",
        "nobody.onmicrosoft.com",
        str(uuid.uuid4()),
        CertificateCredential(b"k", b"c"),
        False,
    )
    assert report.discovery.outcome == "not_found"
    assert report.problem.code == 90002 and report.problem.category == "wrong_input"


@pytest.mark.parametrize("tenant", ["contoso.com/evil", "10.0.0.1", "common", ""])
def test_malformed_input_makes_no_request(sim, table, tenant):
    report = verify_customer_owned(
        table, "sim-global", tenant, str(uuid.uuid4()), CertificateCredential(b"k", b"c"), False
    )
    assert report.problem.category == "wrong_input"
    assert sim.requests() == []


def test_consent_still_replicating(sim, table, cert):
    sim.set_replication_delay(120)
    s = customer_owned(sim, cert)
    first = _verify(table, s, fresh=True)
    assert not first.ok and first.pending_replication
    assert "few minutes" in first.problem.message
    sim.advance_clock(121)
    again = _verify(table, s, fresh=True)
    assert again.ok, again.problem


def test_throttled_then_fine(sim, table, cert):
    s = customer_owned(sim, cert)
    for endpoint in ("graph.approleassignments", "graph.roleassignments", "graph.organization"):
        sim.set_fault(endpoint, "status", times=1, status=429, retry_after=1)
    slept: list[float] = []
    report = _verify(table, s, graph_options={"retry": RetryPolicy(sleep=slept.append)})
    assert report.ok, report.problem
    assert slept == [1.0, 1.0, 1.0]
    assert len(sim.requests("graph.organization")) == 2


def test_token_endpoint_busy_then_fine(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.set_fault("token", "status", times=1, status=503)
    first = _verify(table.with_retry(RetryPolicy(attempts=1)), s)
    assert not first.ok and first.problem.category == "transient"
    second = _verify(table, s)
    assert second.ok


def test_graph_down(sim, table, cert):
    s = customer_owned(sim, cert)
    for endpoint in (
        "graph.approleassignments",
        "graph.roleassignments",
        "graph.organization",
        "graph.serviceprincipal",
    ):
        sim.set_fault(endpoint, "status", status=503)
    began = time.monotonic()
    report = _verify(table, s)
    assert time.monotonic() - began < 10
    assert not report.ok
    assert report.problem.category == "transient"
    statuses = _statuses(report)
    # The token's roles still explain what is granted; the directory role can't be read.
    assert statuses["role:user-administrator"] in ("unknown", "ok")
    assert any(entry.get("http_status") == 503 for entry in report.support)


def test_login_down_is_transient(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.set_fault("openid-configuration", "status", status=503)
    report = _verify(table, s)
    assert report.problem.category == "transient"
    assert report.discovery.outcome == "error"


def test_graph_hang_is_bounded_by_timeouts(sim, table, cert):
    from portal.entra.clouds import http_session

    s = customer_owned(sim, cert)
    sim.set_fault("graph.organization", "hang", seconds=5)
    session = http_session(table, table.get("sim-global"), timeout=(1, 1))
    began = time.monotonic()
    report = _verify(table, s, session=session, graph_options={"retry": RetryPolicy(attempts=1)})
    assert time.monotonic() - began < 4
    assert report.tenant.name is None
    assert _statuses(report)["app:User.ReadWrite.All"] == "ok"
    sim.clear_faults()


def test_discovery_is_cached(sim, table, cert):
    s = customer_owned(sim, cert)
    cache = DiscoveryCache()  # the caller's (the portal's app owns one)
    assert _verify(table, s, discovery_cache=cache).ok
    before = len(sim.requests("openid-configuration"))
    report = _verify(table, s, discovery_cache=cache)
    assert report.steps[0].outcome == "found (cached)"
    assert len(sim.requests("openid-configuration")) == before + 1  # only MSAL's own
    # Without a cache nothing is remembered.
    assert _verify(table, s).steps[0].outcome == "found"


def test_directory_role_via_global_admin(sim, table, cert):
    s = customer_owned(sim, cert, roles=("62e90394-69f5-4237-9190-012177145e10",))
    assert _verify(table, s).ok


def test_exchange_admin_is_not_enough_for_user_admin(sim, table, cert):
    s = customer_owned(sim, cert, roles=(EXCHANGE_ADMIN,))
    assert _statuses(_verify(table, s))["role:user-administrator"] == "missing"
    assert USER_ADMIN not in EXCHANGE_ADMIN


def test_fix_links_of_simulator_clouds_open_a_page(sim, table, cert, sim_session):
    s = customer_owned(sim, cert, roles=())
    report = _verify(table, s)
    urls = {i.fix_url for i in report.checklist if i.fix_url}
    assert urls
    for url in urls:
        assert "#view/" in url
        assert sim_session.get(url, timeout=10).status_code == 200


def test_report_json_carries_no_secret(sim, table, cert):
    import json

    from portal.entra.clouds import http_session

    s = customer_owned(sim, cert)
    issued: list[str] = []

    def keep_token(response, *args, **kwargs):
        if response.url.endswith("/oauth2/v2.0/token") and response.ok:
            issued.append(response.json()["access_token"])

    session = http_session(table, table.get("sim-global"))
    session.hooks["response"].append(keep_token)
    report = _verify(table, s, session=session)
    assert report.ok and len(issued) == 1
    token = issued[0]
    stored = json.dumps(report.as_dict())
    assert token not in stored and "PRIVATE KEY" not in stored
    assert token not in repr(report) and "PRIVATE KEY" not in repr(report)


def test_graph_reads_run_concurrently(sim, table, cert):
    s = customer_owned(sim, cert)
    sim.set_fault("*", "latency", ms=150)
    report = _verify(table, s, tenant=s.tenant_id)
    trips = len(sim.requests())
    total = next(step.ms for step in report.steps if step.name == "total")
    assert report.ok
    # Serial calls would take at least trips × 150 ms; discovery ∥ MSAL's discovery, then the
    # token, then the Graph reads side by side make about three latencies.
    assert trips >= 6
    assert total < trips * 150 * 0.9, (total, trips)
    sim.clear_faults()
