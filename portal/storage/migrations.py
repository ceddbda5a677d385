"""The schema as migrations (sqlite-utils), applied in order by ``db.apply_migrations``.

Tables are described in docs/architecture.md ("Tables"). Add new migrations at the end; never edit
one that has shipped.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

from portal.storage.db import MigrationError
from portal.storage.table_rebuild import connections_with_deletion, schema_of

migrations = Migrations("portal")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    for statement in _INITIAL_SCHEMA.split(";\n"):
        if statement.strip():
            db.execute(statement)


_INITIAL_SCHEMA = """
CREATE TABLE organizations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    org_id INTEGER REFERENCES organizations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'support')),
    password_hash TEXT NOT NULL,
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_login_at TEXT,
    CHECK ((role = 'admin' AND org_id IS NOT NULL) OR role = 'support')
);
CREATE TABLE login_attempts (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    address TEXT NOT NULL,
    at REAL NOT NULL,
    succeeded INTEGER NOT NULL
);
CREATE INDEX login_attempts_account ON login_attempts(account, at);
CREATE INDEX login_attempts_address ON login_attempts(address, at);
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('customer_owned', 'service_provider')),
    display_name TEXT,
    cloud TEXT,
    tenant_input TEXT,
    tenant_id TEXT,
    client_id TEXT,
    exchange_enabled INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'draft'
        CHECK (state IN ('draft', 'waiting', 'connected', 'needs_attention', 'needs_reconnect')),
    health TEXT NOT NULL DEFAULT 'unknown'
        CHECK (health IN ('unknown', 'healthy', 'degraded', 'failing')),
    wizard_step INTEGER NOT NULL DEFAULT 1,
    draft TEXT NOT NULL DEFAULT '{}',
    tenant_name TEXT,
    tenant_domain TEXT,
    last_check TEXT,
    last_checked_at TEXT,
    consented_by_oid TEXT,
    consented_by_name TEXT,
    granted_scopes TEXT,
    consented_at TEXT,
    refresh_last_ok_at TEXT,
    refresh_failure_days INTEGER NOT NULL DEFAULT 0,
    refresh_last_failure_day TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX connections_org ON connections(org_id);
