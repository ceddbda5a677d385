"""Prove a service-provider (delegated) connection works: redeem its refresh token, compare the
granted scopes with the ones we need, and read Microsoft Graph with the new access token.

Granted scopes come from the token response's ``scope`` (RFC 6749 §5.1) and the access token's
``scp`` claim (entra.md §3a, https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference);
claims are only a hint for APIs we don't own, so a Graph read (``GET /v1.0/organization``,
https://learn.microsoft.com/graph/api/organization-get) proves the token is accepted.

The caller owns the refresh: it passes the MSAL client built around the stored cache and keeps
the rotated cache (``portal.connections.keepalive.refresh`` holds the lease, so one refresh
token is never redeemed twice at once). No Flask here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import requests

from .client import DELEGATED_SCOPE_NAMES, EntraClient
from .cloud import Cloud
from .errors import EntraProblem, problem
from .graph import GraphClient, GraphError
from .permissions import ChecklistItem, Observed, checklist
from .report import Step, StepTimer, TenantFacts, VerificationReport, token_outcome
from .tokens import TokenResult

__all__ = ["DelegatedCheck", "granted_scopes", "verify_delegated"]

#: Scopes of the OpenID layer and the static-consent marker: never a product permission.
_NOT_PERMISSIONS = frozenset({"openid", "profile", "offline_access", "email", ".default"})
_KIND: Literal["service_provider"] = "service_provider"


@dataclass(frozen=True)
class DelegatedCheck:
    """The token the refresh gave (its rotated refresh token is in the client's cache) and the
    report of the check made with it."""

    token: TokenResult
    report: VerificationReport


def granted_scopes(token: TokenResult, cloud: Cloud) -> frozenset[str] | None:
    """The delegated Graph scopes a token carries (response ``scope`` and ``scp``), as short
    names; None when neither says anything."""
    names = [*token.granted_scopes, *(token.scopes or ())]
    if not names:
        return None
    prefix = cloud.graph_resource.rstrip("/") + "/"
    short = {n[len(prefix) :] if n.startswith(prefix) else n for n in names}
    return frozenset(n for n in short if n.lower() not in _NOT_PERMISSIONS)


def verify_delegated(
    client: EntraClient,
    account: Mapping[str, Any],
    *,
    session: requests.Session,
    tenant_id: str,
    required_scopes: Sequence[str] = DELEGATED_SCOPE_NAMES,
    graph_options: Mapping[str, Any] | None = None,
) -> DelegatedCheck:
    """Redeem the refresh token (``force_refresh``: renew it, never a cached access token), then
    check the scopes and read Graph. A failed token request gives a report with its problem
    and nothing observed; the caller decides who has to act on it."""
    started = time.perf_counter()
    timer = StepTimer()
    cloud = client.cloud
    # `.default` asks for whatever is granted, so a scope withdrawn later still yields a token
    # and shows as missing (https://learn.microsoft.com/entra/identity-platform/scopes-oidc).
    token = timer.run(
        "token",
        lambda: client.acquire_delegated_silent(
            [cloud.graph_scope()], dict(account), force_refresh=True
        ),
        token_outcome,
    )
    if not token.ok:
        assert token.problem is not None
        items = checklist(_KIND, Observed(), cloud, client.client_id, scopes=required_scopes)
        return DelegatedCheck(token, _report(cloud, items, timer, started, token.problem))
    observed = Observed(
        scopes=granted_scopes(token, cloud), refresh_token=client.has_refresh_token()
    )
    items = checklist(_KIND, observed, cloud, client.client_id, scopes=required_scopes)
    graph = GraphClient(session, cloud, token.access_token or "", **(graph_options or {}))
    org: dict[str, Any] | None = None
    graph_problem: EntraProblem | None = None
    try:
        org = timer.run(
            "organization",
            lambda: graph.get_json("organization", {"$select": "id,displayName,verifiedDomains"}),
            lambda _org: "ok",
        )
    except GraphError as exc:
        # 403: Graph accepted the token but this sign-in may not read the organization (its
        # delegated permissions are Organization.Read.All and the like; User.Read reads only
        # basic properties, entra.md §3b): the token works, only the tenant's name is unknown.
        graph_problem = None if exc.forbidden else exc.to_problem()
    report_problem = _scopes_problem(items) or graph_problem
    return DelegatedCheck(
        token,
        _report(cloud, items, timer, started, report_problem, _org_facts(org, tenant_id)),
    )


def _scopes_problem(items: list[ChecklistItem]) -> EntraProblem | None:
    """The missing scopes, named (what the customer grants again when signing in)."""
    missing = [i for i in items if i.status == "missing"]
    if not missing:
        return None
    names = ", ".join(f"{i.key.removeprefix('scope:')} ({i.label})" for i in missing)
    return problem(
        "customer_action",
        "Permissions missing",
        f"Microsoft no longer grants us: {names}.",
        "Sign in again with Link Account and accept the permissions we ask for.",
    )


def _org_facts(org: Mapping[str, Any] | None, tenant_id: str) -> TenantFacts:
    values = (org or {}).get("value")
    entry = values[0] if isinstance(values, list) and values else None
    if not isinstance(entry, dict):
        return TenantFacts(id=tenant_id)
    domains = entry.get("verifiedDomains") or []
    default = next(
        (d.get("name") for d in domains if isinstance(d, dict) and d.get("isDefault")), None
    )
    return TenantFacts(
        id=entry.get("id") or tenant_id, name=entry.get("displayName"), default_domain=default
    )


def _report(
    cloud: Cloud,
    items: list[ChecklistItem],
    timer: StepTimer,
    started: float,
    report_problem: EntraProblem | None,
    tenant: TenantFacts | None = None,
) -> VerificationReport:
    ok = report_problem is None and all(i.ok for i in items)
    if report_problem is not None:
        timer.note("result", report_problem.raw)
    timer.steps.append(
        Step("total", (time.perf_counter() - started) * 1000, "ok" if ok else "needs attention")
    )
    return VerificationReport(
        ok=ok,
        kind=_KIND,
        cloud_key=cloud.key,
        checklist=items,
        tenant=tenant or TenantFacts(),
        steps=timer.steps,
        problem=report_problem,
        support=timer.support,
    )
