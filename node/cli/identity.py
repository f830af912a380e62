"""``vhnode init``, ``card`` and ``peer``: this node's identity and the partners it trusts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from node import tls
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
from node.config import CARD_FILE, HttpConfig, NodeConfig, TlsConfig, add_tls_section
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
@click.option(
    "--host", default=_HTTP_DEFAULTS.host, show_default=True, help="Local listen address."
)
@click.option(
    "--tls/--no-tls",
    "use_tls",
    default=None,
    help="Peers over mutual TLS: a [tls] section, a self-signed certificate unless "
    "--tls-cert is given, its key on the card [default: --tls for an https endpoint].",
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path),
    default=None,
    help="An existing certificate (PEM, e.g. PKIoverheid) instead of a self-signed one.",
)
@click.option(
    "--tls-key", type=click.Path(path_type=Path), default=None, help="Its private key (0600)."
)
@click.option(
    "--tls-ca",
    type=click.Path(path_type=Path),
    default=None,
    help="CA bundle peers' certificates must also chain to.",
)
@click.option(
    "--tls-host",
    default=None,
    help="Peer listener address [default: 127.0.0.1 for a loopback endpoint, else 0.0.0.0].",
)
@click.option(
    "--tls-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Peer listener port [default: the endpoint's port].",
)
def init(
    *,
    home: Path,
    node_id: str,
    organisation: str,
    org_type: str,
    endpoint: str,
    port: int,
    host: str,
    use_tls: bool | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_ca: Path | None,
    tls_host: str | None,
    tls_port: int | None,
) -> None:
    """Create a node home: config, keys, self-signed peer card, database.

    With TLS (the default for an https endpoint) also a [tls] section and, unless
    --tls-cert is given, a self-signed certificate whose key goes on the card."""
    raw: dict[str, Any] = {
        "node_id": node_id,
        "organisation": organisation,
        "org_type": org_type,
        "endpoint": endpoint,
        "http": {"host": host, "port": port},
    }
    try:
        parsed = urlsplit(endpoint)
        endpoint_port = parsed.port
    except ValueError as e:
        raise InputError(f"endpoint: {e}") from e
    if use_tls is None:
        use_tls = parsed.scheme == "https"
    if not use_tls and (tls_cert or tls_key or tls_ca):
        raise InputError("--tls-cert, --tls-key and --tls-ca need --tls")
    if use_tls:
        if (tls_cert is None) != (tls_key is None):
            raise InputError("--tls-cert and --tls-key go together")
        loopback = parsed.hostname in ("localhost", "127.0.0.1", "::1")
        tls_section: dict[str, Any] = {
            "cert_file": str(tls_cert.resolve()) if tls_cert else tls.CERT_FILE,
            "key_file": str(tls_key.resolve()) if tls_key else tls.KEY_FILE,
            "host": tls_host or ("127.0.0.1" if loopback else "0.0.0.0"),  # noqa: S104
            "port": tls_port if tls_port is not None else (endpoint_port or 443),
        }
        if tls_ca is not None:
            tls_section["ca_file"] = str(tls_ca.resolve())
        raw["tls"] = tls_section
    try:
        cfg = NodeConfig.model_validate(raw)
    except ValidationError as e:
        raise InputError(_first_error(e)) from e
    card, _ = verify_card(admin.init_node(home, cfg).to_json())
    click.echo(f"initialised node {cfg.node_id} in {home}")
    click.echo(f"signing key fingerprint: {card.signing_fingerprint}")
    if card.tls_key_fingerprint is not None and cfg.tls is not None:
        click.echo(f"TLS key fingerprint:     {card.tls_key_fingerprint}")
        click.echo(f"peer listener:           https://{cfg.tls.host}:{cfg.tls.port} (/peer/ only)")
    else:
        click.echo("no TLS: peers are spoken to over plain HTTP (a test node; see --tls)")
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
    click.echo(f"TLS key fingerprint:     {c.tls_key_fingerprint or 'none (a v1 card: no TLS)'}")
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


# --- tls -------------------------------------------------------------------------------


@main.group("tls")
def tls_group() -> None:
    """This node's TLS certificate for peers: make, show and renew it."""


@tls_group.command("new")
@home_option
@click.option(
    "--endpoint",
    required=True,
    help="The https URL peers will reach this node at (goes on the renewed card).",
)
@click.option("--tls-host", default="0.0.0.0", show_default=True, help="Peer listener address.")  # noqa: S104
@click.option(
    "--tls-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Peer listener port [default: the endpoint's port].",
)
def tls_new(home: Path, endpoint: str, tls_host: str, tls_port: int | None) -> None:
    """Move a node without TLS to mutual TLS: a key and a self-signed certificate, a
    [tls] section in node.toml, and a renewed (v2) card at the https endpoint.

    Send the card to every partner's admin (vhnode card export), then restart the node."""
    try:
        port = urlsplit(endpoint).port
    except ValueError as e:
        raise InputError(f"endpoint: {e}") from e
    if not endpoint.startswith("https://"):
        raise InputError("the endpoint of a node with TLS is an https URL")
    with node_at(home) as ctx:
        if ctx.cfg.tls is not None:
            raise InputError("node.toml has a [tls] section already: see 'vhnode tls renew'")
        section = TlsConfig(
            cert_file=Path(tls.CERT_FILE),
            key_file=Path(tls.KEY_FILE),
            host=tls_host,
            port=tls_port if tls_port is not None else (port or 443),
        )
        cfg = ctx.cfg.model_copy(update={"tls": section})
        tls.write_self_signed(ctx.home, cfg, ctx.clock.now())
        add_tls_section(ctx.home, section)
        ctx.cfg = cfg
        c, _ = verify_card(admin.renew_card(ctx, endpoint=endpoint).to_json())
    click.echo(f"made a TLS key and a self-signed certificate in {home / 'tls'}")
    click.echo(f"TLS key fingerprint:     {c.tls_key_fingerprint}")
    click.echo(f"renewed peer card of {c.node_id} at {c.endpoint_url} (a v2 card)")
    click.echo(
        "send it to every partner's admin (vhnode card export) for 'vhnode peer add', "
        "and restart this node"
    )