CREATE TABLE certificates (
    id TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    thumbprint_sha1 TEXT NOT NULL,
    thumbprint_sha256 TEXT NOT NULL,
    subject TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at TEXT NOT NULL
);
CREATE INDEX certificates_connection ON certificates(connection_id);
CREATE TABLE vault_blobs (
    id INTEGER PRIMARY KEY,
    owner_table TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (owner_table, owner_id, purpose)
);
CREATE TABLE auth_flows (
    state TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('delegated', 'admin_consent')),
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    user_id INTEGER,
    browser_binding TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    consumed_at REAL
);
CREATE TABLE handoffs (
    id TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    user_id INTEGER,
    session_binding TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    consumed_at REAL
);
CREATE TABLE health_events (
    id INTEGER PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    health TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX health_events_connection ON health_events(connection_id, at);
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor_user_id INTEGER,
    org_id INTEGER,
    connection_id TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_org ON audit_events(org_id, at);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END
"""


@migrations()
def m002_link_outcomes(db: sqlite_utils.Database) -> None:
    """The result of a Link Account started from a handoff (what the iframe polls)."""
    db.execute(
        "CREATE TABLE link_outcomes ("
        " handoff_id TEXT PRIMARY KEY REFERENCES handoffs(id) ON DELETE CASCADE,"
        " connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
        " outcome TEXT NOT NULL,"
        " detail TEXT NOT NULL DEFAULT '{}',"
        " finished_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX handoffs_connection ON handoffs(connection_id, created_at)")


@migrations()
def m003_refresh_leases(db: sqlite_utils.Database) -> None:
    """Keep-alive: one lease row per connection being refreshed, so two concurrent
    ``refresh-tokens`` runs never redeem the same refresh token twice (security.md 6.3)."""
    db.execute(
        "CREATE TABLE refresh_leases ("
        " connection_id TEXT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,"
        " owner TEXT NOT NULL,"
        " lease_until REAL NOT NULL)"
    )


@migrations()
def m004_pending_certificates(db: sqlite_utils.Database) -> None:
    """A certificate may be ``pending``: issued for a rotation, signing nothing until it is proven
    against the tenant (then it becomes active and the old one retired). SQLite cannot alter a
    CHECK constraint, so the table is rebuilt (no other table references it)."""
    db.execute("""
        CREATE TABLE certificates_new (
            id TEXT PRIMARY KEY,
            connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
            thumbprint_sha1 TEXT NOT NULL,
            thumbprint_sha256 TEXT NOT NULL,
            subject TEXT NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            cert_pem TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('pending', 'active', 'retired')),
            created_at TEXT NOT NULL
        )""")
    db.execute(
        "INSERT INTO certificates_new SELECT id, connection_id, thumbprint_sha1, "
        "thumbprint_sha256, subject, not_before, not_after, cert_pem, status, created_at "
        "FROM certificates"
    )
    db.execute("DROP TABLE certificates")
    db.execute("ALTER TABLE certificates_new RENAME TO certificates")
    db.execute("CREATE INDEX certificates_connection ON certificates(connection_id)")


@migrations()
def m005_link_confirmation(db: sqlite_utils.Database) -> None:
    """A popup sign-in no longer links by itself (docs/decisions/0004).

    ``handoffs.opened_at`` / ``popup_binding`` / ``confirm_hash``: the popup's confirmation page
    was shown once, to the browser holding the popup cookie (SHA-256 kept), with a one-time token
    (SHA-256 kept). The redeemed result then waits in ``link_outcomes`` (outcome ``confirm``, its
    token cache in the vault) until the session that started it confirms it.
    ``link_reviews``: a tenant another organization has already linked is held for the operator
    (the token cache in the vault under ``link_reviews/<id>/token_cache``)."""
    db.execute("ALTER TABLE handoffs ADD COLUMN opened_at REAL")
    db.execute("ALTER TABLE handoffs ADD COLUMN popup_binding TEXT")
    db.execute("ALTER TABLE handoffs ADD COLUMN confirm_hash TEXT")
    db.execute(
        "CREATE TABLE link_reviews ("
        " id TEXT PRIMARY KEY,"
        " connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
        " org_id INTEGER NOT NULL,"
        " tenant_id TEXT NOT NULL,"
        " other_org_ids TEXT NOT NULL,"
        " requested_by INTEGER,"
        " detail TEXT NOT NULL DEFAULT '{}',"
        " status TEXT NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'approved', 'rejected')),"
        " created_at TEXT NOT NULL,"
        " decided_at TEXT,"
        " decided_by TEXT)"
    )
    db.execute("CREATE INDEX link_reviews_status ON link_reviews(status, created_at)")


@migrations()
def m006_mfa(db: sqlite_utils.Database) -> None:
    """Multi-factor sign-in: whether (and since when) a user has an authenticator app, the last
    TOTP time step accepted (a code is never accepted twice), single-use recovery codes
    (hashes only), and an organization's demand that its admins use a second factor. The TOTP
    secret itself is in ``vault_blobs`` (``users/<id>/totp_secret``)."""
    db.execute("ALTER TABLE users ADD COLUMN mfa_enrolled_at TEXT")
    db.execute("ALTER TABLE users ADD COLUMN totp_last_step INTEGER")
    db.execute("ALTER TABLE organizations ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "CREATE TABLE recovery_codes ("
        " id INTEGER PRIMARY KEY,"
        " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        " code_hash TEXT NOT NULL,"
        " used_at TEXT,"
        " created_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX recovery_codes_user ON recovery_codes(user_id)")


@migrations()
def m007_connection_deletion(db: sqlite_utils.Database) -> None:
    """A connection may be ``deleted`` (terminal: secrets destroyed, the row kept for history,
    audit and support) and records when (``deleted_at``; who is in the audit row).

    SQLite cannot alter a CHECK constraint, so ``connections`` is rebuilt with the 12-step
    procedure of https://www.sqlite.org/lang_altertable.html#otheralter: the new table is built
    from the stored definition (so columns that earlier migrations added survive), the rows
    are copied, the old table dropped and the new one renamed, then its indexes and triggers
    are created again. Other tables reference ``connections``, which is why this must run with
    foreign keys off (``apply_migrations``); it refuses to run otherwise, because the drop
    would then cascade into certificates, events and flows.

    Retired certificates no longer sign anything, so their private keys are destroyed too.
    """
    if db.execute("PRAGMA foreign_keys").fetchone()[0]:
        raise MigrationError("m007 rebuilds connections: run it with foreign keys off")
    table_sql, extras = schema_of(db, "connections")
    columns = ", ".join(f"[{c.name}]" for c in db["connections"].columns)
    db.execute(connections_with_deletion(table_sql))
    db.execute(f"INSERT INTO connections_new ({columns}) SELECT {columns} FROM connections")
    db.execute("DROP TABLE connections")
    db.execute("ALTER TABLE connections_new RENAME TO connections")
    for statement in extras:
        db.execute(statement)
    db.execute(
        "DELETE FROM vault_blobs WHERE owner_table = 'certificates' "
        "AND purpose = 'private_key' "
        "AND owner_id IN (SELECT id FROM certificates WHERE status = 'retired')"
    )


@migrations()
def m008_health(db: sqlite_utils.Database) -> None:
    """The health record apart from the lifecycle state: the last attempt, the last success and
    failure, since when the connection has been failing, whose the failure is (``error_class``)
    and the checklist items that changed at the last finished check (JSON). Written by the
    lifecycle's transitions only, like ``state`` and ``health``."""
    for column in ("last_attempt_at", "last_success_at", "last_failure_at", "failing_since"):
        db.execute(f"ALTER TABLE connections ADD COLUMN {column} TEXT")
    db.execute(
        "ALTER TABLE connections ADD COLUMN error_class TEXT "
        "CHECK (error_class IN ('transient', 'needs_customer', 'our_config'))"
    )
    db.execute("ALTER TABLE connections ADD COLUMN last_changes TEXT")
    db.execute(
        "ALTER TABLE connections ADD COLUMN last_attempt_unfinished INTEGER NOT NULL DEFAULT 0"
    )
    # What the old columns already tell: a healthy connection's last check was a success.
    db.execute(
        "UPDATE connections SET last_attempt_at = last_checked_at, "
        "last_success_at = CASE WHEN health = 'healthy' THEN last_checked_at END"
    )


