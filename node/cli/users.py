"""``vhnode user``: users of the node's local API (bearer tokens) and of its web
application (password and TOTP second factor, docs/webapp.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import segno

from node.cli.common import home_option, json_option, main, node_at, print_json, print_table
from node.errors import InputError
from node.flows import admin, signin
from node.store import users


def read_password() -> str:
    """Asked twice, hidden, on a terminal; one line from standard input for a script."""
    if sys.stdin.isatty():
        password = click.prompt(
            "password for the web application", hide_input=True, confirmation_prompt=True
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InputError("no password given (type it, or pipe one line to standard input)")
    signin.check_password(password)
    return str(password)


def show_enrolment(enrolment: signin.Enrolment | None) -> None:
    if enrolment is None:
        click.echo("second factor unchanged (give --new-second-factor to replace it)")
        return
    click.echo("second factor (TOTP, shown only now): scan the QR code with an authenticator")
    click.echo("app, or type the secret into it; the node keeps it encrypted")
    segno.make(enrolment.uri, error="m").terminal(out=sys.stdout, compact=True)
    click.echo(f"secret: {enrolment.secret}")
    click.echo(f"uri: {enrolment.uri}")


@main.group()
def user() -> None:
    """Users of the node's local API (bearer tokens)."""


@user.command("add")
@home_option
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(users.ROLES))
@click.option(
    "--password",
    "with_password",
    is_flag=True,
    help="Also let the user sign in to the web application: asks a password (twice on a "
    "terminal, one line from standard input otherwise) and enrols a TOTP second factor.",
)
def user_add(home: Path, name: str, role: str, with_password: bool) -> None:
    """Create a user; its token is printed once.

    NAME: 1-64 lowercase ASCII letters, digits, '.', '_' or '-', starting with a letter
    or digit; partners see it as the requesting user."""
    password = read_password() if with_password else None
    with node_at(home) as ctx:
        token = admin.create_user(ctx, name, role)
        enrolment = (
            signin.set_credentials(ctx, name, password, new_second_factor=True)
            if password is not None
            else None
        )
    click.echo(f"created user {name} with role {role}")
    click.echo("token (shown only now; the node keeps only its hash):")
    click.echo(token)
    if password is not None:
        click.echo("password set for the web application (/app/)")
        show_enrolment(enrolment)


@user.command("set-password")
@home_option
@click.argument("name")
@click.option(
    "--new-second-factor",
    is_flag=True,
    help="Also replace the user's TOTP secret (a lost phone); one is enrolled anyway "
    "when the user has none yet.",
)
def user_set_password(home: Path, name: str, new_second_factor: bool) -> None:
    """Set a user's web application password; ends its sessions and lifts a lock-out."""
    password = read_password()
    with node_at(home) as ctx:
        enrolment = signin.set_credentials(ctx, name, password, new_second_factor=new_second_factor)
    click.echo(f"password set for {name}; its web sessions have ended")
    show_enrolment(enrolment)


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
