"""``vhnode user``: users of the node's local API and their bearer tokens."""

from __future__ import annotations

from pathlib import Path

import click

from node.cli.common import home_option, json_option, main, node_at, print_json, print_table
from node.flows import admin
from node.store import users


@main.group()
def user() -> None:
    """Users of the node's local API (bearer tokens)."""


@user.command("add")
@home_option
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(users.ROLES))
def user_add(home: Path, name: str, role: str) -> None:
    """Create a user; its token is printed once.

    NAME: 1-64 lowercase ASCII letters, digits, '.', '_' or '-', starting with a letter
    or digit; partners see it as the requesting user."""
    with node_at(home) as ctx:
        token = admin.create_user(ctx, name, role)
    click.echo(f"created user {name} with role {role}")
    click.echo("token (shown only now; the node keeps only its hash):")
    click.echo(token)


@user.command("list")
@home_option
@json_option
def user_list(home: Path, as_json: bool) -> None:
    """List users and their roles."""
    with node_at(home) as ctx:
        rows = users.all_users(ctx.conn)
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo("no users; add one with 'vhnode user add NAME --role ROLE'")
    else:
        print_table(
            ["name", "role", "created", "revoked"],
            [
                [str(r["name"]), str(r["role"]), str(r["created_at"]), r["revoked_at"] or ""]
                for r in rows
            ],
        )


@user.command("revoke")
@home_option
@click.argument("name")
def user_revoke(home: Path, name: str) -> None:
    """Revoke a user's token."""
    with node_at(home) as ctx:
        admin.revoke_user(ctx, name)
    click.echo(f"revoked user {name}")
