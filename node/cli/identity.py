"""``vhnode init``, ``card`` and ``peer``: this node's identity and the partners it trusts."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import click
from pydantic import ValidationError

from node.cli.common import (
    emit,
    home_option,
    json_option,
    main,
    node_at,
    out_option,
    print_json,
    print_table,
)
from node.config import CARD_FILE, HttpConfig, NodeConfig
from node.errors import InputError
from node.flows import admin
from node.protocol.models import OrgType, rfc3339
from node.protocol.peer_card import verify_card
from node.store import peers


def _first_error(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


# --- init ------------------------------------------------------------------------------

_HTTP_DEFAULTS = HttpConfig()


@main.command()
@home_option
@click.option("--node-id", required=True, help="This node's id, e.g. politie-zwb.")
@click.option("--organisation", required=True, help="Name of the partner organisation.")
@click.option("--org-type", required=True, type=click.Choice(get_args(OrgType)))
@click.option("--endpoint", required=True, help="URL at which peers reach this node.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=_HTTP_DEFAULTS.port, show_default=True
)
@click.option("--host", default=_HTTP_DEFAULTS.host, show_default=True, help="Listen address.")
def init(
    *,
    home: Path,
    node_id: str,
    organisation: str,
    org_type: str,
    endpoint: str,
    port: int,
    host: str,
) -> None:
    """Create a node home: config, keys, self-signed peer card, database."""
    try:
        cfg = NodeConfig.model_validate(
            {
                "node_id": node_id,
                "organisation": organisation,
                "org_type": org_type,
                "endpoint": endpoint,
                "http": {"host": host, "port": port},
            }
        )
    except ValidationError as e:
        raise InputError(_first_error(e)) from e
    card, _ = verify_card(admin.init_node(home, cfg).to_json())
    click.echo(f"initialised node {cfg.node_id} in {home}")
    click.echo(f"signing key fingerprint: {card.signing_fingerprint}")
    click.echo(f"peer card: {home / CARD_FILE}")
    click.echo("send the card to your partners' admins and confirm the fingerprint by phone")


# --- card ------------------------------------------------------------------------------


@main.group()
def card() -> None:
    """This node's own peer card."""


@card.command("show")
@home_option
@json_option
def card_show(home: Path, as_json: bool) -> None:
    """Show the peer card (--json: the signed card as in <home>/card.json)."""
    with node_at(home) as ctx:
        if as_json:
            click.echo((ctx.home / CARD_FILE).read_text(), nl=False)
            return
        c, _ = admin.own_card(ctx)
    click.echo(f"node id:                 {c.node_id}")
    click.echo(f"organisation:            {c.organisation} ({c.org_type})")
    click.echo(f"endpoint:                {c.endpoint_url}")
    click.echo(f"signing key fingerprint: {c.signing_fingerprint}")
    click.echo(f"encryption key fp:       {c.encryption_fingerprint}")
    click.echo(f"valid:                   {rfc3339(c.valid_from)} to {rfc3339(c.valid_until)}")


@card.command("export")
@home_option
@out_option
def card_export(home: Path, output: Path | None) -> None:
    """Write the signed peer card, to send to partners' admins."""
    with node_at(home) as ctx:
        admin.own_card(ctx)  # refuse to hand out a card that does not verify
        text = (ctx.home / CARD_FILE).read_text()
    emit(text, output)


@card.command("renew")
@home_option
@click.option(
    "--endpoint",
    default=None,
    help="New URL at which peers reach this node (also written to node.toml).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=None,
    help="Validity of the new card in days [default: card_validity_days from node.toml].",
)
def card_renew(home: Path, endpoint: str | None, days: int | None) -> None:
    """Issue this node's card again: valid from now, same keys, optionally a new endpoint.

    Send the new card to every partner's admin ('vhnode card export'); their
    'vhnode peer add' takes it as an update of the card they hold. Restart the node so
    that it serves the new card."""
    with node_at(home) as ctx:
        c, _ = verify_card(admin.renew_card(ctx, endpoint=endpoint, days=days).to_json())
        path = ctx.home / CARD_FILE
    click.echo(f"renewed peer card of {c.node_id}: {path}")
    click.echo(f"endpoint:                {c.endpoint_url}")
    click.echo(f"valid:                   {rfc3339(c.valid_from)} to {rfc3339(c.valid_until)}")
    click.echo(f"signing key fingerprint: {c.signing_fingerprint} (unchanged)")
    click.echo(
        "send it to every partner's admin (vhnode card export) for 'vhnode peer add', "
        "and restart this node"
    )


# --- peer ------------------------------------------------------------------------------


@main.group()
def peer() -> None:
    """Partners' peer cards."""


@peer.command("add")
@home_option
@click.argument("card_file", metavar="CARD.json", type=click.Path(path_type=Path))
@click.option("--rotate", is_flag=True, help="Accept a new signing key for a known node id.")
def peer_add(home: Path, card_file: Path, rotate: bool) -> None:
    """Add (or update) a partner's peer card."""
    card_json = admin.load_json_file(card_file)
    with node_at(home) as ctx:
        c, outcome = admin.add_peer(ctx, card_json, rotate=rotate)
    click.echo(f"{outcome}: {c.node_id} ({c.organisation}, {c.org_type})")
    click.echo(f"signing key fingerprint: {c.signing_fingerprint}")
    if outcome in ("added", "rotated"):
        click.echo(f"confirm this fingerprint with {c.node_id}'s admin out of band")


@peer.command("list")
@home_option
@json_option
def peer_list(home: Path, as_json: bool) -> None:
    """List known peers."""
    with node_at(home) as ctx:
        now = ctx.clock.now()
        known = peers.all_peers(ctx.conn)
    state = {p.node_id: admin.peer_state(p, now) for p in known}
    if as_json:
        print_json(
            [
                {
                    "node_id": p.node_id,
                    "organisation": p.card.organisation,
                    "org_type": p.card.org_type,
                    "endpoint": p.card.endpoint_url,
                    "signing_key_fingerprint": p.card.signing_fingerprint,
                    "encryption_key_fingerprint": p.card.encryption_fingerprint,
                    "valid_until": rfc3339(p.card.valid_until),
                    "revoked_at": p.revoked_at,
                    "state": state[p.node_id],
                }
                for p in known
            ]
        )
    elif not known:
        click.echo("no peers; add one with 'vhnode peer add CARD.json'")
    else:
        print_table(
            ["node id", "org type", "state", "signing key", "endpoint"],
            [
                [
                    p.node_id,
                    p.card.org_type,
                    state[p.node_id],
                    p.card.signing_fingerprint[:16] + "…",
                    p.card.endpoint_url,
                ]
                for p in known
            ],
        )


@peer.command("revoke")
@home_option
@click.argument("node_id")
def peer_revoke(home: Path, node_id: str) -> None:
    """Stop trusting a peer's card."""
    with node_at(home) as ctx:
        admin.revoke_peer(ctx, node_id)
    click.echo(f"revoked peer {node_id}")
