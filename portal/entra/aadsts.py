"""What each AADSTS code means for the user: who must act, what happened, what to do, where.

Codes: https://learn.microsoft.com/entra/identity-platform/reference-error-codes — Microsoft asks
apps to branch on `error` and the numeric codes, never on `error_description` text, so we do.
"""

from __future__ import annotations

from .problems import Guidance

__all__ = ["AADSTS", "APP_NOT_FOUND"]

APP_NOT_FOUND = Guidance(
    "wrong_input",
    "Application not found in this tenant",
    "Microsoft doesn't know an application with this client ID in this tenant.",
    "Check the Application (client) ID and the Directory (tenant) ID on the application's "
    "Overview page, and that you chose the right cloud.",
    "app_registrations",
)
_APP_DISABLED = Guidance(
    "customer_action",
    "The application is disabled",
    "The application's enterprise application (service principal) is disabled in your tenant.",
    "Open the enterprise application, go to Properties and set 'Enabled for users to sign in' "
    "to Yes.",
    "enterprise_app",
)
_ADMIN_MUST_APPROVE = Guidance(
    "customer_action",
    "An administrator must approve",
    "Your organization lets only administrators grant these permissions.",
    "Ask a Global Administrator or Privileged Role Administrator of your organization to sign in "
    "to this portal and start again. If your organization uses admin consent requests, they can "
    "also approve the request in the Microsoft Entra admin center under Enterprise applications "
    "> Admin consent requests; then start again.",
    None,
)

# Every code of reference/entra.md §6 (plus 90094 and 90095 of admin-approval workflows).
AADSTS: dict[int, Guidance] = {
    90002: Guidance(
        "wrong_input",
        "Tenant not found",
        "Microsoft can't find this tenant in the cloud you chose.",
        "Check the tenant ID or domain, and the cloud selection.",
        None,
    ),
    90033: Guidance(
        "transient",
        "Microsoft is busy",
        "Microsoft's sign-in service had a temporary problem.",
        "Wait a minute and check again.",
        None,
    ),
    90019: Guidance(
        "our_configuration",
        "Tenant missing from the request",
        "We didn't tell Microsoft which tenant to use.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    # The authorize endpoint names a scope the resource doesn't expose (e.g. a newly required
    # delegated scope that does not exist in this cloud). Decided on the code: the `error` that
    # comes with it (invalid_client) would otherwise read as a refused credential.
    650053: Guidance(
        "our_configuration",
        "Permission unknown to Microsoft",
        "We asked for a permission that Microsoft doesn't offer for this service in your cloud.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    700016: APP_NOT_FOUND,
    700011: APP_NOT_FOUND,
    7000215: Guidance(
        "wrong_input",
        "The client secret is wrong",
        "Microsoft rejected the client secret.",
        "Paste the secret's Value, not its Secret ID (the Value is shown only once, when you "
        "create the secret).",
        "certificates",
    ),
    7000222: Guidance(
        "customer_action",
        "The client secret has expired",
        "The client secret of the application has expired.",
        "Create a new client secret, or better, upload our certificate.",
        "certificates",
    ),
    700027: Guidance(
        "customer_action",
        "Our certificate isn't on the application",
        "Microsoft doesn't accept our certificate for this application: it isn't uploaded to this "
        "app registration, or a different one is.",
        "Download the certificate from this page and upload it under Certificates & secrets → "
        "Certificates → Upload certificate.",
        "certificates",
    ),
    700024: Guidance(
        "our_configuration",
        "Clock difference",
        "Microsoft says our sign-in request is outside its valid time range.",
        "Nothing for you to change: our server clock needs fixing. Please contact support.",
        None,
    ),
    7000112: _APP_DISABLED,
    70001: _APP_DISABLED,
    65001: Guidance(
        "customer_action",
        "Consent is required",
        "The permissions have not been granted for your organization yet.",
        "An administrator has to grant them: start again, sign in with an administrator account "
        "and accept on Microsoft's consent page (or select 'Grant admin consent' in API "
        "permissions).",
        "api_permissions",
    ),
    65004: Guidance(
        "customer_action",
        "Consent was declined",
        "The permissions were not accepted on Microsoft's consent page, so nothing was granted.",
        "When you are ready, start again and choose Accept on Microsoft's consent page.",
        None,
        declined=True,
    ),
    90094: _ADMIN_MUST_APPROVE,
    # With the admin consent workflow on, the user may send a consent request for review.
    90095: _ADMIN_MUST_APPROVE,
    500011: Guidance(
        "customer_action",
        "Service not available in the tenant",
        "The Microsoft service we need (for example Exchange Online) isn't set up in this tenant.",
        "Check that the tenant has the service (licences) or turn Exchange off for this "
        "connection.",
        None,
    ),
    50020: Guidance(
        "wrong_input",
        "Account from another organization",
        "The account you signed in with does not belong to the organization you are connecting "
        "(it may be a personal account or a guest).",
        "Start again and choose 'Use another account' on Microsoft's page to sign in with an "
        "administrator account of your own organization.",
        None,
    ),
    50011: Guidance(
        "our_configuration",
        "Reply address mismatch",
        "Microsoft doesn't accept the address it should return you to.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    50076: Guidance(
        "customer_action",
        "Multi-factor authentication required",
        "Your organization requires multi-factor authentication for this sign-in.",
        "Sign in again and complete the multi-factor prompt.",
        None,
    ),
    50079: Guidance(
        "customer_action",
        "Security info registration required",
        "Your account has to register security information before signing in.",
        "Register your security info (for example the Authenticator app), then sign in again.",
        None,
    ),
    53003: Guidance(
        "customer_action",
        "Blocked by Conditional Access",
        "A Conditional Access policy in your tenant blocked the sign-in.",
        "An administrator should review the Conditional Access policies (including policies for "
        "workload identities) for this application.",
        "enterprise_app",
    ),
    70011: Guidance(
        "our_configuration",
        "Invalid permission request",
        "We asked Microsoft for permissions in a form it doesn't accept.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    1002012: Guidance(
        "our_configuration",
        "Invalid permission request",
        "We asked for permissions of a resource Microsoft doesn't accept here (often a "
        "different cloud's resource).",
        "Check the cloud selection; if it is right, please contact support.",
        None,
    ),
    700082: Guidance(
        "customer_action",
        "Sign-in expired",
        "The sign-in wasn't used for too long and has expired.",
        "Sign in again to reconnect.",
        None,
    ),
    50173: Guidance(
        "customer_action",
        "Sign-in was revoked",
        "The sign-in was revoked (for example after a password reset).",
        "Sign in again to reconnect.",
        None,
    ),
    90072: Guidance(
        "wrong_input",
        "Account from another tenant",
        "The account you signed in with isn't part of this tenant.",
        "Sign in with an administrator account of the tenant you are connecting.",
        None,
    ),
    90038: Guidance(
        "wrong_input",
        "Tenant is in another cloud",
        "This tenant belongs to a different national cloud.",
        "Choose the cloud your tenant lives in.",
        None,
    ),
    900023: Guidance(
        "wrong_input",
        "Tenant isn't valid",
        "Microsoft says the tenant is neither a valid ID nor a domain name.",
        "Enter the Directory (tenant) ID from the application's Overview page.",
        None,
    ),
    50194: Guidance(
        "our_configuration",
        "Tenant-specific sign-in needed",
        "The application is single-tenant and must be used with its own tenant.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    7000218: Guidance(
        "our_configuration",
        "No credential sent",
        "We sent no certificate or secret to Microsoft.",
        "Nothing for you to change: please contact support.",
        None,
    ),
}
