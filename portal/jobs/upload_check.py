""" "I have uploaded the certificate": does Microsoft accept it for this application?

Microsoft issues an app-only token only to a client whose assertion is signed with the private
key of a certificate registered on the application (client credentials with a certificate:
https://learn.microsoft.com/entra/identity-platform/certificate-credentials; otherwise
AADSTS700027, reference/entra.md §6). So one token request signed with the connection's
certificate proves the upload, before any permission exists: a token can be issued with no
``roles`` claim at all (reference/entra.md §3a). Nothing is recorded on the connection (no
check, no history): the result is the job's, and the wizard moves on to step 5 when the
certificate is accepted, or when Microsoft could not answer (Link Account checks it again).
"""

from __future__ import annotations

from typing import Any

from portal import storage
from portal.connections import setup_steps
from portal.connections.verification import signing_key
from portal.entra.client import CertificateCredential, EntraClient
from portal.entra.clouds import http_session
from portal.entra.report import Progress, StepTimer, token_outcome
from portal.entra.tenant import TenantInputError, discover_tenant, parse_tenant_input
from portal.services import caches, cloud_table, find_cloud

NOT_READY = "Enter the cloud, the tenant and the client ID first (steps 1 and 2)."
NO_CERTIFICATE = "Create the certificate first, then upload it to your application."
UNREADABLE = (
    "We can't read the private key of this connection's certificate. Create a new "
    "certificate, upload it to your application, then continue."
)


def verify_upload(connection_id: str, progress: Progress | None = None) -> dict[str, Any]:
    """Ask Microsoft for a token signed with the connection's certificate (``ok``, or a
    ``message`` and the ``problem``; ``transient`` when Microsoft did not answer)."""
    item = storage.get_connection_or_raise(connection_id)
    cloud = find_cloud(item.cloud)
    tenant = item.tenant_id or item.tenant_input
    if cloud is None or not tenant or not item.client_id:
        return {"ok": False, "message": NOT_READY}
    certificate = storage.active_certificate(item.id)
    if certificate is None:
        return {"ok": False, "message": NO_CERTIFICATE}
    key = signing_key(certificate, UNREADABLE)
    if isinstance(key, dict):
        return key
    try:
        ref = parse_tenant_input(tenant)
    except TenantInputError as exc:
        return {"ok": False, "message": str(exc)}
    timer = StepTimer(progress)
    table = cloud_table()
    with http_session(table, cloud) as session:
        found = timer.run(
            "discovery",
            lambda: discover_tenant(
                table, cloud.key, ref, session=session, cache=caches().discovery
            ),
            lambda d: d.outcome,
        )
        if not found.ok or not found.tenant_id:
            transient = found.problem is not None and found.problem.retryable
            return {"ok": False, "transient": transient, "message": found.message}
        client = EntraClient(
            cloud,
            found.tenant_id,
            item.client_id,
            CertificateCredential(key, certificate.cert_pem),
            session=session,
        )
        token = timer.run(
            "token", lambda: client.acquire_app_token(cloud.graph_scope()), token_outcome
        )
    result = _result(token, certificate.thumbprint_sha1)
    if result["ok"] or result.get("transient"):
        storage.save_draft(item.id, {}, wizard_step=setup_steps.advance(item, 5))
    return result


def _result(token, thumbprint: str) -> dict[str, Any]:
    if token.ok:
        return {"ok": True, "thumbprint": thumbprint}
    found = token.problem
    assert found is not None
    return {
        "ok": False,
        "transient": found.retryable,
        "message": f"{found.title}. {found.message} {found.fix}",
        "problem": {"title": found.title, "code": found.code, "error": found.error},
        "thumbprint": thumbprint,
    }
