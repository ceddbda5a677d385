"""Helpers to set tenants up in the simulator for portal.entra tests."""

from __future__ import annotations

from dataclasses import dataclass

from portal.entra.certificates import IssuedCertificate
from portal.entra.client import CertificateCredential

ALL_GRAPH = (
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
    "User.EnableDisableAccount.All",
)
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"


@dataclass
class Setup:
    """A tenant with a customer-owned app, as created in the simulator."""

    tenant_id: str
    client_id: str
    sp_id: str
    domain: str
    credential: CertificateCredential


def customer_owned(
    sim,
    cert: IssuedCertificate,
    *,
    cloud: str = "global",
    grants=ALL_GRAPH,
    roles=(USER_ADMIN,),
    exchange: bool = False,
    upload: bool = True,
    domain: str = "contoso.onmicrosoft.com",
) -> Setup:
    """Create tenant + app + certificate + grants + roles (all granted by default)."""
    tenant = sim.create_tenant(cloud=cloud, domains=[domain], display_name="Contoso Ltd")
    app = sim.create_app(tenant["id"], display_name="HR sync")
    if upload:
        sim.upload_certificate(tenant["id"], app["app_id"], cert.cert_pem)
    for permission in grants:
        sim.grant_app_role(tenant["id"], app["app_id"], permission)
    for role in roles:
        sim.assign_directory_role(tenant["id"], app["app_id"], role)
    if exchange:
        sim.grant_app_role(tenant["id"], app["app_id"], "Exchange.ManageAsApp", resource="exchange")
        sim.assign_directory_role(tenant["id"], app["app_id"], EXCHANGE_ADMIN)
    return Setup(
        tenant["id"],
        app["app_id"],
        app["sp_id"],
        domain,
        CertificateCredential(cert.private_key_pem, cert.cert_pem),
    )
