"""The permissions and roles each kind of connection needs, as data, and the pure checklist.

IDs: https://learn.microsoft.com/graph/permissions-reference and
https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference .
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .clouds import Cloud

__all__ = [
    "APP_PERMISSIONS",
    "ChecklistItem",
    "DELEGATED_SCOPES",
    "DIRECTORY_ROLES",
    "EXCHANGE_PERMISSION",
    "EXCHANGE_APP_ID",
    "GRAPH_APP_ID",
    "Observed",
    "Requirement",
    "checklist",
    "delegated_requirements",
    "required_items",
    "OTHER_ROLE_IDS",
]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"

Kind = Literal["service_provider", "customer_owned"]
Status = Literal["ok", "missing", "unknown"]


@dataclass(frozen=True)
class Requirement:
    """One thing a connection needs: a permission (by name and ID) or a directory role."""

    key: str
    kind: Literal["delegated", "application", "exchange", "role"]
    name: str
    id: str
    label: str
    why: str
    fix: str
    fix_link: str | None


DELEGATED_SCOPES: tuple[Requirement, ...] = (
    Requirement(
        "scope:User.ReadWrite.All",
        "delegated",
        "User.ReadWrite.All",
        "204e0828-b5ca-4ad8-b9f3-f32a958e7cc4",
        "Read and write all users' full profiles",
        "We read and update every user's full profile.",
        "Sign in again and accept the permissions we ask for.",
        None,
    ),
    Requirement(
        "scope:Group.ReadWrite.All",
        "delegated",
        "Group.ReadWrite.All",
        "4e46008b-f24c-477d-8fff-7bb4ec7aafe0",
        "Read and write all groups",
        "We read and change all groups and their members.",
        "Sign in again and accept the permissions we ask for.",
        None,
    ),
    Requirement(
        "scope:Directory.AccessAsUser.All",
        "delegated",
        "Directory.AccessAsUser.All",
        "0e263e50-5827-48a4-b97c-d940288653c7",
        "Access the directory as the signed-in user",
        "We act on the directory as you — needed to reset passwords.",
        "Sign in again and accept the permissions we ask for.",
        None,
    ),
    Requirement(
        "scope:offline_access",
        "delegated",
        "offline_access",
        "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
        "Maintain access to data you have given it access to",
        "We keep access between sign-ins: Microsoft gives us a long-lived refresh token that we "
        "use to get new access tokens as old ones expire.",
        "Sign in again so that Microsoft issues a new refresh token.",
        None,
    ),
)

APP_PERMISSIONS: tuple[Requirement, ...] = (
    Requirement(
        "app:User.ReadWrite.All",
        "application",
        "User.ReadWrite.All",
        "741f803b-c850-494e-b5df-cde7c675a1ca",
        "Microsoft Graph: User.ReadWrite.All",
        "We read and update user profiles without a signed-in user.",
        "In API permissions, add Microsoft Graph → Application permissions → User.ReadWrite.All, "
        "then select Grant admin consent.",
        "api_permissions",
    ),
    Requirement(
        "app:Group.ReadWrite.All",
        "application",
        "Group.ReadWrite.All",
        "62a82d76-70ea-41e2-9197-370581804d09",
        "Microsoft Graph: Group.ReadWrite.All",
        "We create groups, and read and change their properties and members.",
        "In API permissions, add Microsoft Graph → Application permissions → Group.ReadWrite.All, "
        "then select Grant admin consent.",
        "api_permissions",
    ),
    Requirement(
        "app:Directory.ReadWrite.All",
        "application",
        "Directory.ReadWrite.All",
        "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
        "Microsoft Graph: Directory.ReadWrite.All",
        "Needed to reset passwords.",
        "In API permissions, add Microsoft Graph → Application permissions → "
        "Directory.ReadWrite.All, then select Grant admin consent.",
        "api_permissions",
    ),
    Requirement(
        "app:User.EnableDisableAccount.All",
        "application",
        "User.EnableDisableAccount.All",
        "3011c876-62b7-4ada-afa2-506cbbecc68c",
        "Microsoft Graph: User.EnableDisableAccount.All",
        "We enable and disable user accounts.",
        "In API permissions, add Microsoft Graph → Application permissions → "
        "User.EnableDisableAccount.All, then select Grant admin consent.",
        "api_permissions",
    ),
)

EXCHANGE_PERMISSION = Requirement(
    "exchange:Exchange.ManageAsApp",
    "exchange",
    "Exchange.ManageAsApp",
    "dc50a0fb-09a3-484d-be87-e023b12c6440",
    "Office 365 Exchange Online: Exchange.ManageAsApp",
    "We manage mailboxes in Exchange Online as the application.",
    "In API permissions, add APIs my organization uses → Office 365 Exchange Online → "
    "Application permissions → Exchange.ManageAsApp, then select Grant admin consent.",
    "api_permissions",
)

USER_ADMINISTRATOR = Requirement(
    "role:user-administrator",
    "role",
    "User Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Role: User Administrator",
    "Required together with enabling and disabling accounts.",
    "In Roles and administrators, open User Administrator → Add assignments and choose the "
    "application.",
    "roles",
)

EXCHANGE_ADMINISTRATOR = Requirement(
    "role:exchange-administrator",
    "role",
    "Exchange Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Role: Exchange Administrator",
    "Exchange Online uses this role to decide what the application may do with mailboxes.",
    "In Roles and administrators, open Exchange Administrator → Add assignments and choose the "
    "application.",
    "roles",
)

DIRECTORY_ROLES: tuple[Requirement, ...] = (USER_ADMINISTRATOR, EXCHANGE_ADMINISTRATOR)

# Roles that include the rights of a required one (Global Administrator covers everything).
_COVERING_ROLES: dict[str, frozenset[str]] = {
    USER_ADMINISTRATOR.id: frozenset({"62e90394-69f5-4237-9190-012177145e10"}),
    EXCHANGE_ADMINISTRATOR.id: frozenset({"62e90394-69f5-4237-9190-012177145e10"}),
}

OTHER_ROLE_IDS: dict[str, str] = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
}


@dataclass(frozen=True)
class Observed:
    """What a check saw; None for a fact it could not read (the item is then "unknown")."""

    app_roles: frozenset[str] | None = None
    exchange_roles: frozenset[str] | None = None
    directory_roles: frozenset[str] | None = None
    scopes: frozenset[str] | None = None
    refresh_token: bool | None = None


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the checklist: what, whether it's there, why we need it and how to fix it."""

    key: str
    label: str
    status: Status
    why: str
    fix: str
    fix_url: str | None
    id: str = ""
    note: str = field(default="", compare=False)

    @property
    def ok(self) -> bool:
        """True when the item is present."""
        return self.status == "ok"


