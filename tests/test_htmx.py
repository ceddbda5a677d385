"""portal.htmx: the only reader of HX-* headers."""

import pytest

from portal import htmx


@pytest.mark.parametrize(
    "headers, fragment",
    [
        ({}, False),
        ({"HX-Request": "true"}, True),
        ({"HX-Request": "true", "HX-Boosted": "true"}, False),
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
        ({"HX-Boosted": "true"}, False),
    ],
)
def test_wants_fragment(app, headers, fragment):
    with app.test_request_context(headers=headers):
        assert htmx.wants_fragment() is fragment
        assert htmx.is_htmx() is ("HX-Request" in headers)


def test_current_path_only_for_this_host(app):
    with app.test_request_context(headers={"HX-Current-URL": "http://localhost/a?b=1"}):
        assert htmx.current_path() == "/a?b=1"
    with app.test_request_context(headers={"HX-Current-URL": "http://other.example/a"}):
        assert htmx.current_path() is None


def test_page_or_fragment_with_vary(client_a, org_a, make_connection):
    connection = make_connection(org_a, display_name="Alpha")
    page = client_a.get(f"/connections/{connection.id}")
    fragment = client_a.get(f"/connections/{connection.id}", headers={"HX-Request": "true"})
    boosted = client_a.get(
        f"/connections/{connection.id}", headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    for response in (page, fragment, boosted):
        assert "HX-Request" in response.headers["Vary"]
    assert b"<html" in page.data and b"<html" in boosted.data
    assert b"<html" not in fragment.data
    assert b'id="connection-status"' in fragment.data


def test_hx_redirect_helper(app):
    with app.test_request_context():
        response = htmx.hx_redirect("/somewhere")
    assert response.headers["HX-Redirect"] == "/somewhere"


def test_htmx_404_is_an_alert_fragment(client_a):
    response = client_a.get(
        "/connections/ffffffffffffffffffffffffffffffff", headers={"HX-Request": "true"}
    )
    assert response.status_code == 404
    assert response.headers["HX-Retarget"] == "#alerts"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert b'role="alert"' in response.data and b"<html" not in response.data


def test_browser_404_is_a_full_page(client_a):
    response = client_a.get("/connections/ffffffffffffffffffffffffffffffff")
    assert response.status_code == 404
    assert b"<html" in response.data and b"Not found" in response.data


def test_base_template_loads_pinned_htmx_with_sri_and_no_inline_script(client):
    from portal.config import HTMX_SRI

    html = client.get("/login").get_data(as_text=True)
    assert f'src="/static/vendor/htmx.min.js" integrity="{HTMX_SRI}"' in html
    assert "<script>" not in html and " on" not in html.split("<body", 1)[1].split(">")[0]
    assert 'hx-headers=\'{"X-CSRFToken":' in html
