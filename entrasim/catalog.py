"""Fixed facts the simulator mirrors: clouds, resources, permission and role IDs.

Every identifier here comes from ../shared/reference/entra.md (§1a clouds, §2 identifiers);
nothing is invented. Sources: https://learn.microsoft.com/graph/permissions-reference ,
https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference .
"""

from __future__ import annotations

from dataclasses import dataclass

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"


@dataclass(frozen=True)
class Cloud:
    """One national cloud the simulator mirrors (one listener each)."""

    key: str
    label: str
    graph_resource: str
    exchange_resource: str
    tenant_region_scope: str
    tenant_region_sub_scope: str | None
    cloud_instance_name: str
    msgraph_host: str
    # US Gov L4 and L5 share one login host, so discovery on either finds tenants of both.
    login_group: str


CLOUDS: dict[str, Cloud] = {
    c.key: c
    for c in (
        Cloud(
            "global",
            "Simulator: global service",
            "https://graph.microsoft.com",
            "https://outlook.office365.com",
            "NA",
            None,
            "microsoftonline.com",
            "graph.microsoft.com",
            "global",
        ),
        Cloud(
            "usgov-l4",
            "Simulator: US Government L4 (GCC High)",
            "https://graph.microsoft.us",
            "https://outlook.office365.us",
            "USGov",
            "DODCON",
            "microsoftonline.us",
            "graph.microsoft.us",
            "usgov",
        ),
        Cloud(
            "usgov-l5",
            "Simulator: US Government L5 (DoD)",
            "https://dod-graph.microsoft.us",
            "https://outlook-dod.office365.us",
            "USGov",
            "DOD",
            "microsoftonline.us",
            "dod-graph.microsoft.us",
            "usgov",
        ),
        Cloud(
            "china",
            "Simulator: China (21Vianet)",
            "https://microsoftgraph.chinacloudapi.cn",
            "https://partner.outlook.cn",
            "AS",
            None,
            "partner.microsoftonline.cn",
            "microsoftgraph.chinacloudapi.cn",
            "china",
        ),
    )
}

# Resource kinds used by the admin API ("graph" / "exchange") -> (appId, display name).
RESOURCES = {
    "graph": (GRAPH_APP_ID, "Microsoft Graph"),
    "exchange": (EXCHANGE_APP_ID, "Office 365 Exchange Online"),
}

# Application permissions (app roles): name -> id, per resource kind.
APP_ROLES: dict[str, dict[str, str]] = {
    "graph": {
        "User.ReadWrite.All": "741f803b-c850-494e-b5df-cde7c675a1ca",
        "Group.ReadWrite.All": "62a82d76-70ea-41e2-9197-370581804d09",
        "Directory.ReadWrite.All": "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
        "User.EnableDisableAccount.All": "3011c876-62b7-4ada-afa2-506cbbecc68c",
        "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
        "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
        "RoleManagement.Read.Directory": "483bed4a-2ad3-4361-a73b-c83ccdbdc53c",
        "RoleManagement.ReadWrite.Directory": "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8",
        "Organization.Read.All": "498476ce-e0fe-48b0-b801-37ba7e2685c6",
        "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
        "GroupMember.ReadWrite.All": "dbaae8cf-10b5-4b86-a4a1-f871c94c6695",
        "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
    },
    "exchange": {
        "Exchange.ManageAsApp": "dc50a0fb-09a3-484d-be87-e023b12c6440",
    },
}

# Delegated permissions (oauth2PermissionScopes) of Microsoft Graph:
# name -> (id, admin consent required).
GRAPH_SCOPES: dict[str, tuple[str, bool]] = {
    "User.Read": ("e1fe6dd8-ba31-4d61-89e7-88639da4683d", False),
    "User.ReadWrite.All": ("204e0828-b5ca-4ad8-b9f3-f32a958e7cc4", True),
    "Group.ReadWrite.All": ("4e46008b-f24c-477d-8fff-7bb4ec7aafe0", True),
    "Directory.ReadWrite.All": ("c5366453-9fb0-48a5-a156-24f0c49a4b84", True),
    "Directory.AccessAsUser.All": ("0e263e50-5827-48a4-b97c-d940288653c7", True),
    "User.EnableDisableAccount.All": ("f92e74e7-2563-467f-9dd0-902688cb5863", True),
    "Directory.Read.All": ("06da0dbc-49e2-44d2-8312-53f166ab848a", True),
    "Application.Read.All": ("c79f8feb-a9db-4090-85f9-90d820caa0eb", True),
    "RoleManagement.Read.Directory": ("741c54c3-0c1e-44a1-818b-3f97ab4e8c83", True),
    "RoleManagement.ReadWrite.Directory": ("d01b97e9-cbc0-49fe-810a-750afd5527a3", True),
    "Organization.Read.All": ("4908d5b9-3fb2-4b1e-9336-1888b7937185", True),
    "User.Read.All": ("a154be20-db9c-4678-8ab7-66f6cc099a59", True),
    "GroupMember.ReadWrite.All": ("f81125ac-d3b7-4573-a3b2-7099cc39df9e", True),
    "AppRoleAssignment.ReadWrite.All": ("84bccea3-f856-4a8a-967b-dbe0a3d53a64", True),
}

