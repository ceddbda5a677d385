"""What the app was granted, by Graph's word: the reads of its app role assignments, directory
roles and organization (and an Exchange token), and the grants observed from them.

Graph is the authority, the token's claims only explain
(https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments and
https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .client import EntraClient
from .cloud import Cloud
from .errors import EntraProblem
from .graph import GraphClient, GraphError
from .permissions import APP_PERMISSIONS, EXCHANGE_PERMISSION, Observed
from .report import StepTimer, token_outcome
from .tokens import TokenResult

__all__ = ["Grants", "lookup_sp", "observe", "read_grants"]

T = TypeVar("T")
_ROLE_NAMES_BY_ID = {p.id: p.name for p in APP_PERMISSIONS} | {
    EXCHANGE_PERMISSION.id: EXCHANGE_PERMISSION.name
}
_EXCHANGE_IDS = {EXCHANGE_PERMISSION.id}


def _safe(fut: Future[T] | None) -> tuple[T | None, GraphError | None]:
    if fut is None:
        return None, None
    try:
        return fut.result(), None
    except GraphError as exc:
        return None, exc


@dataclass
class Grants:
    """What Microsoft answered about the app's grants (each read may have failed)."""

    graph_token: TokenResult
    exo_token: TokenResult | None
    assignments: list[Any] | None
    assignments_error: GraphError | None
    role_rows: list[Any] | None
    roles_error: GraphError | None
    org: Mapping[str, Any] | None
    org_error: GraphError | None


def read_grants(
    pool: ThreadPoolExecutor,
    client: EntraClient,
    graph: GraphClient,
    graph_token: TokenResult,
    cloud: Cloud,
    client_id: str,
    exchange: bool,
    timer: StepTimer,
) -> Grants:
    """Read, in parallel, the app's role assignments, its directory roles, the organization
    and (with Exchange) an Exchange token."""
    sp_id = graph_token.claims.get("oid")
    exo_future: Future[TokenResult] | None = None
    if exchange:
        exo_future = pool.submit(
            timer.run,
            "exchange token",
            lambda: client.acquire_app_token(cloud.exchange_scope()),
            token_outcome,
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
        sp_id = lookup_sp(graph, client_id, timer)
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
    return Grants(
        graph_token,
        exo_token,
        *assignments_result,
        *roles_result,
        *org_result,
    )


def observe(
    reads: Grants, exchange: bool, timer: StepTimer
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


def lookup_sp(graph: GraphClient, client_id: str, timer: StepTimer) -> str | None:
    """The id of the app's service principal, looked up by appId (None if Graph won't say)."""
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
