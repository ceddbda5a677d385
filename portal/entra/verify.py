"""Prove a connection works: token, granted permissions, directory roles and tenant facts.

The check sequence follows reference/entra.md §3 (token claims are hints; the Graph reads of
https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments and
https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments are the authority).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import requests

from .client import Credential, EntraClient, TokenResult
from .clouds import Cloud, CloudTable, http_session
from .errors import EntraProblem, SupportCodes, problem
from .graph import GraphClient, GraphError
from .permissions import (
    APP_PERMISSIONS,
    EXCHANGE_PERMISSION,
    ChecklistItem,
    Observed,
    checklist,
)
from .tenant import (
    Discovery,
    DiscoveryCache,
    TenantInputError,
    TenantRef,
    discover_tenant,
    parse_tenant_input,
)

__all__ = ["Step", "TenantFacts", "VerificationReport", "verify_customer_owned"]

T = TypeVar("T")
_ROLE_NAMES_BY_ID = {p.id: p.name for p in APP_PERMISSIONS} | {
    EXCHANGE_PERMISSION.id: EXCHANGE_PERMISSION.name
}
_EXCHANGE_IDS = {EXCHANGE_PERMISSION.id}


@dataclass(frozen=True)
class Step:
    """One timed step of a check, for the report and for support."""

    name: str
    ms: float
    outcome: str


@dataclass(frozen=True)
class TenantFacts:
    """What we learned about the tenant."""

    id: str | None = None
    name: str | None = None
    default_domain: str | None = None


@dataclass(frozen=True)
class VerificationReport:
    """The result of a check: checklist, tenant facts, timings, the blocking problem and codes."""

    ok: bool
    kind: Literal["customer_owned"]
    cloud_key: str
    checklist: list[ChecklistItem]
    tenant: TenantFacts
    steps: list[Step]
    problem: EntraProblem | None = None
    support: list[dict[str, Any]] = field(default_factory=list)
    discovery: Discovery | None = field(default=None, compare=False)
    pending_replication: bool = False

    @property
    def missing(self) -> list[ChecklistItem]:
        """Items that are not ok."""
        return [item for item in self.checklist if item.status != "ok"]

    @property
    def total_ms(self) -> float:
        """Wall time of the whole check."""
        return sum(s.ms for s in self.steps if s.name == "total")

    def as_dict(self) -> dict[str, Any]:
        """JSON for the connection's `last_check` column (no tokens, no keys)."""
        return {
            "ok": self.ok,
            "kind": self.kind,
            "cloud": self.cloud_key,
            "tenant": {
                "id": self.tenant.id,
                "name": self.tenant.name,
                "default_domain": self.tenant.default_domain,
            },
            "checklist": [
                {
                    "key": i.key,
                    "label": i.label,
                    "status": i.status,
                    "why": i.why,
                    "fix": i.fix,
                    "fix_url": i.fix_url,
                    "note": i.note,
                }
                for i in self.checklist
            ],
            "steps": [
                {"name": s.name, "ms": round(s.ms, 1), "outcome": s.outcome} for s in self.steps
            ],
            "problem": self.problem.as_dict() if self.problem else None,
            "support": self.support,
            "pending_replication": self.pending_replication,
        }


