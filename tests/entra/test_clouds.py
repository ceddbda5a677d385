"""Cloud data, the extra-clouds file, and the guarded HTTP session (no network needed here,
except the simulator for what the process environment may not change)."""

from __future__ import annotations

import json
import pathlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from portal.entra.clouds import (
    BUILTIN_CLOUDS,
    CloudConfigError,
    CloudTable,
    HostNotAllowedError,
    http_session,
    load_cloud_table,
)

GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"


def _entry(**over):
    entry = {
        "key": "sim-global",
        "label": "Simulator: global service",
        "mirrors": "global",
        "login_base": "https://127.0.0.1:41234",
        "graph_base": "https://127.0.0.1:41234",
        "graph_resource": "https://graph.microsoft.com",
        "exchange_resource": "https://outlook.office365.com",
        "portal_url": "https://127.0.0.1:41234/_sim/admin",
        "entra_url": "https://127.0.0.1:41234/_sim/admin",
        "ca_bundle": None,
        "tenant_region_scope": "NA",
        "tenant_region_sub_scope": None,
    }
    entry.update(over)
    return entry


def _write(tmp_path, entries):
    path = tmp_path / "clouds.json"
    path.write_text(json.dumps(entries))
    return str(path)


@pytest.mark.parametrize(
    ("key", "login", "graph", "exchange", "portal", "sub"),
    [
        (
            "global",
            "login.microsoftonline.com",
            "graph.microsoft.com",
            "https://outlook.office365.com",
            "https://portal.azure.com",
            None,
        ),
        (
            "usgov-l4",
            "login.microsoftonline.us",
            "graph.microsoft.us",
            "https://outlook.office365.us",
            "https://portal.azure.us",
            "DODCON",
        ),
        (
            "usgov-l5",
            "login.microsoftonline.us",
            "dod-graph.microsoft.us",
            "https://outlook-dod.office365.us",
            "https://portal.azure.us",
            "DOD",
        ),
        (
            "china",
            "login.partner.microsoftonline.cn",
            "microsoftgraph.chinacloudapi.cn",
            "https://partner.outlook.cn",
            "https://portal.azure.cn",
            None,
        ),
    ],
)
def test_builtin_clouds_match_the_reference(key, login, graph, exchange, portal, sub):
    cloud = load_cloud_table(None).get(key)
    assert cloud.builtin and cloud.family == "builtin"
    assert cloud.authority(GUID) == f"https://{login}/{GUID}"
    assert cloud.graph_scope() == f"https://{graph}/.default"
    assert cloud.exchange_scope() == f"{exchange}/.default"
    assert cloud.token_endpoint(GUID) == f"https://{login}/{GUID}/oauth2/v2.0/token"
    assert cloud.discovery_url(GUID) == (
        f"https://{login}/{GUID}/v2.0/.well-known/openid-configuration"
    )
    assert cloud.portal_url == portal
    assert cloud.region_sub_scope == sub
    assert cloud.app_certificates_url(APP).startswith(portal + "/#view/")
    assert APP in cloud.app_permissions_url(APP)
    assert cloud.roles_url().startswith(portal)
    assert cloud.label and cloud.explanation


def test_clouds_do_not_depend_on_msal_constants():
    import portal.entra.cloud
    import portal.entra.clouds
    import portal.entra.national_clouds
    import portal.entra.outbound

    for module in (
        portal.entra.clouds,
        portal.entra.cloud,
        portal.entra.national_clouds,
        portal.entra.outbound,
    ):
        source = pathlib.Path(module.__file__).read_text()
        assert "import msal" not in source and "from msal" not in source, module.__name__
    assert "login.partner.microsoftonline.cn" in {c.login_base[8:] for c in BUILTIN_CLOUDS}


def test_admin_consent_url_is_v2_with_default_scope():
    cloud = load_cloud_table(None).get("usgov-l4")
    url = cloud.admin_consent_url(GUID, APP, "https://portal.example/cb?x=1&y=2", "st&ate")
    parts = urlsplit(url)
    assert parts.netloc == "login.microsoftonline.us"
    assert parts.path == f"/{GUID}/v2.0/adminconsent"
    q = parse_qs(parts.query)
    assert q == {
        "client_id": [APP],
        "scope": ["https://graph.microsoft.us/.default"],
        "redirect_uri": ["https://portal.example/cb?x=1&y=2"],
        "state": ["st&ate"],
    }