def required_items(kind: Kind, exchange: bool = False) -> tuple[Requirement, ...]:
    """The requirements for a connection kind, in the order the customer sets them up."""
    if kind == "service_provider":
        return DELEGATED_SCOPES
    if kind != "customer_owned":
        raise ValueError(f"unknown connection kind {kind!r}")
    items = APP_PERMISSIONS + (USER_ADMINISTRATOR,)
    if exchange:
        items += (EXCHANGE_PERMISSION, EXCHANGE_ADMINISTRATOR)
    return items


def delegated_requirements(names: Sequence[str]) -> tuple[Requirement, ...]:
    """The delegated scopes a service-provider connection must hold: ``names`` (the product's
    plus any the operator added), each with its known wording when we have it, and
    ``offline_access`` (the refresh token) always."""
    known = {r.name.lower(): r for r in DELEGATED_SCOPES}
    items: list[Requirement] = []
    for name in (*names, "offline_access"):
        if any(i.name.lower() == name.lower() for i in items):
            continue
        items.append(
            known.get(name.lower())
            or Requirement(
                f"scope:{name}",
                "delegated",
                name,
                "",
                f"Microsoft Graph: {name}",
                "We need this delegated permission for the automation you use.",
                "Sign in again and accept the permissions we ask for.",
                None,
            )
        )
    return tuple(items)


def _present(value: Iterable[str] | None, *names: str) -> Status:
    if value is None:
        return "unknown"
    have = {v.lower() for v in value}
    return "ok" if any(n.lower() in have for n in names) else "missing"


def _status(req: Requirement, observed: Observed) -> Status:
    if req.kind == "application":
        return _present(observed.app_roles, req.name, req.id)
    if req.kind == "exchange":
        return _present(observed.exchange_roles, req.name, req.id)
    if req.kind == "role":
        return _present(observed.directory_roles, req.id, *_COVERING_ROLES.get(req.id, ()))
    if req.name == "offline_access":
        # `scp` never lists offline_access; a working refresh token is the evidence.
        if observed.refresh_token is None:
            return _present(observed.scopes, req.name) if observed.scopes else "unknown"
        return "ok" if observed.refresh_token else "missing"
    return _present(observed.scopes, req.name, req.id)


def checklist(
    kind: Kind,
    observed: Observed,
    cloud: Cloud,
    client_id: str | None = None,
    exchange: bool = False,
    scopes: Sequence[str] | None = None,
) -> list[ChecklistItem]:
    """Mark every required item ok / missing / unknown, with the reason and a fix for the cloud.
    ``scopes``: the delegated scopes a service-provider connection must hold (default: the
    product's, :data:`DELEGATED_SCOPES`)."""
    requirements = (
        delegated_requirements(scopes)
        if kind == "service_provider" and scopes is not None
        else required_items(kind, exchange)
    )
    return [
        ChecklistItem(
            key=req.key,
            label=req.label,
            status=_status(req, observed),
            why=req.why,
            fix=req.fix,
            fix_url=cloud.link(req.fix_link, client_id),
            id=req.id,
        )
        for req in requirements
    ]
