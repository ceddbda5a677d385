"""Everything the portal knows about Microsoft Entra ID and Graph; no Flask in here.

Blueprints call these with plain values and get dataclasses back; they never build Microsoft URLs.
"""

from .certificates import (
    CertificateInfo,
    IssuedCertificate,
    export_certificate,
    issue_certificate,
    load_certificate_info,
)
from .client import (
    DELEGATED_SCOPE_NAMES,
    AuthFlow,
    CertificateCredential,
    Credential,
    EntraClient,
    SecretCredential,
    TokenResult,
)
from .clouds import (
    BUILTIN_CLOUDS,
    Cloud,
    CloudConfigError,
    CloudTable,
    HostNotAllowedError,
    http_session,
    load_cloud_table,
)
from .errors import EntraProblem, SupportCodes, classify, classify_redirect_error
from .graph import GraphClient, GraphError
from .permissions import ChecklistItem, Observed, checklist, required_items
from .tenant import (
    Discovery,
    DiscoveryCache,
    TenantInputError,
    TenantRef,
    discover_tenant,
    parse_tenant_input,
)
from .verify import Step, TenantFacts, VerificationReport, verify_customer_owned

__all__ = [
    "BUILTIN_CLOUDS",
    "DELEGATED_SCOPE_NAMES",
    "AuthFlow",
    "CertificateCredential",
    "CertificateInfo",
    "ChecklistItem",
    "Cloud",
    "CloudConfigError",
    "CloudTable",
    "Credential",
    "Discovery",
    "DiscoveryCache",
    "EntraClient",
    "EntraProblem",
    "GraphClient",
    "GraphError",
    "HostNotAllowedError",
    "IssuedCertificate",
    "Observed",
    "SecretCredential",
    "Step",
    "SupportCodes",
    "TenantFacts",
    "TenantInputError",
    "TenantRef",
    "TokenResult",
    "VerificationReport",
    "checklist",
    "classify",
    "classify_redirect_error",
    "discover_tenant",
    "export_certificate",
    "http_session",
    "issue_certificate",
    "load_certificate_info",
    "load_cloud_table",
    "parse_tenant_input",
    "required_items",
    "verify_customer_owned",
]
