"""The four built-in national clouds as data.

Endpoints per cloud: https://learn.microsoft.com/graph/deployments and
https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud .
"""

from __future__ import annotations

from .cloud import Cloud

__all__ = ["BUILTIN_CLOUDS"]

BUILTIN_CLOUDS: tuple[Cloud, ...] = (
    Cloud(
        key="global",
        label="Microsoft Entra ID (global service)",
        short_label="Global",
        explanation='The worldwide commercial cloud (also US Government GCC "moderate").',
        login_base="https://login.microsoftonline.com",
        graph_base="https://graph.microsoft.com",
        graph_resource="https://graph.microsoft.com",
        exchange_resource="https://outlook.office365.com",
        portal_url="https://portal.azure.com",
        entra_url="https://entra.microsoft.com",
        builtin=True,
    ),
    Cloud(
        key="usgov-l4",
        label="Microsoft Graph for US Government L4",
        short_label="US Gov L4",
        explanation="US Government GCC High (Impact Level 4).",
        login_base="https://login.microsoftonline.us",
        graph_base="https://graph.microsoft.us",
        graph_resource="https://graph.microsoft.us",
        # Unverified by Microsoft docs (third-party tables only); see entra.md §11.
        exchange_resource="https://outlook.office365.us",
        portal_url="https://portal.azure.us",
        entra_url="https://entra.microsoft.us",
        # https://learn.microsoft.com/azure/azure-government/documentation-government-plan-identity
        region_scopes=("USG", "USGOV"),
        region_sub_scope="DODCON",
        builtin=True,
    ),
    Cloud(
        key="usgov-l5",
        label="Microsoft Graph for US Government L5 (DoD)",
        short_label="US Gov L5 (DoD)",
        explanation="US Department of Defense (Impact Level 5).",
        login_base="https://login.microsoftonline.us",
        graph_base="https://dod-graph.microsoft.us",
        graph_resource="https://dod-graph.microsoft.us",
        exchange_resource="https://outlook-dod.office365.us",
        portal_url="https://portal.azure.us",
        entra_url="https://entra.microsoft.us",
        region_scopes=("USG", "USGOV"),
        region_sub_scope="DOD",
        builtin=True,
    ),
    Cloud(
        key="china",
        label="Microsoft Entra China operated by 21Vianet",
        short_label="China (21Vianet)",
        explanation="The separate cloud in China run by a local partner.",
        # Own constant on purpose: msal 1.36 renamed AZURE_CHINA and has none for this host.
        login_base="https://login.partner.microsoftonline.cn",
        graph_base="https://microsoftgraph.chinacloudapi.cn",
        graph_resource="https://microsoftgraph.chinacloudapi.cn",
        exchange_resource="https://partner.outlook.cn",
        portal_url="https://portal.azure.cn",
        entra_url="https://entra.microsoft.cn",
        builtin=True,
    ),
)