# OpenID Connect scopes: requested alongside a resource's scopes, never part of `scp` rules.
OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}

# Built-in directory roles: template id -> display name.
DIRECTORY_ROLES: dict[str, str] = {
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "31392ffb-586c-42d1-9346-e59415a2cc4e": "Exchange Recipient Administrator",
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451": "Global Reader",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "fdd7a751-b60b-444a-984c-02652fe8fa1c": "Groups Administrator",
    "4d6ac14f-3453-41d0-bef9-a3e0c569773a": "License Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "5d6b6bb7-de71-4623-b4af-96380a352509": "Security Reader",
    "17315797-102d-40b4-93e0-432062caca18": "Compliance Administrator",
    "88d8e3e3-8f55-4a1e-953a-9b9898b8876b": "Directory Readers",
    "9360feb5-f418-4baa-8175-e2a00bac4301": "Directory Writers",
}
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"

# Graph reads and the permissions that allow them (entra.md §3b; Graph API reference pages).
GRAPH_PERMISSIONS: dict[str, dict[str, set[str]]] = {
    "graph.serviceprincipal": {
        "app": {
            "Application.Read.All",
            "Application.ReadWrite.OwnedBy",
            "Application.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        },
        "delegated": {
            "Application.Read.All",
            "Application.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "Directory.AccessAsUser.All",
        },
    },
    "graph.approleassignments": {
        "app": {
            "Application.Read.All",
            "Directory.Read.All",
            "Application.ReadWrite.All",
            "Directory.ReadWrite.All",
        },
        "delegated": {
            "Application.Read.All",
            "Directory.Read.All",
            "Application.ReadWrite.All",
            "Directory.ReadWrite.All",
            "Directory.AccessAsUser.All",
        },
    },
    "graph.roleassignments": {
        "app": {
            "RoleManagement.Read.Directory",
            "RoleManagement.Read.All",
            "Directory.Read.All",
            "RoleManagement.ReadWrite.Directory",
            "Directory.ReadWrite.All",
        },
        "delegated": {
            "RoleManagement.Read.Directory",
            "RoleManagement.Read.All",
            "Directory.Read.All",
            "RoleManagement.ReadWrite.Directory",
            "Directory.ReadWrite.All",
            "Directory.AccessAsUser.All",
        },
    },
    "graph.organization": {
        "app": {
            "Organization.Read.All",
            "Directory.Read.All",
            "Organization.ReadWrite.All",
            "Directory.ReadWrite.All",
        },
        "delegated": {
            "User.Read",
            "Organization.Read.All",
            "Directory.Read.All",
            "Organization.ReadWrite.All",
            "Directory.ReadWrite.All",
            "Directory.AccessAsUser.All",
        },
    },
    "graph.users": {
        "app": {
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        },
        "delegated": {
            "User.ReadBasic.All",
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "Directory.AccessAsUser.All",
        },
    },
    "graph.me": {
        "app": set(),
        "delegated": {
            "User.Read",
            "User.ReadWrite",
            "User.ReadBasic.All",
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "Directory.AccessAsUser.All",
        },
    },
}


def cloud_of_resource(resource: str) -> tuple[str, str] | None:
    """(cloud key, resource kind) for a resource URI, or None when it is not Microsoft's."""
    r = resource.rstrip("/").lower()
    for cloud in CLOUDS.values():
        if r == cloud.graph_resource:
            return cloud.key, "graph"
        if r == cloud.exchange_resource:
            return cloud.key, "exchange"
    return None
