"""``flask api-key create|list|revoke``: the operator's commands for host API keys."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal import storage
from portal.api import keys
from portal.api.scopes import SCOPES

api_key_cli = AppGroup("api-key", help="Keys of the host API (/api/v1).")


@api_key_cli.command("create")
@click.option("--name", required=True, help="Who or what holds the key (shown in the list).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(sorted(SCOPES)),
    help="What the key may do; repeat for several.",
)
def create_command(name: str, scopes: tuple[str, ...]):
    """Create a key and print it once: only its hash is kept, it cannot be shown again."""
    try:
        issued = keys.issue(name, list(scopes))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    record = issued.record
    click.echo(
        f"Created API key {keys.prefix_of(record)} ({record.name}): {' '.join(record.scopes)}"
    )
    click.echo("Store it now; it is not shown again:")
    click.echo(issued.key)


@api_key_cli.command("list")
def list_command():
    """Every key: prefix, name, scopes, created, last used, revoked."""
    records = storage.list_api_keys()
    for record in records:
        state = f"revoked {record.revoked_at}" if record.revoked else "live"
        click.echo(
            f"{keys.prefix_of(record)}  {record.name}  {' '.join(record.scopes)}"
            f"  created {record.created_at}  last used {record.last_used_at or 'never'}  {state}"
        )
    click.echo(f"{len(records)} key(s)")


@api_key_cli.command("revoke")
@click.argument("prefix")
def revoke_command(prefix: str):
    """Revoke the key PREFIX (pk_live_<id> or <id>): it stops working at once."""
    record = keys.revoke(prefix)
    if record is None:
        raise click.ClickException(f"No live API key {prefix!r}.")
    click.echo(f"Revoked API key {keys.prefix_of(record)} ({record.name}).")
