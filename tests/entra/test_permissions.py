"""The pure checklist: parametrized tables of what was observed and what the customer sees."""

from __future__ import annotations

import pytest

from portal.entra.clouds import load_cloud_table
from portal.entra.permissions import (
    APP_PERMISSIONS,
    DELEGATED_SCOPES,
    Observed,
    checklist,
    required_items,
)

TABLE = load_cloud_table(None)
APP = "11111111-2222-3333-4444-555555555555"
ALL_APP = frozenset(p.name for p in APP_PERMISSIONS)
UA = "fe930be7-5e62-47db-91af-98c3a49a38b1"
EA = "29232cdf-9323-42fd-ade2-1d097af3e4de"
GA = "62e90394-69f5-4237-9190-012177145e10"


def _status(items):
    return {i.key: i.status for i in items}


@pytest.mark.parametrize(
    ("observed", "exchange", "expected"),
    [
        (
            Observed(ALL_APP, None, frozenset({UA})),
            False,
            dict.fromkeys(
                [
                    "app:User.ReadWrite.All",
                    "app:Group.ReadWrite.All",
                    "app:Directory.ReadWrite.All",
                    "app:User.EnableDisableAccount.All",
                    "role:user-administrator",
                ],
                "ok",
            ),
        ),
        (
            Observed(ALL_APP - {"Directory.ReadWrite.All"}, None, frozenset({UA})),
            False,
            {"app:Directory.ReadWrite.All": "missing"},
        ),
        (
            Observed(frozenset(), None, frozenset()),
            False,
            {"app:User.ReadWrite.All": "missing", "role:user-administrator": "missing"},
        ),
        (
            Observed(None, None, None),
            False,
            {"app:User.ReadWrite.All": "unknown", "role:user-administrator": "unknown"},
        ),
        (Observed(ALL_APP, None, frozenset({GA})), False, {"role:user-administrator": "ok"}),
        (
            Observed(ALL_APP, frozenset({"Exchange.ManageAsApp"}), frozenset({UA, EA})),
            True,
            {"exchange:Exchange.ManageAsApp": "ok", "role:exchange-administrator": "ok"},
        ),
        (
            Observed(ALL_APP, frozenset(), frozenset({UA})),
            True,
            {"exchange:Exchange.ManageAsApp": "missing", "role:exchange-administrator": "missing"},
        ),
        (
            Observed(ALL_APP, None, frozenset({UA})),
            True,
            {"exchange:Exchange.ManageAsApp": "unknown"},
        ),
        (
            Observed(frozenset({"user.readwrite.all"}), None, frozenset()),
            False,
            {"app:User.ReadWrite.All": "ok"},
        ),
        (
            Observed(frozenset({"741f803b-c850-494e-b5df-cde7c675a1ca"}), None, None),
            False,
            {"app:User.ReadWrite.All": "ok", "app:Group.ReadWrite.All": "missing"},
        ),
    ],
)
def test_customer_owned_checklist(observed, exchange, expected):
    items = checklist(
        "customer_owned", observed, TABLE.get("global"), client_id=APP, exchange=exchange
    )
    statuses = _status(items)
    for key, status in expected.items():
        assert statuses[key] == status
    assert ("exchange:Exchange.ManageAsApp" in statuses) is exchange
    assert ("role:exchange-administrator" in statuses) is exchange


@pytest.mark.parametrize(
    ("scopes", "refresh", "expected"),
    [
        (
            frozenset({"User.ReadWrite.All", "Group.ReadWrite.All", "Directory.AccessAsUser.All"}),
            True,
            {
                "scope:User.ReadWrite.All": "ok",
                "scope:offline_access": "ok",
                "scope:Directory.AccessAsUser.All": "ok",
            },
        ),
        (
            frozenset({"User.ReadWrite.All"}),
            True,
            {"scope:Group.ReadWrite.All": "missing", "scope:Directory.AccessAsUser.All": "missing"},
        ),
        (frozenset({"User.ReadWrite.All"}), False, {"scope:offline_access": "missing"}),
        (None, None, {"scope:User.ReadWrite.All": "unknown", "scope:offline_access": "unknown"}),
    ],
)
def test_service_provider_checklist(scopes, refresh, expected):
    items = checklist(
        "service_provider", Observed(scopes=scopes, refresh_token=refresh), TABLE.get("global")
    )
    statuses = _status(items)
    assert set(statuses) == {r.key for r in DELEGATED_SCOPES}
    for key, status in expected.items():
        assert statuses[key] == status
    assert all(i.fix_url is None for i in items)  # the fix is signing in again


@pytest.mark.parametrize("cloud_key", ["global", "usgov-l4", "usgov-l5", "china"])
def test_every_item_explains_itself_and_links_to_the_right_cloud(cloud_key):
    cloud = TABLE.get(cloud_key)
    items = checklist("customer_owned", Observed(), cloud, client_id=APP, exchange=True)
    assert len(items) == 7
    for item in items:
        assert item.why and item.fix and item.label and item.id
        assert item.fix_url and item.fix_url.startswith(cloud.portal_url + "/")
        if item.key.startswith(("app:", "exchange:")):
            assert APP in item.fix_url and "CallAnAPI" in item.fix_url


def test_required_ids_are_the_reference_ones():
    ids = {r.name: r.id for r in required_items("customer_owned", exchange=True)}
    assert ids == {
        "User.ReadWrite.All": "741f803b-c850-494e-b5df-cde7c675a1ca",
        "Group.ReadWrite.All": "62a82d76-70ea-41e2-9197-370581804d09",
        "Directory.ReadWrite.All": "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
        "User.EnableDisableAccount.All": "3011c876-62b7-4ada-afa2-506cbbecc68c",
        "User Administrator": UA,
        "Exchange.ManageAsApp": "dc50a0fb-09a3-484d-be87-e023b12c6440",
        "Exchange Administrator": EA,
    }
    with pytest.raises(ValueError):
        required_items("nonsense")  # type: ignore[arg-type]
