"""Prove a connection works: token, granted permissions, directory roles and tenant facts.

The check sequence follows reference/entra.md §3 (token claims are hints; the Graph reads of
https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments and
https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments are the authority).
This module runs the check and sums it up; the Graph reads are `grants.py`, the report and its
step timer `report.py` (its types are importable from here).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import requests

from .client import Credential, EntraClient
from .cloud import Cloud
from .clouds import CloudTable, http_session
from .errors import EntraProblem, SupportCodes, problem
from .grants import Grants, observe, read_grants
from .graph import GraphClient, GraphError
from .permissions import ChecklistItem, Observed, checklist
from .report import Progress, Step, StepTimer, TenantFacts, VerificationReport, token_outcome
from .retry import ContextPool
from .tenant import (
    Discovery,
    DiscoveryCache,
    TenantInputError,
    TenantRef,
    discover_tenant,
    parse_tenant_input,
)
from .tokens import TokenResult

__all__ = ["Step", "TenantFacts", "VerificationReport", "verify_customer_owned"]


def _tenant_ref(tenant: str | TenantRef) -> TenantRef:
    return tenant if isinstance(tenant, TenantRef) else parse_tenant_input(tenant)


def _input_problem(message: str) -> EntraProblem:
    return problem(
        "wrong_input", "Check what you entered", message, "Correct the value and check again."
    )


def _discovery_problem(found: Discovery) -> EntraProblem:
    raw = found.problem.raw if found.problem else SupportCodes()
    if found.outcome == "other_cloud":
        return problem(
            "wrong_input",
            "Wrong cloud",
            found.message,
            "Choose the cloud your tenant lives in.",
            code=90038,
            raw=raw,
        )
    if found.outcome == "error":
        assert found.problem is not None
        return found.problem
    if found.outcome == "malformed":
        return problem(
            "wrong_input",
            "Tenant isn't valid",
            found.message,
            "Enter the Directory (tenant) ID from the application's Overview page.",
            code=900023,
            raw=raw,
        )
    return problem(
        "wrong_input",
        "Tenant not found",
        found.message,
        "Check the tenant ID or domain, and the cloud selection.",
        code=90002,
        raw=raw,
    )


@dataclass(frozen=True)
class _Check:
    """What every step of one check shares: where it runs, for which app, and its timer."""

    cloud: Cloud
    client_id: str
    exchange: bool
    timer: StepTimer
    started: float

    def stop(
        self,
        reason: EntraProblem,
        tenant: TenantFacts | None = None,
        discovery: Discovery | None = None,
    ) -> VerificationReport:
        """The report of a check that could not go on: the blocking problem, nothing observed."""
        timer = self.timer
        timer.note("result", reason.raw)
        timer.add(Step("total", (time.perf_counter() - self.started) * 1000, "failed"))
        kind: Literal["customer_owned"] = "customer_owned"
        return VerificationReport(
            ok=False,
            kind=kind,
            cloud_key=self.cloud.key,
            checklist=checklist(
                kind, Observed(), self.cloud, client_id=self.client_id, exchange=self.exchange
            ),
            tenant=tenant or TenantFacts(),
            steps=timer.steps,
            problem=reason,
            support=timer.support,
            discovery=discovery,
        )


def _org_facts(org: Mapping[str, Any] | None, tenant_id: str | None) -> TenantFacts:
    if not org:
        return TenantFacts(id=tenant_id)
    values = org.get("value")
    entry = values[0] if isinstance(values, list) and values else org
    domains = entry.get("verifiedDomains") or []
    default = next(
        (d.get("name") for d in domains if isinstance(d, dict) and d.get("isDefault")), None
    )
    return TenantFacts(
        id=entry.get("id") or tenant_id, name=entry.get("displayName"), default_domain=default
    )


def _checked_inputs(tenant: str | TenantRef, client_id: str) -> tuple[TenantRef, str]:
    """The tenant reference and the client ID as a GUID; TenantInputError when either is wrong."""
    ref = _tenant_ref(tenant)
    client_ref = parse_tenant_input(client_id)
    if client_ref.kind != "guid":
        raise TenantInputError(
            "The Application (client) ID is a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47."
        )
    return ref, client_ref.value


def verify_customer_owned(
    cloud_table: CloudTable,
    cloud_key: str,
    tenant: str | TenantRef,
    client_id: str,
    credential: Credential,
    exchange: bool,
    *,
    fresh: bool = False,
    session: requests.Session | None = None,
    discovery_cache: DiscoveryCache | None = None,
    http_cache: MutableMapping[str, Any] | None = None,
    graph_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> VerificationReport:
    """Check a customer-owned app end to end; every check asks Microsoft for new app tokens.

    `fresh`: the customer has just granted consent, so a missing item is reported as most likely
    still replicating (`pending_replication`, and the message says so). `progress` hears of each
    step as it finishes (from the check's threads; an exception it raises ends the check).
    """
    started = time.perf_counter()
    timer = StepTimer(progress)
    cloud = cloud_table.get(cloud_key)
    try:
        ref, client_id = _checked_inputs(tenant, client_id)
    except TenantInputError as exc:
        return _Check(cloud, client_id, exchange, timer, started).stop(_input_problem(str(exc)))
    check = _Check(cloud, client_id, exchange, timer, started)
    # ContextPool: the reads run in threads, and their calls still reach the step's tracker.
    with _session_for(cloud_table, cloud, session) as session, ContextPool(4) as pool:
        # MSAL's constructor fetches the tenant's OpenID document too; overlap it with ours.
        client = EntraClient(
            cloud, ref.value, client_id, credential, session=session, http_cache=http_cache
        )
        warm = pool.submit(client.accounts)
        found = _discover(check, cloud_table, cloud_key, ref, session, discovery_cache)
        warm.result()
        if not found.ok:
            return check.stop(_discovery_problem(found), TenantFacts(id=found.tenant_id), found)
        tenant_id = found.tenant_id
        assert tenant_id is not None
        graph_token = _graph_token(check, client)
        if not graph_token.ok:
            assert graph_token.problem is not None
            return check.stop(graph_token.problem, TenantFacts(id=tenant_id), found)
        graph = GraphClient(session, cloud, graph_token.access_token or "", **(graph_options or {}))
        reads = read_grants(pool, client, graph, graph_token, cloud, client_id, exchange, timer)
    return _report(check, reads, found, tenant_id, fresh)


@contextmanager
def _session_for(
    cloud_table: CloudTable, cloud: Cloud, session: requests.Session | None
) -> Iterator[requests.Session]:
    """The caller's session, or one of our own that is closed when the check ends."""
    if session is not None:
        yield session
        return
    own = http_session(cloud_table, cloud)
    try:
        yield own
    finally:
        own.close()


def _discover(
    check: _Check,
    cloud_table: CloudTable,
    cloud_key: str,
    ref: TenantRef,
    session: requests.Session,
    cache: DiscoveryCache | None,
) -> Discovery:
    """The tenant's discovery document (which cloud it lives in, its id), as a timed step."""
    return check.timer.run(
        "discovery",
        lambda: discover_tenant(cloud_table, cloud_key, ref, session=session, cache=cache),
        lambda d: d.outcome + (" (cached)" if d.from_cache else ""),
    )


def _graph_token(check: _Check, client: EntraClient) -> TokenResult:
    """A new app-only token for this cloud's Graph, as a timed step."""
    cloud = check.cloud
    return check.timer.run(
        "token", lambda: client.acquire_app_token(cloud.graph_scope()), token_outcome
    )


def _report(
    check: _Check, reads: Grants, found: Discovery, tenant_id: str, fresh: bool
) -> VerificationReport:
    """The checklist and the report from what Microsoft answered."""
    kind: Literal["customer_owned"] = "customer_owned"
    cloud, client_id, exchange, timer = check.cloud, check.client_id, check.exchange, check.timer
    graph_token = reads.graph_token
    observed, notes, pending, exo_problem = observe(reads, exchange, timer)
    items = checklist(kind, observed, cloud, client_id=client_id, exchange=exchange)
    items = [_with_note(i, notes.get(i.key, "")) for i in items]
    for name, err in (
        ("app role assignments", reads.assignments_error),
        ("directory roles", reads.roles_error),
        ("organization", reads.org_error),
    ):
        if err is not None:
            timer.note(name, err.to_problem().raw)
    facts = _org_facts(reads.org, tenant_id)
    tid_claim = graph_token.claims.get("tid")
    # The organization read only gives the tenant's name; its failure doesn't fail the check.
    report_problem = _summary_problem(
        items,
        fresh,
        pending,
        exo_problem,
        [e for e in (reads.assignments_error, reads.roles_error) if e],
    )
    if isinstance(tid_claim, str) and tid_claim.lower() != tenant_id:
        report_problem = problem(
            "our_configuration",
            "Token for another tenant",
            "Microsoft issued a token for a different tenant than requested.",
            "Please contact support.",
        )
    ok = report_problem is None and all(i.ok for i in items)
    for item in items:  # each permission and role, as the progress of a background job
        timer.announce(Step(item.label, 0, item.status))
    timer.add(
        Step(
            "total",
            (time.perf_counter() - check.started) * 1000,
            "ok" if ok else "needs attention",
        )
    )
    if report_problem is not None:
        timer.note("result", report_problem.raw)
    return VerificationReport(
        ok=ok,
        kind=kind,
        cloud_key=cloud.key,
        checklist=items,
        tenant=facts,
        steps=timer.steps,
        problem=report_problem,
        support=timer.support,
        discovery=found,
        # Right after consent, a missing item most likely means Microsoft is still replicating.
        pending_replication=pending or (fresh and any(i.status == "missing" for i in items)),
    )


def _with_note(item: ChecklistItem, note: str) -> ChecklistItem:
    if not note:
        return item
    return ChecklistItem(
        item.key, item.label, item.status, item.why, item.fix, item.fix_url, item.id, note
    )


def _summary_problem(
    items: list[ChecklistItem],
    fresh: bool,
    pending: bool,
    exo_problem: EntraProblem | None,
    graph_errors: list[GraphError],
) -> EntraProblem | None:
    if exo_problem is not None and exo_problem.category != "customer_action":
        return exo_problem
    transient = [e for e in graph_errors if e.to_problem().category == "transient"]
    missing = [i for i in items if i.status == "missing"]
    if transient and not missing:
        # The token's claims look fine but Graph, the authority, couldn't confirm them.
        return transient[0].to_problem()
    unknown = [i for i in items if i.status == "unknown"]
    if exo_problem is not None and missing:
        return exo_problem
    if missing:
        names = ", ".join(i.label for i in missing)
        message = f"{len(missing)} item(s) still missing: {names}."
        if fresh or pending:
            message += (
                " If you granted them just now, Microsoft can take a few minutes to "
                "apply the change; we'll check again."
            )
        return problem(
            "customer_action",
            "Setup not complete",
            message,
            "Follow the fix next to each missing item, then check again.",
            "api_permissions",
        )
    if unknown:
        return problem(
            "customer_action",
            "Some items couldn't be checked",
            "Microsoft Graph didn't let the application read its own permissions or roles.",
            "Grant Directory.ReadWrite.All with admin consent so we can check the setup.",
            "api_permissions",
        )
    return None
