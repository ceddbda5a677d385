"""Rate limits on the actions that cost real work or start a flow at Microsoft."""

from portal import ratelimit, storage
from tests.conftest import csrf_token


def test_every_limited_endpoint_exists(app):
    """A renamed view must not silently lose its limit."""
    assert set(ratelimit.LIMITS) <= set(app.view_functions)


def test_new_connections_are_limited_per_user(app, client_a, client_b, admin_a):
    token = csrf_token(client_a, "/connections/new")
    for _ in range(30):
        created = client_a.post(
            "/connections/new", data={"kind": "customer_owned", "csrf_token": token}
        )
        assert created.status_code == 302
    refused = client_a.post(
        "/connections/new", data={"kind": "customer_owned", "csrf_token": token}
    )
    assert refused.status_code == 429
    assert "Too many requests" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) > 0
    with app.app_context():
        assert len(storage.list_connections(admin_a.org_id)) == 30  # the refused one made nothing

    htmx = client_a.post(
        "/connections/new",
        data={"kind": "customer_owned", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert htmx.status_code == 429 and htmx.headers["HX-Retarget"] == "#alerts"

    other = client_b.post(
        "/connections/new",
        data={"kind": "customer_owned", "csrf_token": csrf_token(client_b, "/connections/new")},
    )
    assert other.status_code == 302  # another user has a budget of their own


def test_choosing_the_cloud_is_limited_per_user(app, client_a, org_a, make_connection):
    """setup/cloud looks a typed tenant up again at Microsoft, like setup/ids."""
    item = make_connection(org_a)
    token = csrf_token(client_a, "/connections/new")
    allowed = int(ratelimit.LIMITS["wizard.save_cloud"].split()[0])
    for _ in range(allowed):
        saved = client_a.post(
            f"/connections/{item.id}/setup/cloud", data={"cloud": "global", "csrf_token": token}
        )
        assert saved.status_code == 302
    refused = client_a.post(
        f"/connections/{item.id}/setup/cloud", data={"cloud": "china", "csrf_token": token}
    )
    assert refused.status_code == 429
    with app.app_context():
        assert storage.get_connection(item.id).cloud == "global"  # the refused one wrote nothing
