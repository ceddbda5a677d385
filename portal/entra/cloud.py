"""One cloud as a value: its hosts and resources, the URLs built from them, portal deep links.

The four built-in clouds are data in `national_clouds.py`; extra clouds come from the
`PORTAL_CLOUDS_FILE` (`clouds.py`). Nothing here calls the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

__all__ = ["Cloud"]

# Azure portal blades (the portal's own deep-link paths; Microsoft documents no contract for them,
# but they have been stable for years and a wrong blade still lands in the right portal).
_APP_BLADE = "#view/Microsoft_AAD_RegisteredApps/ApplicationMenuBlade/~/{blade}/appId/{app_id}"
_ROLES_BLADE = "#view/Microsoft_AAD_IAM/RolesManagementMenuBlade/~/AllRoles"
_ENTERPRISE_BLADE = "#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/Overview/appId/{app_id}"
_APP_LIST_BLADE = "#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade"


@dataclass(frozen=True)
class Cloud:
    """One national cloud (or a simulator standing in for one): hosts, resources, portal links."""

    key: str
    label: str
    explanation: str
    login_base: str
    graph_base: str
    graph_resource: str
    exchange_resource: str
    portal_url: str
    entra_url: str
    region_scopes: tuple[str, ...] = ()
    region_sub_scope: str | None = None
    ca_bundle: str | None = None
    mirrors: str | None = None
    short_label: str = ""
    builtin: bool = field(default=False, compare=False)
    #: Written by the Entra simulator into its clouds file, so production can refuse it.
    simulator: bool = field(default=False, compare=False)

    @property
    def name(self) -> str:
        """Short name used inside sentences ("US Gov L4")."""
        return self.short_label or self.label

    @property
    def family(self) -> str:
        """Clouds only probe clouds of their own family: built-ins, or those from the file."""
        return "builtin" if self.builtin else "extra"

    @property
    def mirrored_key(self) -> str:
        """The built-in cloud this one behaves like (itself for a built-in)."""
        return self.mirrors or self.key

    def authority(self, tenant: str) -> str:
        """Tenant-specific authority URL; `tenant` comes from `parse_tenant_input` or is a GUID."""
        return f"{self.login_base}/{_segment(tenant)}"

    def graph_scope(self) -> str:
        """App-only scope for this cloud's Graph (client credentials need `/.default`)."""
        # https://learn.microsoft.com/entra/identity-platform/scopes-oidc#the-default-scope
        return f"{self.graph_resource}/.default"

    def exchange_scope(self) -> str:
        """App-only scope for this cloud's Exchange Online."""
        return f"{self.exchange_resource}/.default"

    def delegated_scope(self, name: str) -> str:
        """Fully qualified delegated scope (a short name would mean the global Graph)."""
        return f"{self.graph_resource}/{name}"

    def token_endpoint(self, tenant: str) -> str:
        """The v2 token endpoint for a tenant."""
        return f"{self.authority(tenant)}/oauth2/v2.0/token"

    def discovery_url(self, tenant: str) -> str:
        """OpenID discovery document of a tenant in this cloud."""
        # https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc
        return f"{self.authority(tenant)}/v2.0/.well-known/openid-configuration"

    def graph_url(self, path: str) -> str:
        """Absolute Graph v1.0 URL for a path such as `/organization`."""
        return f"{self.graph_base}/v1.0/{path.lstrip('/')}"

    def admin_consent_url(self, tenant: str, client_id: str, redirect_uri: str, state: str) -> str:
        """v2 admin-consent URL asking for every application permission on the registration."""
        # https://learn.microsoft.com/entra/identity-platform/v2-admin-consent : app permissions
        # need `{resource}/.default`; never use `common` here.
        query = urlencode(
            {
                "client_id": client_id,
                "scope": self.graph_scope(),
                "redirect_uri": redirect_uri,
                "state": state,
            }
        )
        return f"{self.authority(tenant)}/v2.0/adminconsent?{query}"

    def _blade(self, fragment: str) -> str:
        # The Azure portal routes by fragment from its root; a portal URL with its own path (the
        # simulator's admin page) keeps that path, so the link still opens a page that exists.
        if urlsplit(self.portal_url).path in ("", "/"):
            return f"{self.portal_url.rstrip('/')}/{fragment}"
        return f"{self.portal_url}{fragment}"

    def app_overview_url(self, client_id: str) -> str:
        """App registration → Overview in this cloud's Azure portal."""
        return self._blade(_APP_BLADE.format(blade="Overview", app_id=_segment(client_id)))

    def app_certificates_url(self, client_id: str) -> str:
        """App registration → Certificates & secrets."""
        return self._blade(_APP_BLADE.format(blade="Credentials", app_id=_segment(client_id)))

    def app_permissions_url(self, client_id: str) -> str:
        """App registration → API permissions (where admin consent is granted)."""
        return self._blade(_APP_BLADE.format(blade="CallAnAPI", app_id=_segment(client_id)))

    def roles_url(self) -> str:
        """Entra ID → Roles and administrators."""
        return self._blade(_ROLES_BLADE)

    def enterprise_app_url(self, client_id: str) -> str:
        """Enterprise application (service principal) → Overview."""
        return self._blade(_ENTERPRISE_BLADE.format(app_id=_segment(client_id)))

    def app_registrations_url(self) -> str:
        """App registrations list (where a new registration starts)."""
        return self._blade(_APP_LIST_BLADE)

    def link(self, kind: str | None, client_id: str | None = None) -> str | None:
        """Deep link by kind name (`overview`, `certificates`, `api_permissions`, `roles`, ...)."""
        if kind is None:
            return None
        if kind == "roles":
            return self.roles_url()
        if kind == "app_registrations":
            return self.app_registrations_url()
        if kind == "portal":
            return self.portal_url
        if not client_id:
            return self.app_registrations_url()
        builders = {
            "overview": self.app_overview_url,
            "certificates": self.app_certificates_url,
            "api_permissions": self.app_permissions_url,
            "enterprise_app": self.enterprise_app_url,
        }
        builder = builders.get(kind)
        return builder(client_id) if builder else self.portal_url


def _segment(value: str) -> str:
    # Values are validated upstream; quoting is a second fence so nothing can add a path or host.
    return quote(value, safe="")
