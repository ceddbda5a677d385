"""Operator commands: ``flask --app portal <command>``."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from portal import config, metrics, storage
from portal.storage import db, vault

#: Also registered as a ``flask.commands`` plugin (pyproject.toml) so that ``vault init`` is
#: found before the app is loaded: production refuses to start until ``vault init`` has run.
vault_cli = AppGroup("vault", help="Encryption keys of the vault.")
org_cli = AppGroup("org", help="Settings of an organization (a customer).")


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the database (migrations are idempotent)."""
    database = db.connect(current_app.config["DATABASE"])
    try:
        applied = db.apply_migrations(database)
    finally:
        database.conn.close()
    click.echo(
        f"Database {current_app.config['DATABASE']}: "
        + (f"applied {', '.join(applied)}" if applied else "up to date")
    )


@click.command("create-org")
@with_appcontext
@click.argument("name")
@click.option(
    "--require-mfa",
    is_flag=True,
    help="Its admins must sign in with a second factor (see 'org require-mfa').",
)
def create_org_command(name: str, require_mfa: bool):
    """Create an organization (a customer)."""
    if storage.get_organization_by_name(name):
        raise click.ClickException(f"Organization {name!r} already exists.")
    org = storage.create_organization(name)
    if require_mfa:
        storage.set_organization_require_mfa(org.id, True)
    storage.record_audit(
        "cli.create_org", org_id=org.id, detail={"name": org.name, "require_mfa": require_mfa}
    )
    click.echo(
        f"Created organization {org.name!r} (id {org.id})"
        + (", two-step sign-in required." if require_mfa else ".")
    )


@org_cli.command("require-mfa")
@click.argument("name")
@click.option("--off", is_flag=True, help="No longer require it (admins may keep theirs).")
def org_require_mfa(name: str, off: bool):
    """Require two-step sign-in of every admin of organization NAME.

    Admins without an authenticator app are signed out everywhere and set one up at their next
    sign-in, so the requirement holds from now on rather than from their next sign-in.
    """
    org = storage.get_organization_by_name(name)
    if org is None:
        raise click.ClickException(f"No organization named {name!r}.")
    storage.set_organization_require_mfa(org.id, not off)
    signed_out = 0
    if not off:
        for user in storage.list_users(org.id):
            if not user.has_mfa:
                storage.end_sessions(user.id)
                signed_out += 1
    storage.record_audit("cli.org_require_mfa", org_id=org.id, detail={"required": not off})
    if off:
        click.echo(f"{org.name!r}: two-step sign-in no longer required.")
    else:
        click.echo(
            f"{org.name!r}: two-step sign-in required; {signed_out} admin(s) without it "
            "signed out, to set it up at their next sign-in."
        )


@click.command("create-user")
@with_appcontext
@click.argument("email")
@click.option("--org", "org_name", help="Organization name (required for admins).")
@click.option("--role", type=click.Choice(storage.ROLES), default="admin", show_default=True)
def create_user_command(email: str, org_name: str | None, role: str):
    """Create a user. The password is read from stdin when piped, else generated and shown once."""
    from portal.blueprints.auth import hash_password

    org = None
    if role == "admin":
        if not org_name:
            raise click.ClickException("An admin belongs to an organization: pass --org NAME.")
        org = storage.get_organization_by_name(org_name)
        if org is None:
            raise click.ClickException(f"No organization named {org_name!r}.")
    if "@" not in email:
        raise click.ClickException("That does not look like an email address.")
    if storage.get_user_by_email(email):
        raise click.ClickException(f"A user {email!r} already exists.")
    password = ""
    if sys.stdin is not None and not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(12)
    elif len(password) < 8:
        raise click.ClickException("The password from stdin must have at least 8 characters.")
    user = storage.create_user(email, role, hash_password(password), org.id if org else None)
    storage.record_audit(
        "cli.create_user", org_id=user.org_id, detail={"user_id": user.id, "role": role}
    )
    click.echo(f"Created {role} {user.email}" + (f" in {org.name!r}." if org else "."))
    if generated:
        click.echo(f"Password (shown once): {password}")