class _Timer:
    """Collects step timings from several threads."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.support: list[dict[str, Any]] = []

    def run(self, name: str, fn: Callable[[], T], outcome: Callable[[T], str]) -> T:
        began = time.perf_counter()
        try:
            value = fn()
        except GraphError as exc:
            self.steps.append(
                Step(name, (time.perf_counter() - began) * 1000, f"error {exc.status}")
            )
            self.note(name, exc.to_problem().raw)
            raise
        self.steps.append(Step(name, (time.perf_counter() - began) * 1000, outcome(value)))
        return value

    def note(self, step: str, raw: SupportCodes) -> None:
        if raw.error_codes or raw.trace_id or raw.correlation_id or raw.http_status:
            self.support.append({"step": step, **raw.as_dict()})


def _token_outcome(result: TokenResult) -> str:
    if result.ok:
        return f"ok ({result.source or 'identity_provider'})"
    assert result.problem is not None
    return f"failed {result.problem.code or result.problem.error or result.problem.category}"


def _safe(fut: Future[T] | None) -> tuple[T | None, GraphError | None]:
    if fut is None:
        return None, None
    try:
        return fut.result(), None
    except GraphError as exc:
        return None, exc


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


def _blocked(
    kind: Literal["customer_owned"],
    cloud: Cloud,
    client_id: str,
    exchange: bool,
    timer: _Timer,
    prob: EntraProblem,
    started: float,
    tenant: TenantFacts | None = None,
    discovery: Discovery | None = None,
) -> VerificationReport:
    timer.note("result", prob.raw)
    timer.steps.append(Step("total", (time.perf_counter() - started) * 1000, "failed"))
    return VerificationReport(
        ok=False,
        kind=kind,
        cloud_key=cloud.key,
        checklist=checklist(kind, Observed(), cloud, client_id=client_id, exchange=exchange),
        tenant=tenant or TenantFacts(),
        steps=timer.steps,
        problem=prob,
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


def _verify_customer_owned(
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
) -> VerificationReport:
    """Check a customer-owned app end to end; every check asks Microsoft for new app tokens.

    `fresh`: the customer has just granted consent, so a missing item is reported as most likely
    still replicating (`pending_replication`, and the message says so).
    """
    started = time.perf_counter()
    timer = _Timer()
    cloud = cloud_table.get(cloud_key)
    kind: Literal["customer_owned"] = "customer_owned"
    try:
        ref = _tenant_ref(tenant)
        client_ref = parse_tenant_input(client_id)
        if client_ref.kind != "guid":
            raise TenantInputError(
                "The Application (client) ID is a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47."
            )
    except TenantInputError as exc:
        return _blocked(kind, cloud, client_id, exchange, timer, _input_problem(str(exc)), started)
    client_id = client_ref.value
    assert session is not None

    def stop(
        reason: EntraProblem, facts: TenantFacts | None = None, found: Discovery | None = None
    ) -> VerificationReport:
        return _blocked(kind, cloud, client_id, exchange, timer, reason, started, facts, found)

    with ThreadPoolExecutor(max_workers=4) as pool:
        # MSAL's constructor fetches the tenant's OpenID document too; overlap it with ours.
        client = EntraClient(
            cloud,
            ref.value,
            client_id,
            credential,
            session=session,
            http_cache=http_cache,
        )
        warm = pool.submit(client.accounts)
        found = timer.run(
            "discovery",
            lambda: discover_tenant(
                cloud_table, cloud_key, ref, session=session, cache=discovery_cache
            ),
            lambda d: d.outcome + (" (cached)" if d.from_cache else ""),
        )
        warm.result()
        if not found.ok:
            return stop(_discovery_problem(found), TenantFacts(id=found.tenant_id), found)
        tenant_id = found.tenant_id
        assert tenant_id is not None
        graph_token = timer.run(
            "token", lambda: client.acquire_app_token(cloud.graph_scope()), _token_outcome
        )
        if not graph_token.ok:
            assert graph_token.problem is not None
            return stop(graph_token.problem, TenantFacts(id=tenant_id), found)
        graph = GraphClient(session, cloud, graph_token.access_token or "", **(graph_options or {}))
        reads = _read_grants(pool, client, graph, graph_token, cloud, client_id, exchange, timer)

    return _report(reads, found, tenant_id, cloud, client_id, exchange, fresh, timer, started)


def _report(
    reads: _Grants,
    found: Discovery,
    tenant_id: str,
    cloud: Cloud,
    client_id: str,
    exchange: bool,
    fresh: bool,
    timer: _Timer,
    started: float,
) -> VerificationReport:
    """The checklist and the report from what Microsoft answered."""
    kind: Literal["customer_owned"] = "customer_owned"
    graph_token = reads.graph_token
    observed, notes, pending, exo_problem = _observe(reads, exchange, timer)
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
    timer.steps.append(
        Step("total", (time.perf_counter() - started) * 1000, "ok" if ok else "needs attention")
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


@dataclass
class _Grants:
    """What Microsoft answered about the app's grants (each read may have failed)."""

    graph_token: TokenResult
    exo_token: TokenResult | None
    assignments: list[Any] | None
    assignments_error: GraphError | None
    role_rows: list[Any] | None
    roles_error: GraphError | None
    org: Mapping[str, Any] | None
    org_error: GraphError | None


