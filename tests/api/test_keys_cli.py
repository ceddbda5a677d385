"""API keys through ``flask api-key``: shown once, stored hashed, listed by prefix, revoked."""

from __future__ import annotations

import hashlib
import re

from portal import storage
from portal.storage import db

KEY_RE = re.compile(r"^pk_live_([a-z0-9]{8})_[A-Za-z0-9_-]{43}$", re.M)


def create(runner, *args):
    return runner.invoke(args=["api-key", "create", *args])


def test_create_prints_the_key_once_and_stores_only_its_hash(app, runner):
    result = create(runner, "--name", "Host prod", "--scope", "connections:read")
    assert result.exit_code == 0, result.output
    match = KEY_RE.search(result.output)
    assert match, result.output
    key, key_id = match.group(0), match.group(1)
    assert f"pk_live_{key_id} (Host prod): connections:read" in result.output
    with app.app_context():
        record = storage.get_api_key(key_id)
        rows = list(db.get_db().query("SELECT * FROM api_keys"))
    assert record.secret_hash == hashlib.sha256(key.encode()).hexdigest()
    assert record.scopes == ("connections:read",) and record.last_used_at is None
    assert key not in repr(rows) and key.split("_", 3)[3] not in repr(rows)

    listing = runner.invoke(args=["api-key", "list"])
    assert f"pk_live_{key_id}  Host prod  connections:read" in listing.output
    assert "never" in listing.output and "live" in listing.output
    assert key not in listing.output and "1 key(s)" in listing.output


def test_several_scopes_and_unknown_ones_refused(app, runner):
    result = create(
        runner, "--name", "h", "--scope", "connections:read", "--scope", "connections:write"
    )
    assert result.exit_code == 0 and "connections:read connections:write" in result.output
    refused = create(runner, "--name", "h", "--scope", "everything")
    assert refused.exit_code != 0 and "everything" in refused.output
    assert create(runner, "--name", "h").exit_code != 0  # a scope is required
    with app.app_context():
        assert len(storage.list_api_keys()) == 1


def test_revoke_by_prefix_or_id_audited_and_the_key_stops_working(app, runner, api):
    key = KEY_RE.search(create(runner, "--name", "Host", "--scope", "connections:read").output)
    full, key_id = key.group(0), key.group(1)
    assert api.request("GET", "/api/v1/organizations/nobody", full).status_code == 404

    revoked = runner.invoke(args=["api-key", "revoke", f"pk_live_{key_id}"])
    assert revoked.exit_code == 0 and f"Revoked API key pk_live_{key_id}" in revoked.output
    again = runner.invoke(args=["api-key", "revoke", key_id])
    assert again.exit_code != 0 and "No live API key" in again.output
    assert runner.invoke(args=["api-key", "revoke", "x'; DROP"]).exit_code != 0

    answer = api.request("GET", "/api/v1/organizations/nobody", full)
    assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
    assert "revoked" in runner.invoke(args=["api-key", "list"]).output
    with app.app_context():
        actions = [(e.action, e.detail["key_id"]) for e in storage.list_audit_events()]
    assert ("api_key.create", key_id) in actions and ("api_key.revoke", key_id) in actions
    assert full not in repr(actions)