@vault_cli.command("init", with_appcontext=False)
def vault_init():
    """Create the first vault key (and the session signing key) of a new instance.

    Runs without starting the portal, since production refuses to start without these keys;
    it never overwrites an existing key file.
    """
    from portal import bare_app

    try:
        lines = config.bootstrap_keys(bare_app())
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for line in lines:
        click.echo(line)


@vault_cli.command("add-key")
def vault_add_key():
    """Generate a new primary key into instance/vault.key (older keys stay for reading)."""
    path = Path(current_app.instance_path) / config.VAULT_KEY_FILE
    if not path.exists():
        raise click.ClickException(
            f"{path} does not exist: create the first key with 'flask --app portal vault init' "
            "(or, when the keys come from PORTAL_VAULT_KEYS, add the key there)."
        )
    keyring = vault.Keyring.generate(vault.Keyring.parse(path.read_text()))
    vault.write_keyring_file(path, keyring)
    storage.record_audit("vault.add_key", detail={"key_id": keyring.primary_kid})
    click.echo(
        f"New primary key {keyring.primary_kid}. Restart the portal, then run "
        "'flask --app portal vault rotate'."
    )


@vault_cli.command("rotate")
def vault_rotate():
    """Re-encrypt every stored secret under the primary key."""
    keyring = current_app.config["VAULT_KEYS"]
    counts = storage.rotate_secrets(keyring)
    storage.record_audit("vault.rotate", detail={"key_id": keyring.primary_kid, **counts})
    click.echo(
        f"Primary key {keyring.primary_kid}: {counts['rotated']} re-encrypted, "
        f"{counts['current']} already current, {counts['unreadable']} unreadable."
    )
    if counts["unreadable"]:
        sys.exit(1)


@vault_cli.command("remove-key")
@click.argument("key_id")
def vault_remove_key(key_id: str):
    """Drop an old key from instance/vault.key once no stored secret uses it."""
    path = Path(current_app.instance_path) / config.VAULT_KEY_FILE
    if not path.exists():
        raise click.ClickException(f"{path} does not exist (keys come from PORTAL_VAULT_KEYS?).")
    keyring = vault.Keyring.parse(path.read_text())
    if key_id not in keyring:
        raise click.ClickException(f"No key {key_id!r} in {path}.")
    if key_id == keyring.primary_kid:
        raise click.ClickException("That is the primary key: add a new one first.")
    in_use = storage.vault_key_usage().get(key_id, 0)
    if in_use:
        raise click.ClickException(
            f"{in_use} secret(s) still use {key_id}: run 'flask --app portal vault rotate' first."
        )
    remaining = vault.Keyring([(kid, keyring.key(kid)) for kid in keyring.key_ids if kid != key_id])
    vault.write_keyring_file(path, remaining)
    storage.record_audit("vault.remove_key", detail={"key_id": key_id})
    click.echo(f"Removed key {key_id}. Restart the portal.")


@vault_cli.command("status")
def vault_status():
    """Which keys exist and how many secrets each one protects (no key material)."""
    keyring = current_app.config["VAULT_KEYS"]
    click.echo(
        json.dumps(
            {
                "primary": keyring.primary_kid,
                "keys": list(keyring.key_ids),
                "blobs_per_key": storage.vault_key_usage(),
            },
            indent=2,
        )
    )


@click.command("refresh-tokens")
@click.option(
    "--idle-hours",
    type=float,
    default=None,
    help="Refresh connections idle this long (default 24 or REFRESH_IDLE_HOURS).",
)
@click.option("--verbose", is_flag=True, help="Also list refreshed and skipped connections.")
@with_appcontext
def refresh_tokens_command(idle_hours: float | None, verbose: bool):
    """Keep delegated connections alive (cron): refresh tokens idle for 24 hours."""
    from portal.connections import keepalive

    # Popup sign-ins nobody confirmed in time: their tokens are destroyed here at the latest.
    storage.purge_unconfirmed_links()
    linked = sum(1 for c in storage.list_all_connections() if keepalive.is_linked(c))
    with metrics.job_run("refresh-tokens", total=linked) as run:
        summary = keepalive.run_from_app(current_app, idle_hours=idle_hours, progress=run.progress)
        run.finish(
            processed=len(summary.results),
            ok=summary.exit_code == 0,
            summary={
                name: getattr(summary, name)
                for name in ("refreshed", "relink", "transient", "exhausted", "skipped", "operator")
            },
        )
    for line in keepalive.report_lines(summary, verbose=verbose):
        click.echo(line)
    sys.exit(summary.exit_code)