def _read_grants(
    pool: ThreadPoolExecutor,
    client: EntraClient,
    graph: GraphClient,
    graph_token: TokenResult,
    cloud: Cloud,
    client_id: str,
    exchange: bool,
    timer: _Timer,
) -> _Grants:
    """Read, in parallel, the app's role assignments, its directory roles, the organization
    and (with Exchange) an Exchange token."""
    sp_id = graph_token.claims.get("oid")
    exo_future: Future[TokenResult] | None = None
    if exchange:
        exo_future = pool.submit(
            timer.run,
            "exchange token",
            lambda: client.acquire_app_token(cloud.exchange_scope()),
            _token_outcome,
        )
    org_future = pool.submit(
        timer.run,
        "organization",
        lambda: graph.get_json("organization", {"$select": "id,displayName,verifiedDomains"}),
        lambda _: "ok",
    )
    if not isinstance(sp_id, str) or not sp_id:
        # No `oid` in the token: look our service principal up by appId (always allowed for
        # a service principal reading itself, per the serviceprincipal-get doc).
        sp_id = _lookup_sp(graph, client_id, timer)
    assignments_future = None
    roles_future = None
    if sp_id:
        assignments_future = pool.submit(
            timer.run,
            "app role assignments",
            lambda: graph.get_all(f"servicePrincipals/{sp_id}/appRoleAssignments"),
            lambda v: f"ok ({len(v)})",
        )
        roles_future = pool.submit(
            timer.run,
            "directory roles",
            lambda: graph.get_all(
                "roleManagement/directory/roleAssignments",
                {"$filter": f"principalId eq '{sp_id}'"},
            ),
            lambda v: f"ok ({len(v)})",
        )
    assignments_result = _safe(assignments_future)
    roles_result = _safe(roles_future)
    org_result = _safe(org_future)
    exo_token = exo_future.result() if exo_future else None
    return _Grants(
        graph_token,
        exo_token,
        *assignments_result,
        *roles_result,
        *org_result,
    )


def _observe(
    reads: _Grants, exchange: bool, timer: _Timer
) -> tuple[Observed, dict[str, str], bool, EntraProblem | None]:
    """What is granted, by Graph's word (the token only explains): the observed grants, notes
    per checklist item, whether a grant is still replicating, and the Exchange token's problem."""
    graph_token, exo_token = reads.graph_token, reads.exo_token
    assignments, role_rows = reads.assignments, reads.role_rows
    # Graph is the authority for what was granted; the token only explains.
    graph_granted: frozenset[str] | None = None
    exchange_granted: frozenset[str] | None = None
    if assignments is not None:
        ids = {a.get("appRoleId") for a in assignments if isinstance(a, dict)}
        graph_granted = frozenset(
            _ROLE_NAMES_BY_ID[i] for i in ids if i in _ROLE_NAMES_BY_ID and i not in _EXCHANGE_IDS
        )
        exchange_granted = frozenset(_ROLE_NAMES_BY_ID[i] for i in ids if i in _EXCHANGE_IDS)
    token_roles = graph_token.roles or frozenset()
    pending = False
    observed_app = graph_granted if graph_granted is not None else token_roles
    notes: dict[str, str] = {}
    if graph_granted is not None:
        for name in graph_granted - token_roles:
            notes["app:" + name] = "Granted, but Microsoft hasn't applied it to new tokens yet."
            pending = True
    exo_problem: EntraProblem | None = None
    if exchange:
        exo_roles = exo_token.roles if exo_token is not None and exo_token.ok else None
        if exo_token is not None and not exo_token.ok:
            exo_problem = exo_token.problem
            if exo_problem is not None:
                timer.note("exchange token", exo_problem.raw)
        if exchange_granted is None:
            exchange_granted = exo_roles
        elif exo_roles is not None and exchange_granted - exo_roles:
            pending = True
    directory_roles: frozenset[str] | None = None
    if role_rows is not None:
        directory_roles = frozenset(
            r["roleDefinitionId"]
            for r in role_rows
            if isinstance(r, dict)
            and isinstance(r.get("roleDefinitionId"), str)
            and r.get("directoryScopeId", "/") in ("/", None)
        )
    elif graph_token.wids is not None:
        directory_roles = graph_token.wids
    observed = Observed(
        app_roles=observed_app,
        exchange_roles=exchange_granted,
        directory_roles=directory_roles,
    )
    return observed, notes, pending, exo_problem


def _with_note(item: ChecklistItem, note: str) -> ChecklistItem:
    if not note:
        return item
    return ChecklistItem(
        item.key, item.label, item.status, item.why, item.fix, item.fix_url, item.id, note
    )


def _lookup_sp(graph: GraphClient, client_id: str, timer: _Timer) -> str | None:
    try:
        sp = timer.run(
            "service principal",
            lambda: graph.get_json(f"servicePrincipals(appId='{client_id}')", {"$select": "id"}),
            lambda _: "ok",
        )
    except GraphError:
        return None
    value = sp.get("id")
    return value if isinstance(value, str) else None


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
) -> VerificationReport:
    """Check a customer-owned app end to end; every check asks Microsoft for new app tokens.

    `fresh`: the customer has just granted consent, so a missing item is reported as most likely
    still replicating (`pending_replication`, and the message says so).
    """
    own = session is None
    session = session or http_session(cloud_table, cloud_table.get(cloud_key))
    try:
        return _verify_customer_owned(
            cloud_table,
            cloud_key,
            tenant,
            client_id,
            credential,
            exchange,
            fresh=fresh,
            session=session,
            discovery_cache=discovery_cache,
            http_cache=http_cache,
            graph_options=graph_options,
        )
    finally:
        if own:
            session.close()  # the connections end with the check
