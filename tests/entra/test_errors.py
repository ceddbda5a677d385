"""Every AADSTS code of the reference table maps to a category, a plain message and a fix."""

from __future__ import annotations

import pytest
import requests
from msal.exceptions import MsalServiceError

from portal.entra.clouds import HostNotAllowedError, load_cloud_table
from portal.entra.errors import AADSTS, classify, classify_redirect_error

CLOUD = load_cloud_table(None).get("usgov-l4")
APP = "11111111-2222-3333-4444-555555555555"

# (code, typical `error`, expected category, expected link kind) — reference/entra.md §6.
TABLE = [
    (90002, "invalid_tenant", "wrong_input", None),
    (90019, "invalid_request", "our_configuration", None),
    (90033, "temporarily_unavailable", "transient", None),
    (700016, "unauthorized_client", "wrong_input", "app_registrations"),
    (7000215, "invalid_client", "wrong_input", "certificates"),
    (7000222, "invalid_client", "customer_action", "certificates"),
    (700027, "invalid_client", "customer_action", "certificates"),
    (700024, "invalid_client", "our_configuration", None),
    (7000112, "unauthorized_client", "customer_action", "enterprise_app"),
    (65001, "invalid_grant", "customer_action", "api_permissions"),
    (65004, "access_denied", "customer_action", None),
    (500011, "invalid_resource", "customer_action", None),
    (50020, "invalid_request", "wrong_input", None),
    (50011, "invalid_request", "our_configuration", None),
    (50076, "interaction_required", "customer_action", None),
    (50079, "interaction_required", "customer_action", None),
    (53003, "access_denied", "customer_action", "enterprise_app"),
    (70011, "invalid_scope", "our_configuration", None),
    (1002012, "invalid_scope", "our_configuration", None),
    (650053, "invalid_client", "our_configuration", None),
    (700082, "invalid_grant", "customer_action", None),
    (50173, "invalid_grant", "customer_action", None),
    (90072, "invalid_request", "wrong_input", None),
    (90038, "invalid_request", "wrong_input", None),
    (900023, "invalid_request", "wrong_input", None),
    (50194, "invalid_request", "our_configuration", None),
    (7000218, "invalid_client", "our_configuration", None),
    (700011, "unauthorized_client", "wrong_input", "app_registrations"),
    (70001, "unauthorized_client", "customer_action", "enterprise_app"),
    (90094, "invalid_grant", "customer_action", None),
    (90095, "consent_required", "customer_action", None),
]


def _body(code, error, description="AADSTS00000: anything"):
    return {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": "2026-11-26 12:00:00Z",
        "trace_id": "trace-1",
        "correlation_id": "corr-1",
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def test_table_covers_every_code():
    assert {row[0] for row in TABLE} == set(AADSTS)


@pytest.mark.parametrize(("code", "error", "category", "link"), TABLE)
def test_every_code(code, error, category, link):
    found = classify(_body(code, error))
    assert (found.category, found.code, found.error, found.link) == (category, code, error, link)
    assert found.title and found.message and found.fix
    assert "AADSTS" not in found.message + found.fix  # plain words, not codes
    assert found.raw.error_codes == (code,)
    assert (found.raw.trace_id, found.raw.correlation_id) == ("trace-1", "corr-1")
    assert found.raw.timestamp == "2026-11-26 12:00:00Z"
    url = found.fix_url(CLOUD, APP)
    assert url is None if link is None else url.startswith("https://portal.azure.us/")


def test_decides_on_codes_never_on_description():
    misleading = _body(700027, "invalid_client", "AADSTS90002: Tenant not found")
    assert classify(misleading).code == 700027
    assert classify(_body(700027, "invalid_client", "")).title == classify(misleading).title


@pytest.mark.parametrize(
    ("error", "category"),
    [
        ("invalid_client", "customer_action"),
        ("invalid_grant", "customer_action"),
        ("temporarily_unavailable", "transient"),
        ("server_error", "transient"),
        ("unauthorized_client", "wrong_input"),
        ("invalid_scope", "our_configuration"),
        ("something_new", "unknown"),
    ],
)
def test_without_known_code_the_error_value_decides(error, category):
    found = classify({"error": error, "error_codes": [12345678], "trace_id": "t"})
    assert found.category == category
    assert found.raw.error_codes == (12345678,) and found.raw.trace_id == "t"


def test_unknown_keeps_raw_codes():
    found = classify({"error": "weird", "error_codes": [4242, "x", 17]})
    assert found.category == "unknown" and found.code == 4242
    assert found.raw.error_codes == (4242, 17)
    assert "support" in found.fix


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (requests.ConnectionError("down"), "transient"),
        (requests.ReadTimeout("slow"), "transient"),
        (requests.exceptions.SSLError("bad ca"), "our_configuration"),
        (HostNotAllowedError("no"), "our_configuration"),
        (MsalServiceError("HTTP Error: 500", error=None, error_description=None), "transient"),
        (ValueError("Unable to get authority configuration"), "wrong_input"),
        (RuntimeError("?"), "unknown"),
    ],
)
def test_exceptions(exc, category):
    assert classify(exc).category == category


def test_value_error_with_network_cause_is_transient():
    try:
        try:
            raise requests.ConnectionError("down")
        except requests.ConnectionError as inner:
            raise ValueError("Unable to get authority configuration") from inner
    except ValueError as outer:
        assert classify(outer).category == "transient"


def test_http_response_with_error_body():
    response = requests.Response()
    response.status_code = 400
    response._content = b'{"error":"invalid_tenant","error_codes":[90002],"trace_id":"x"}'
    found = classify(response)
    assert found.code == 90002 and found.raw.http_status == 400
    response.status_code, response._content = 503, b"<html>busy</html>"
    assert classify(response).category == "transient"