@tls_group.command("show")
@home_option
def tls_show(home: Path) -> None:
    """The certificate the peer listener presents, and the pin on the card."""
    with node_at(home) as ctx:
        files = ctx.tls_files
        c, _ = admin.own_card(ctx)
    if files is None:
        raise InputError("node.toml has no [tls] section: this node does not use TLS")
    info = tls.describe(files.certificate_der)
    click.echo(f"certificate:             {files.cert_file}")
    click.echo(f"subject:                 {info.subject}")
    click.echo(f"issuer:                  {info.issuer}")
    click.echo(f"valid:                   {rfc3339(info.not_before)} to {rfc3339(info.not_after)}")
    click.echo(f"TLS key fingerprint:     {files.key_fingerprint}")
    if c.tls_certificate_der != files.certificate_der:
        click.echo(
            "the card carries another certificate: run 'vhnode card renew' and send the card"
        )


@tls_group.command("renew")
@home_option
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=tls.SELF_SIGNED_DAYS,
    show_default=True,
    help="Validity of the new self-signed certificate.",
)
def tls_renew(home: Path, days: int) -> None:
    """Issue the self-signed certificate again for the same key, and the card with it.

    The key, so the TLS key fingerprint, stays. Partners trust the certificate their
    copy of the card carries: send them the new card (vhnode card export), and restart
    this node so that it presents the new certificate."""
    with node_at(home) as ctx:
        tls.renew_self_signed(ctx.home, ctx.cfg, ctx.clock.now(), days)
        c, _ = verify_card(admin.renew_card(ctx).to_json())
    click.echo(f"renewed the TLS certificate and the peer card of {c.node_id}")
    click.echo(f"TLS key fingerprint:     {c.tls_key_fingerprint} (unchanged)")
    click.echo(
        "send the card to every partner's admin (vhnode card export) for 'vhnode peer add', "
        "and restart this node"
    )


# --- keys ------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """This node's signing key: rotation (§4.1.1)."""


@keys.command("rotate")
@home_option
@click.option(
    "--compromised",
    is_flag=True,
    help="The old key may be in other hands: do not let it vouch for the new one; every "
    "partner's admin revokes the old card and adds the new one by hand.",
)
def keys_rotate(home: Path, compromised: bool) -> None:
    """Replace this node's signing key and issue a card for the new one.

    Without --compromised the old key cross-signs the new card, and partners' nodes take
    it without an admin when this node announces it on start. Restart the node right
    after: until then it still signs with the old key. Then every convenant that names
    the old key needs a next version: 'vhnode convenant next ID', signed by every party."""
    with node_at(home) as ctx:
        old = ctx.keys.signing_fingerprint
        doc, naming_old = admin.rotate_signing_key(ctx, compromised=compromised)
        path = ctx.home / CARD_FILE
    c, _ = verify_card(doc.to_json())
    click.echo(f"rotated the signing key of {c.node_id}: new card {path}")
    click.echo(f"old signing key fingerprint: {old}")
    click.echo(f"new signing key fingerprint: {c.signing_fingerprint}")
    if compromised:
        click.echo(
            "compromised: the card is not cross-signed; tell every partner's admin the new "
            "fingerprint out of band: they run 'vhnode peer revoke' and 'vhnode peer add "
            "--rotate' (docs/operations.md)"
        )
    else:
        click.echo(
            "restart the node now: it announces the cross-signed card to every partner, "
            "whose nodes take it without an admin"
        )
    for convenant_id in naming_old:
        click.echo(
            f"convenant {convenant_id} names the old key: draft its next version with "
            f"'vhnode convenant next {convenant_id}' and have every party sign it"
        )


# --- peer ------------------------------------------------------------------------------


@main.group()
def peer() -> None:
    """Partners' peer cards."""


@peer.command("add")
@home_option
@click.argument("card_file", metavar="CARD.json", type=click.Path(path_type=Path))
@click.option(
    "--rotate",
    is_flag=True,
    help="Accept a new signing key for a known node id (not needed for a card the held "
    "key cross-signed).",
)
def peer_add(home: Path, card_file: Path, rotate: bool) -> None:
    """Add (or update) a partner's peer card."""
    card_json = admin.load_json_file(card_file)
    with node_at(home) as ctx:
        c, outcome = admin.add_peer(ctx, card_json, rotate=rotate)
    click.echo(f"{outcome}: {c.node_id} ({c.organisation}, {c.org_type})")
    click.echo(f"signing key fingerprint: {c.signing_fingerprint}")
    click.echo(f"TLS key fingerprint:     {c.tls_key_fingerprint or 'none (plain HTTP only)'}")
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
                    "tls_key_fingerprint": p.card.tls_key_fingerprint,
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