@click.command("check-health")
@with_appcontext
def check_health_command():
    """Re-check every linked customer-owned connection (cron): health history for support."""
    from portal.connections import verification

    due = sum(
        1
        for c in storage.list_all_connections()
        if c.kind == "customer_owned" and c.state in verification.SWEPT_STATES
    )
    with metrics.job_run("check-health", total=due) as run:
        summary = verification.sweep(progress=run.progress)
        run.finish(
            processed=summary.checked + summary.not_checked,
            summary={
                "checked": summary.checked,
                "healthy": summary.healthy,
                "needs_attention": summary.needs_attention,
                "not_checked": summary.not_checked,
                "expiring": len(summary.expiring),
            },
        )
    for connection_id, days in summary.expiring:
        state = "expired" if days < 0 else f"expires in {days} days"
        click.echo(f"  {connection_id}: certificate {state}")
    click.echo(summary.line())
    # Non-zero only for our own problems (the vault keyring): customers' findings are not
    # the cron job's.
    sys.exit(1 if summary.operator else 0)


link_review_cli = AppGroup(
    "link-review", help="Delegated links held because another organization linked the tenant."
)


@link_review_cli.command("list")
@with_appcontext
def link_review_list_command():
    """The held links: tenant, the requesting and the other organizations, who signed in."""
    reviews = storage.list_link_reviews("held")
    for review in reviews:
        who = review.detail.get("signed_in", {})
        others = [_org_name(o) for o in review.other_org_ids]
        requester = _org_name(review.org_id)
        click.echo(
            f"{review.id}  tenant {review.tenant_id}  requested by {requester}"
            f" (connection {review.connection_id})  already linked by {', '.join(others)}"
            f"  signed in as {who.get('username') or who.get('object_id')}"
            f"  since {review.created_at}"
        )
    click.echo(f"{len(reviews)} held")


def _org_name(org_id: int) -> str:
    org = storage.get_organization(org_id)
    return f"{org.name!r}" if org else f"#{org_id}"


@link_review_cli.command("approve")
@click.argument("review_id")
@click.option("--by", "decided_by", required=True, help="Who decided (kept in the audit log).")
@with_appcontext
def link_review_approve_command(review_id: str, decided_by: str):
    """Link the held tenant to the requesting connection after all (both customers agree)."""
    _decide(review_id, approve=True, decided_by=decided_by)


@link_review_cli.command("reject")
@click.argument("review_id")
@click.option("--by", "decided_by", required=True, help="Who decided (kept in the audit log).")
@with_appcontext
def link_review_reject_command(review_id: str, decided_by: str):
    """Refuse the held link: its tokens are destroyed."""
    _decide(review_id, approve=False, decided_by=decided_by)


def _decide(review_id: str, *, approve: bool, decided_by: str) -> None:
    from portal.connections import delegated_link
    from portal.connections.service_provider import required_scopes

    outcome = delegated_link.decide_review(
        review_id,
        approve=approve,
        decided_by=decided_by,
        required=required_scopes(current_app.config),
    )
    if outcome is None:
        raise click.ClickException(f"No held review {review_id!r}.")
    click.echo(f"Review {review_id}: {outcome}")


def init_app(app) -> None:
    from portal.api.cli import api_key_cli

    for command in (
        init_db_command,
        create_org_command,
        create_user_command,
        refresh_tokens_command,
        check_health_command,
    ):
        app.cli.add_command(command)
    app.cli.add_command(vault_cli)
    app.cli.add_command(link_review_cli)
    app.cli.add_command(org_cli)
    app.cli.add_command(api_key_cli)
