"""What an OAuth `error` value means when Microsoft's answer carries no AADSTS code we know.

`BY_ERROR` is for any answer (the token endpoint's above all); `AT_REDIRECT` is for an error
answered at our redirect URI, where the same value can mean something else.
"""

from __future__ import annotations

from .aadsts import AADSTS, APP_NOT_FOUND
from .problems import Guidance

__all__ = ["AT_REDIRECT", "BY_ERROR"]

# When there is no known code, the OAuth `error` value still tells us who must act (RFC 6749 §5.2).
BY_ERROR: dict[str, Guidance] = {
    "invalid_client": Guidance(
        "customer_action",
        "Credential rejected",
        "Microsoft rejected the application's credential.",
        "Check that our certificate is uploaded to this app registration.",
        "certificates",
    ),
    "unauthorized_client": APP_NOT_FOUND,
    "invalid_tenant": AADSTS[90002],
    "invalid_grant": Guidance(
        "customer_action",
        "Sign in again",
        "Microsoft no longer accepts the stored sign-in.",
        "Sign in again to reconnect.",
        None,
    ),
    "interaction_required": Guidance(
        "customer_action",
        "Sign in again",
        "Microsoft needs you to sign in interactively.",
        "Sign in again.",
        None,
    ),
    "consent_required": AADSTS[65001],
    "access_denied": Guidance(
        "customer_action",
        "Access denied",
        "Microsoft denied the request.",
        "Ask an administrator of the tenant to review it.",
        None,
    ),
    "invalid_scope": AADSTS[70011],
    "invalid_resource": AADSTS[500011],
    "temporarily_unavailable": Guidance(
        "transient",
        "Microsoft is busy",
        "Microsoft's sign-in service is temporarily unavailable.",
        "Wait a minute and check again.",
        None,
    ),
    "server_error": Guidance(
        "transient",
        "Microsoft is busy",
        "Microsoft's sign-in service had an internal error.",
        "Wait a minute and check again.",
        None,
    ),
}

# An error answered at our redirect URI (the authorize and admin consent endpoints) without a
# code we know: its `error` value says what happened. Values: RFC 6749 §4.1.2.1
# (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1), OpenID Connect Core §3.1.2.6
# (https://openid.net/specs/openid-connect-core-1_0.html#AuthError) and Microsoft's table of
# authorization endpoint errors
# (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#error-codes-for-authorization-endpoint-errors).
# Any other value falls back to BY_ERROR.
AT_REDIRECT: dict[str, Guidance] = {
    # "Resource owner denied consent" (Microsoft's table).
    "access_denied": AADSTS[65004],
    # The v1 admin consent endpoint's answer when the admin cancels
    # (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
    "permission_denied": AADSTS[65004],
    "consent_required": AADSTS[65001],
    "interaction_required": Guidance(
        "customer_action",
        "Another sign-in step is needed",
        "Microsoft needs you to complete another step of the sign-in (for example multi-factor "
        "authentication).",
        "Start again and complete every step Microsoft asks for.",
        None,
    ),
    "login_required": Guidance(
        "customer_action",
        "Sign in again",
        "Microsoft needs you to sign in.",
        "Start again and sign in with an administrator account of your organization.",
        None,
    ),
    "invalid_request": Guidance(
        "our_configuration",
        "Sign-in request refused",
        "Microsoft refused our sign-in request as malformed.",
        "Nothing for you to change: please contact support.",
        None,
    ),
    "unsupported_response_type": Guidance(
        "our_configuration",
        "Sign-in request refused",
        "Microsoft doesn't accept the kind of answer our sign-in request asked for.",
        "Nothing for you to change: please contact support.",
        None,
    ),
}
