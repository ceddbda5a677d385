"""Tenant input parsing, including the property that no accepted input can move a URL elsewhere."""

from __future__ import annotations

import string
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.entra.clouds import HostNotAllowedError, http_session, load_cloud_table
from portal.entra.tenant import TenantInputError, TenantRef, identify_cloud, parse_tenant_input

GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TABLE = load_cloud_table(None)
SESSION = http_session(TABLE)


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        (GUID, "guid", GUID),
        (GUID.upper(), "guid", GUID),
        ("{" + GUID.upper() + "}", "guid", GUID),
        ("urn:uuid:" + GUID, "guid", GUID),
        ("URN:UUID:" + GUID.upper(), "guid", GUID),
        ("  " + GUID + "\n", "guid", GUID),
        ("contoso.onmicrosoft.com", "domain", "contoso.onmicrosoft.com"),
        ("Contoso.OnMicrosoft.COM", "domain", "contoso.onmicrosoft.com"),
        ("hr-sync.example.co.uk", "domain", "hr-sync.example.co.uk"),
        ("xn--bcher-kva.example", "domain", "xn--bcher-kva.example"),
        ("a.io", "domain", "a.io"),
        ("1password.com", "domain", "1password.com"),
    ],
)
def test_accepted(text, kind, value):
    assert parse_tenant_input(text) == TenantRef(kind, value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "common",
        "organizations",
        "consumers",
        "contoso",
        GUID.replace("-", ""),
        "{" + GUID,
        GUID + "}",
        "urn:uuid:{" + GUID + "}",
        "contoso.com.",
        ".contoso.com",
        "contoso..com",
        "-contoso.com",
        "contoso-.com",
        "contoso.c0m",
        "contoso.c",
        "contoso.xn--p1ai",
        "10.0.0.1",
        "127.0.0.1",
        "[::1]",
        "contoso.com:443",
        "contoso.com/evil",
        "contoso.com?x",
        "contoso.com#x",
        "user@contoso.com",
        "contoso%2ecom",
        "contoso.com\\evil",
        "con toso.com",
        "contoso.com\t.evil",
        "contoso\x00.com",
        "contoso\u3002com",
        "bücher.example",
        "contoso\uff0ecom",
        "a" * 64 + ".com",
        ".".join(["a" * 60] * 5) + ".com",
        "evil.example/" + GUID,
        "https://login.microsoftonline.com/" + GUID,
        "contoso_1.com",
        None,
    ],
)
def test_rejected(text):
    with pytest.raises(TenantInputError) as info:
        parse_tenant_input(text)  # type: ignore[arg-type]
    assert str(info.value)  # a plain message for the user


_DNSISH = st.text(alphabet=string.ascii_letters + string.digits + "-.", min_size=1, max_size=80)
_ANY = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=60
)
_TRICKY = st.lists(
    st.sampled_from(
        [
            "a",
            "b",
            "-",
            ".",
            "/",
            "?",
            "#",
            "@",
            "%",
            "\\",
            ":",
            " ",
            "\t",
            "\n",
            "\u3002",
            "\uff0e",
            "{",
            "}",
            "urn:uuid:",
            "com",
            "xn--",
            "0",
            "9",
            GUID,
        ]
    ),
    min_size=1,
    max_size=12,
).map("".join)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_DNSISH, _ANY, _TRICKY))
def test_no_accepted_input_changes_host_or_path(text):
    try:
        ref = parse_tenant_input(text)
    except TenantInputError:
        return
    assert ref.value == ref.value.lower() and ref.value.isascii()
    for cloud in TABLE.all():
        for url, suffix in (
            (cloud.discovery_url(ref.value), "/v2.0/.well-known/openid-configuration"),
            (cloud.authority(ref.value), ""),
            (cloud.token_endpoint(ref.value), "/oauth2/v2.0/token"),
        ):
            parts = urlsplit(url)
            assert (parts.scheme, parts.netloc) == ("https", urlsplit(cloud.login_base).netloc)
            assert parts.path == f"/{ref.value}{suffix}"
            assert not parts.query and not parts.fragment
            SESSION.check_url(url)  # allowed, so it is one of the table's hosts


_HOSTS = st.one_of(
    st.text(alphabet=string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=30),
    st.sampled_from(["127.0.0.1", "169.254.169.254", "[::1]", "localhost", "0", "0x7f.1"]),
    st.builds(
        lambda h: h + ".evil.example",
        st.sampled_from([urlsplit(c.login_base).hostname for c in TABLE.all()]),
    ),
)


@settings(max_examples=2000, deadline=None)
@given(
    scheme=st.sampled_from(["https", "http", "HTTPS", "ftp"]),
    host=_HOSTS,
    port=st.one_of(st.none(), st.integers(1, 65535)),
    junk=st.sampled_from(["", "user@", "user:pw@", "x\\@"]),
)
def test_allowlist_refuses_every_other_host(scheme, host, port, junk):
    url = f"{scheme}://{junk}{host}{'' if port is None else f':{port}'}/v1.0/x"
    origin = (scheme.lower(), host.lower(), port or (443 if scheme.lower() == "https" else 80))
    if origin in TABLE.allowed_hosts() and not junk:
        SESSION.check_url(url)
    else:
        with pytest.raises(HostNotAllowedError):
            SESSION.check_url(url)


def test_identify_cloud_by_markers():
    g, l4, l5, cn = (TABLE.get(k) for k in ("global", "usgov-l4", "usgov-l5", "china"))
    fam = TABLE.all()
    assert identify_cloud(g, fam, "NA", None) is g
    assert identify_cloud(g, fam, "NA", "GCC") is g
    assert identify_cloud(l4, fam, "USGov", "DOD") is l5
    assert identify_cloud(l5, fam, "USGov", "DODCON") is l4
    assert identify_cloud(g, fam, "USG", None) is l4
    assert identify_cloud(l5, fam, "USGov", None) is l5
    assert identify_cloud(l4, fam, "NA", None) is g
    assert identify_cloud(cn, fam, "AS", None) is cn