def test_load_extra_clouds(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    table = load_cloud_table(
        _write(
            tmp_path,
            [
                _entry(ca_bundle=str(ca)),
                _entry(
                    key="sim-usgov-l4",
                    login_base="https://127.0.0.1:41235/",
                    graph_base="https://127.0.0.1:41235",
                    mirrors="usgov-l4",
                    entra_url=None,
                    tenant_region_scope="USGov",
                    tenant_region_sub_scope="DODCON",
                ),
            ],
        )
    )
    assert [c.key for c in table.all()] == [
        "global",
        "usgov-l4",
        "usgov-l5",
        "china",
        "sim-global",
        "sim-usgov-l4",
    ]
    sim = table.get("sim-usgov-l4")
    assert sim.login_base == "https://127.0.0.1:41235"
    assert sim.entra_url == sim.portal_url
    assert sim.region_scopes == ("USGOV",) and sim.region_sub_scope == "DODCON"
    assert sim.family == "extra" and sim.mirrored_key == "usgov-l4"
    assert table.get("sim-global").ca_bundle == str(ca)
    assert [c.key for c in table.family_of(sim)] == ["sim-global", "sim-usgov-l4"]
    assert ("https", "127.0.0.1", 41235) in table.allowed_hosts()
    assert ("https", "login.microsoftonline.com", 443) in table.allowed_hosts()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"not": "a list"}, "JSON list"),
        (["x"], "JSON object"),
        ([_entry(login_base="http://127.0.0.1:1")], "https"),
        ([_entry(graph_base="https://127.0.0.1:1/v1.0")], "path"),
        ([_entry(login_base="https://127.0.0.1:1/?a=b")], "query"),
        ([_entry(login_base="https://user@127.0.0.1:1")], "user info"),
        ([_entry(graph_resource="ftp://x")], "https"),
        ([_entry(portal_url="https://h/x#frag")], "fragment"),
        ([_entry(), _entry()], "twice"),
        ([_entry(key="global")], "built-in"),
        ([_entry(key="Bad Key")], "key must"),
        ([_entry(mirrors="mars")], "mirrors"),
        ([_entry(extra_field=1)], "unknown field"),
        ([{k: v for k, v in _entry().items() if k != "graph_base"}], "missing"),
        ([_entry(ca_bundle="/does/not/exist.pem")], "not a file"),
        ([_entry(label=5)], "label"),
    ],
)
def test_bad_extra_clouds_are_refused_with_a_clear_error(tmp_path, entries, message):
    with pytest.raises(CloudConfigError, match=message):
        load_cloud_table(_write(tmp_path, entries))


def test_unreadable_or_invalid_file(tmp_path):
    with pytest.raises(CloudConfigError, match="cannot read"):
        load_cloud_table(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(CloudConfigError, match="not valid JSON"):
        load_cloud_table(str(bad))


def test_unknown_cloud_key():
    with pytest.raises(KeyError):
        load_cloud_table(None).get("mars")


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/",
        "http://graph.microsoft.com/v1.0/me",
        "https://graph.microsoft.com:444/v1.0/me",
        "https://graph.microsoft.com.evil.example/",
        "https://evil.example\\@graph.microsoft.com/",
        "https://graph.microsoft.com@evil.example/",
        "https://user:pw@graph.microsoft.com/",
        "https://127.0.0.1/",
        "https://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "gopher://graph.microsoft.com/",
        "https://[::1]/",
    ],
)
def test_session_refuses_other_hosts_before_connecting(url):
    session = http_session(load_cloud_table(None))
    with pytest.raises(HostNotAllowedError):
        session.get(url)
    with pytest.raises(HostNotAllowedError):
        session.send(requests.Request("GET", url).prepare())


def test_session_defaults():
    table = load_cloud_table(None)
    session = http_session(table)
    assert session.default_timeout == (3.05, 10)
    assert session.max_redirects == 0
    assert session.trust_env is False  # see test_environment_cannot_* below
    session.check_url("https://graph.microsoft.com/v1.0/organization")
    session.check_url("https://LOGIN.microsoftonline.us:443/x")


def test_session_with_ca_bundle_ignores_environment(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    table = load_cloud_table(_write(tmp_path, [_entry(ca_bundle=str(ca))]))
    session = http_session(table, table.get("sim-global"))
    assert session.trust_env is False
    assert session.verify == str(ca)
    assert isinstance(table, CloudTable)


# --- The process environment cannot redirect or re-trust outbound calls ----------------------


@pytest.fixture
def public_ca_table(sim_server, tmp_path):
    """The simulator's clouds without their ca_bundle, the way a production cloud looks (trusted
    through the public CAs); the tests hand the simulator's CA to a request themselves."""
    entries = [{k: v for k, v in c.items() if k != "ca_bundle"} for c in sim_server.clouds()]
    path = tmp_path / "clouds.json"
    path.write_text(json.dumps(entries))
    return load_cloud_table(str(path))


def _dead_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


def test_environment_cannot_send_calls_through_a_proxy(
    sim, sim_server, public_ca_table, monkeypatch
):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{_dead_port()}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    tenant = sim.create_tenant(cloud="global", domains=["contoso.onmicrosoft.com"])
    url = public_ca_table.get("sim-global").discovery_url(tenant["id"])
    response = http_session(public_ca_table).get(url, verify=sim_server.ca_path)
    assert response.status_code == 200 and tenant["id"] in response.json()["issuer"]


def test_environment_cannot_add_a_trusted_ca(sim, sim_server, public_ca_table, monkeypatch):
    """REQUESTS_CA_BUNDLE naming another CA (here the simulator's) must not make its
    certificates trusted for a cloud that relies on the public CAs."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim_server.ca_path)
    monkeypatch.setenv("CURL_CA_BUNDLE", sim_server.ca_path)
    tenant = sim.create_tenant(cloud="global")
    url = public_ca_table.get("sim-global").discovery_url(tenant["id"])
    with pytest.raises(requests.exceptions.SSLError):
        http_session(public_ca_table).get(url)
