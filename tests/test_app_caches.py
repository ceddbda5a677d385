"""The caches belong to the app (app.extensions), not the process: each app starts empty, so
no test has to clear globals, and two apps (two tests, two configurations) never share one."""

from __future__ import annotations

from portal import create_app, services
from portal.entra.tenant import Discovery, TenantRef


def test_each_app_has_its_own_caches(app_config, tmp_path):
    first = create_app(dict(app_config))
    second = create_app(
        {
            **app_config,
            "INSTANCE_PATH": str(tmp_path / "other"),
            "DATABASE": str(tmp_path / "other" / "db.sqlite3"),
        }
    )
    with first.app_context():
        mine = services.caches()
        found = Discovery(
            outcome="found", cloud_key="c", tenant=TenantRef("domain", "t"), tenant_id="t"
        )
        mine.discovery.put(("c", "b", "t"), found)
        assert services.caches() is mine  # the same for every request of this app
    with second.app_context():
        theirs = services.caches()
        assert theirs is not mine
        assert theirs.discovery.get(("c", "b", "t")) is None
        assert theirs.jwks is not mine.jwks and theirs.msal_http is not mine.msal_http