@migrations()
def m009_jobs(db: sqlite_utils.Database) -> None:
    """Background jobs (Link Account, Check again, the certificate upload check): their steps
    and result live here, so a reload or another worker process reads them; ``lease_until``
    is the running process's heartbeat. The partial unique index holds the rule of at most one
    unfinished job per connection, whatever the code that inserts."""
    db.execute(
        "CREATE TABLE jobs ("
        " id TEXT PRIMARY KEY,"
        " connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
        " org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
        " kind TEXT NOT NULL CHECK (kind IN ('check', 'uploaded')),"
        " status TEXT NOT NULL DEFAULT 'queued'"
        "  CHECK (status IN ('queued', 'running', 'done', 'failed', 'interrupted')),"
        " steps TEXT NOT NULL DEFAULT '[]',"
        " result TEXT,"
        " created_by INTEGER,"
        " created_at TEXT NOT NULL,"
        " lease_until REAL NOT NULL,"
        " finished_at TEXT,"
        " CHECK ((status IN ('queued', 'running')) = (finished_at IS NULL)))"
    )
    db.execute(
        "CREATE UNIQUE INDEX jobs_one_unfinished ON jobs(connection_id) "
        "WHERE status IN ('queued', 'running')"
    )
    db.execute("CREATE INDEX jobs_connection ON jobs(connection_id, created_at)")


