"""Deleting a connection, and what the customer still has to remove at Microsoft.

:func:`delete_connection` is the one operation behind the connection page's *Delete* button
(and, later, the host API): the lifecycle's ``deleted`` transition destroys every secret we
hold for the connection in one transaction. Nothing we do here reaches Microsoft: the
customer's app registration, its certificates and the consent given to our application stay
in the tenant until an administrator removes them, so :func:`microsoft_cleanup` lists those
steps with the connection's cloud's own deep links.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from portal import storage
from portal.config import parse_list
from portal.connections import lifecycle
from portal.entra.clouds import Cloud
from portal.services import find_cloud

log = logging.getLogger("portal.deletion")

# Where Microsoft documents each clean-up step (the deep links come from portal.entra.clouds):
# - certificates of an app registration (Certificates & secrets):
#   https://learn.microsoft.com/entra/identity-platform/how-to-add-credentials
# - deleting an app registration (Overview → Delete; restorable for 30 days):
#   https://learn.microsoft.com/entra/identity-platform/howto-remove-app
# - deleting an enterprise application, which removes the consent granted to it
#   (Enterprise applications → the app → Properties → Delete):
#   https://learn.microsoft.com/entra/identity/enterprise-apps/delete-application-portal
# - reviewing and revoking the permissions granted to an enterprise application:
#   https://learn.microsoft.com/entra/identity/enterprise-apps/manage-application-permissions


@dataclass(frozen=True)
class CleanupStep:
    """One thing to do at Microsoft: a title, how, and where (a link of the connection's cloud)."""

    title: str
    how: str
    link_text: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Cleanup:
    """What is left at Microsoft for a deleted connection (empty: nothing was set up there)."""

    cloud: Cloud | None
    tenant_id: str | None
    thumbprints: tuple[str, ...]
    steps: tuple[CleanupStep, ...]


def delete_connection(connection: storage.Connection, actor: int | None) -> storage.DeletionReceipt:
    """Delete ``connection`` (already access-checked by the caller) and destroy its secrets."""
    receipt = lifecycle.deleted(connection.id, actor=actor)
    log.info("connection %s deleted by user %s: %s", connection.id, actor, receipt.destroyed)
    return receipt


def microsoft_cleanup(
    connection: storage.Connection, sp_client_id: str | None, sp_clouds=()
) -> Cleanup:
    """The steps that remove the connection's traces in the customer's tenant."""
    certificates = storage.list_certificates(connection.id)
    thumbprints = tuple(c.thumbprint_sha1 for c in certificates)
    if connection.kind == "customer_owned":
        cloud = find_cloud(connection.cloud)
        steps = _customer_owned_steps(cloud, connection.client_id, thumbprints)
    else:
        # A delegated connection without a cloud was linked in the app's first cloud.
        keys = parse_list(sp_clouds)
        cloud = find_cloud(connection.cloud or (keys[0] if keys else None))
        steps = _service_provider_steps(cloud, connection, sp_client_id)
    return Cleanup(cloud, connection.tenant_id, thumbprints, steps)


def _customer_owned_steps(
    cloud: Cloud | None, client_id: str | None, thumbprints: tuple[str, ...]
) -> tuple[CleanupStep, ...]:
    if not thumbprints:
        return ()  # no certificate was ever issued: nothing of ours reached the tenant
    plural = "s" if len(thumbprints) > 1 else ""
    remove_certificates = CleanupStep(
        f"Remove our certificate{plural} from your app registration",
        "In the app registration, open Certificates & secrets → Certificates, select the "
        f"certificate{plural} with the thumbprint{plural} below and choose Delete.",
        "Open Certificates & secrets",
        cloud.link("certificates", client_id) if cloud else None,
    )
    delete_registration = CleanupStep(
        "Or delete the app registration itself",
        "If you created the app registration only for this connection, delete it instead: its "
        "Overview → Delete. This also removes its certificates, permissions and role "
        "assignments (Microsoft keeps a deleted registration restorable for 30 days).",
        "Open the app registration",
        cloud.link("overview", client_id) if cloud else None,
    )
    return remove_certificates, delete_registration


def _service_provider_steps(
    cloud: Cloud | None, connection: storage.Connection, sp_client_id: str | None
) -> tuple[CleanupStep, ...]:
    if not connection.consented_at:
        return ()  # consent was never given: our application has no access to revoke
    url = cloud.link("enterprise_app", sp_client_id) if cloud and sp_client_id else None
    return (
        CleanupStep(
            "Remove our application's access to your tenant",
            "In Enterprise applications, open our application (its Application ID is below) → "
            "Properties → Delete. This removes the consent given to it and every permission it "
            "holds in your tenant. To keep the application but withdraw what it may do, open "
            "Permissions instead and revoke them.",
            "Open our enterprise application" if url else None,
            url,
        ),
    )
