"""A GET sweep over every route changes no state (the audit log of support views aside)."""

import pytest

from portal.storage import db


def snapshot(app, skip=("audit_events",)):
    with app.app_context():
        database = db.get_db()
        return {
            name: list(database.execute(f"SELECT * FROM [{name}]").fetchall())
            for name in database.table_names()
            if name not in skip
        }


@pytest.mark.parametrize("who", ["anonymous", "admin", "support"])
def test_get_changes_nothing(app, client, client_a, support_client, org_a, make_connection, who):
    browser = {"anonymous": client, "admin": client_a, "support": support_client}[who]
    connection = make_connection(org_a, display_name="Sweep")
    before = snapshot(app, skip=("audit_events",) if who == "support" else ())
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        args = {
            name: {"connection_id": connection.id, "filename": "app.css"}.get(name, "x")
            for name in rule.arguments
        }
        url = rule.build(args, append_unknown=False)[1]
        for headers in ({}, {"HX-Request": "true"}):
            browser.get(url, headers=headers).close()
    assert snapshot(app, skip=("audit_events",) if who == "support" else ()) == before