@migrations()
def m010_job_runs(db: sqlite_utils.Database) -> None:
    """One row per run of a cron job (``check-health``, ``refresh-tokens``): the metrics show the
    last run of each, because the web workers that answer ``/metrics`` never see the cron
    processes. ``finished_at`` and ``outcome`` stay NULL while a run is going."""
    db.execute(
        """
        CREATE TABLE job_runs (
            id INTEGER PRIMARY KEY,
            job TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            processed INTEGER NOT NULL DEFAULT 0,
            total INTEGER,
            outcome TEXT CHECK (outcome IN ('ok', 'failed')),
            summary TEXT NOT NULL DEFAULT '{}',
            CHECK ((finished_at IS NULL) = (outcome IS NULL))
        )
        """
    )
    db.execute("CREATE INDEX job_runs_by_job ON job_runs (job, id)")


@migrations()
def m011_api_keys(db: sqlite_utils.Database) -> None:
    """The host API: its keys (deployment-wide; only a SHA-256 of each key is kept, the public
    ``key_id`` finds the row, ``scopes`` is space-separated, revoked keys stay for the audit
    trail) and the host's own id of each organization (``external_id``, unique; NULL for an
    organization the host has not named). SQLite cannot add a UNIQUE column, so a unique index
    holds it (NULLs are distinct in it: https://www.sqlite.org/lang_createindex.html)."""
    db.execute(
        "CREATE TABLE api_keys ("
        " id INTEGER PRIMARY KEY,"
        " key_id TEXT NOT NULL UNIQUE CHECK (length(key_id) = 8),"
        " name TEXT NOT NULL,"
        " secret_hash TEXT NOT NULL CHECK (length(secret_hash) = 64),"
        " scopes TEXT NOT NULL,"
        " created_at TEXT NOT NULL,"
        " last_used_at TEXT,"
        " revoked_at TEXT)"
    )
    db.execute("ALTER TABLE organizations ADD COLUMN external_id TEXT")
    db.execute("CREATE UNIQUE INDEX organizations_external_id ON organizations(external_id)")


@migrations()
def m012_guest_access(db: sqlite_utils.Database) -> None:
    """Guests: users who never have a password. ``sign_in`` says how a user gets in: a password
    (and second factor), a connect session the host minted for one of its own users
    (``connect_session``: one row per host user and organization, ``external_user_id``), or a
    setup link (``setup_link``: one row per link, limited to ``only_connection_id``). A guest's
    ``email`` column holds a unique key (``users.email`` is UNIQUE); its address is
    ``contact_email``. Connect sessions and setup links keep only a SHA-256 of their token."""
    db.execute(
        "ALTER TABLE users ADD COLUMN sign_in TEXT NOT NULL DEFAULT 'password'"
        " CHECK (sign_in IN ('password', 'connect_session', 'setup_link'))"
    )
    for column in ("external_user_id", "display_name", "contact_email", "only_connection_id"):
        db.execute(f"ALTER TABLE users ADD COLUMN {column} TEXT")
    db.execute(
        "CREATE TABLE connect_sessions ("
        " id TEXT PRIMARY KEY,"
        " token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),"
        " org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
        " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        " allowed_origins TEXT NOT NULL,"
        " kind TEXT CHECK (kind IS NULL OR kind IN ('customer_owned', 'service_provider')),"
        " connection_id TEXT REFERENCES connections(id) ON DELETE CASCADE,"
        " return_url TEXT,"
        " api_key_id TEXT,"
        " created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL,"
        " used_at TEXT,"
        " used_origin TEXT)"
    )
    db.execute("CREATE INDEX connect_sessions_by_expiry ON connect_sessions (expires_at)")
    db.execute(
        "CREATE TABLE setup_links ("
        " id TEXT PRIMARY KEY,"
        " token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),"
        " org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
        " connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
        " user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,"
        " created_by TEXT NOT NULL,"
        " created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL,"
        " revoked_at TEXT,"
        " spent_at TEXT,"
        " last_used_at TEXT,"
        " uses INTEGER NOT NULL DEFAULT 0,"
        " microsoft_account TEXT)"
    )
    db.execute("CREATE INDEX setup_links_by_connection ON setup_links (connection_id)")