def test_authorize_redirect_error_takes_code_from_error_uri():
    found = classify(
        {
            "error": "access_denied",
            "error_description": "whatever text",
            "error_uri": "https://login.microsoftonline.com/error?code=65004",
        }
    )
    assert found.code == 65004 and found.title == "Consent was declined"
    assert classify({"error": "access_denied", "error_uri": "not a url?code=x"}).code is None


@pytest.mark.parametrize(
    ("code", "error", "ours"),
    [
        (700027, "invalid_client", True),
        (7000222, "invalid_client", True),
        (700024, "invalid_client", True),
        (700016, "unauthorized_client", False),  # not consented in their tenant: theirs
        (50173, "invalid_grant", False),
        (None, "invalid_client", True),
    ],
)
def test_refused_credential_of_our_own_app_is_our_configuration(code, error, ours):
    body = {"error": error, "error_codes": [code] if code else [], "trace_id": "t"}
    found = classify(body).as_ours()
    assert (found.category == "our_configuration") is ours
    assert found.raw.trace_id == "t"


# --- errors answered at our redirect URI (sign-in and admin consent) ---------------------------

TRAILER = "\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2026-11-26 12:00:00Z"


@pytest.mark.parametrize(
    ("error", "description", "code", "title", "declined"),
    [
        # Microsoft's own answers (as the simulator sends them).
        (
            "access_denied",
            "AADSTS65004: User declined to consent to access the app." + TRAILER,
            65004,
            "Consent was declined",
            True,
        ),
        (
            "consent_required",
            "AADSTS65004: User declined to consent to access the app.",
            65004,
            "Consent was declined",
            True,
        ),  # v2 admin consent: declined, despite `error`
        (
            "consent_required",
            "AADSTS90094: The grant requires admin permission.",
            90094,
            "An administrator must approve",
            False,
        ),
        (
            "consent_required",
            "AADSTS90095: Admin consent is required.",
            90095,
            "An administrator must approve",
            False,
        ),
        (
            "consent_required",
            "AADSTS65001: The user or administrator has not consented.",
            65001,
            "Consent is required",
            False,
        ),
        (
            "invalid_request",
            "AADSTS50020: User account from identity provider does not exist.",
            50020,
            "Account from another organization",
            False,
        ),
        # "65004" in the text, but the error's code is another one (or none): not a decline.
        (
            "invalid_request",
            "AADSTS50020: User account 65004@contoso.com does not exist.",
            50020,
            "Account from another organization",
            False,
        ),
        (
            "server_error",
            "Retry later (see AADSTS65004: earlier).",
            None,
            "Microsoft is busy",
            False,
        ),
        (
            "invalid_request",
            "Request id 65004 was malformed.",
            None,
            "Sign-in request refused",
            False,
        ),
        (
            "invalid_request",
            " AADSTS65004 was not the code: AADSTS90014: missing parameter.",
            None,
            "Sign-in request refused",
            False,
        ),
        # Refused by a policy: access_denied, but nobody declined anything.
        (
            "access_denied",
            "AADSTS53003: Access has been blocked by Conditional Access policies.",
            53003,
            "Blocked by Conditional Access",
            False,
        ),
        ("access_denied", "AADSTS99999999: Something new.", 99999999, "Access denied", False),
        # No code: the OAuth `error` value decides (RFC 6749 §4.1.2.1, OpenID Connect §3.1.2.6).
        ("access_denied", "", None, "Consent was declined", True),
        ("access_denied", "<script>alert(1)</script>", None, "Consent was declined", True),
        ("permission_denied", "The admin canceled the request", None, "Consent was declined", True),
        ("consent_required", "", None, "Consent is required", False),
        ("interaction_required", "", None, "Another sign-in step is needed", False),
        ("login_required", "", None, "Sign in again", False),
        ("invalid_request", "", None, "Sign-in request refused", False),
        ("unsupported_response_type", "", None, "Sign-in request refused", False),
        ("temporarily_unavailable", "", None, "Microsoft is busy", False),
        ("invalid_scope", "", None, "Invalid permission request", False),
        ("something_new", "", None, "Microsoft returned an error", False),
    ],
)
def test_redirect_error(error, description, code, title, declined):
    found = classify_redirect_error(error, description)
    assert (found.code, found.title, found.declined) == (code, title, declined)
    assert found.error == error
    assert found.raw.error_codes == ((code,) if code is not None else ())
    assert found.message and found.fix
    assert "AADSTS" not in found.message + found.fix  # plain words, not codes


@pytest.mark.parametrize(
    ("error", "category"),
    [
        ("access_denied", "customer_action"),
        ("consent_required", "customer_action"),
        ("interaction_required", "customer_action"),
        ("invalid_request", "our_configuration"),
        ("server_error", "transient"),
        ("something_new", "unknown"),
    ],
)
def test_redirect_error_categories(error, category):
    assert classify_redirect_error(error, "").category == category


def test_redirect_error_code_from_error_uri_when_the_description_has_none():
    uri = "https://login.microsoftonline.com/error?code=90094"
    found = classify_redirect_error("consent_required", "see the page", uri)
    assert found.code == 90094 and not found.declined
    # The description's leading code is the error's own; error_uri only fills in.
    assert classify_redirect_error("access_denied", "AADSTS65004: declined", uri).code == 65004
    assert classify_redirect_error("access_denied", "", "not a url?code=x").code is None


def test_token_errors_with_the_decline_code_are_declined_too():
    assert classify(_body(65004, "access_denied")).declined
    assert not classify(_body(65001, "invalid_grant")).declined
    assert not classify({"error": "access_denied"}).declined  # the token endpoint's access_denied
