"""``vhnode convenant``: draft, sign, merge signatures, check and install convenants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from node.cli.common import (
    emit,
    home_option,
    json_option,
    main,
    node_at,
    out_option,
    print_json,
    print_table,
    write_atomic,
)
from node.flows import admin
from node.protocol import jws
from node.protocol.convenant import parse_convenant
from node.protocol.models import rfc3339
from node.store import convenants


def document_text(doc: jws.SignedDocument) -> str:
    return json.dumps(doc.to_json(), indent=2) + "\n"


@main.group()
def convenant() -> None:
    """Convenants: draft, sign, merge signatures, check, install, withdraw."""


@convenant.command("create")
@home_option
@click.argument("source", metavar="SOURCE.toml", type=click.Path(path_type=Path))
@out_option
def convenant_create(home: Path, source: Path, output: Path | None) -> None:
    """Draft an unsigned convenant from its TOML source (fingerprints from peer cards)."""
    text = source.read_text(encoding="utf-8")
    with node_at(home) as ctx:
        doc = admin.draft_convenant(ctx, text)
    emit(document_text(doc), output)


@convenant.command("next")
@home_option
@click.argument("convenant_id")
@out_option
def convenant_next(home: Path, convenant_id: str, output: Path | None) -> None:
    """Draft the next version of an installed convenant with every party's current keys.

    After a party's key rotation this is the version that names the new key: the same
    text, version + 1, each party's fingerprints from the card held now. Every party
    signs it ('vhnode convenant sign'), then merge and install as any version."""
    with node_at(home) as ctx:
        doc = admin.next_convenant_version(ctx, convenant_id)
    emit(document_text(doc), output)


@convenant.command("sign")
@home_option
@click.argument("file", type=click.Path(path_type=Path))
@lambda f: out_option(f, "Write the signed copy to this file instead of rewriting FILE.")
def convenant_sign(home: Path, file: Path, output: Path | None) -> None:
    """Add this node's signature (default: rewrite FILE in place)."""
    doc_json = admin.load_json_file(file)
    with node_at(home) as ctx:
        signed = admin.sign_convenant(ctx, doc_json)
        node_id = ctx.node_id
    conv, _ = parse_convenant(signed.to_json())
    target = output or file
    write_atomic(target, document_text(signed))
    click.echo(f"signed convenant {conv.id} v{conv.version} as {node_id}: {target}")


@convenant.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
def convenant_merge(files: tuple[Path, ...], output: Path) -> None:
    """Combine the signatures of several copies of one convenant."""
    docs = [parse_convenant(admin.load_json_file(f))[1] for f in files]
    merged = jws.merge(docs)
    conv, _ = parse_convenant(merged.to_json())
    write_atomic(output, document_text(merged))
    click.echo(
        f"merged {len(merged.signatures)} signature(s) of convenant {conv.id} "
        f"v{conv.version}: {output}"
    )


@convenant.command("status")
@home_option
@click.argument("file", type=click.Path(path_type=Path))
@json_option
def convenant_status(home: Path, file: Path, as_json: bool) -> None:
    """Per party: signed, missing, bad or no_card (no peer card held); and whether in force."""
    doc_json = admin.load_json_file(file)
    with node_at(home) as ctx:
        conv, rows, why_not = admin.convenant_status(ctx, doc_json)
    if as_json:
        print_json(
            {
                "id": conv.id,
                "version": conv.version,
                "title": conv.title,
                "valid_from": rfc3339(conv.valid_from),
                "valid_until": rfc3339(conv.valid_until),
                "in_force": why_not is None,
                "reason": why_not,
                "parties": [
                    {
                        "node_id": r.node_id,
                        "organisation": r.organisation,
                        "roles": list(r.roles),
                        "signature": r.signature,
                        "withdrawn_at": r.withdrawn_at,
                    }
                    for r in rows
                ],
            }
        )
        return
    click.echo(f"convenant {conv.id} v{conv.version}: {conv.title}")
    click.echo(f"valid {rfc3339(conv.valid_from)} to {rfc3339(conv.valid_until)}")
    print_table(
        ["party", "organisation", "roles", "signature", "withdrawn"],
        [
            [r.node_id, r.organisation, ",".join(r.roles), r.signature, r.withdrawn_at or "-"]
            for r in rows
        ],
    )
    click.echo("in force" if why_not is None else f"not in force: {why_not}")


@convenant.command("install")
@home_option
@click.argument("file", type=click.Path(path_type=Path))
def convenant_install(home: Path, file: Path) -> None:
    """Install a convenant signed by every party."""
    doc_json = admin.load_json_file(file)
    with node_at(home) as ctx:
        conv = admin.install_convenant(ctx, doc_json)
    click.echo(f"installed convenant {conv.id} v{conv.version}")


@convenant.command("withdraw")
@home_option
@click.argument("convenant_id")
@click.option("--reason", required=True, help="Why this node withdraws (at most 500 characters).")
@lambda f: out_option(f, "Write the signed withdrawal to this file instead of standard output.")
def convenant_withdraw(home: Path, convenant_id: str, reason: str, output: Path | None) -> None:
    """Sign this node's withdrawal from a convenant, effective now, and install it here.

    Send the document to every other party: each installs it with install-withdrawal.
    """
    with node_at(home) as ctx:
        doc = admin.withdraw_from_convenant(ctx, convenant_id, reason)
    emit(document_text(doc), output)


@convenant.command("install-withdrawal")
@home_option
@click.argument("file", type=click.Path(path_type=Path))
def convenant_install_withdrawal(home: Path, file: Path) -> None:
    """Install a party's signed withdrawal from a convenant installed here."""
    doc_json = admin.load_json_file(file)
    with node_at(home) as ctx:
        w, new = admin.install_withdrawal(ctx, doc_json)
    state = "installed" if new else "already installed"
    click.echo(
        f"{state}: {w.party} withdraws from convenant {w.convenant_id} "
        f"(v{w.convenant_version} and earlier) at {rfc3339(w.withdrawn_at)}"
    )


@convenant.command("list")
@home_option
@json_option
def convenant_list(home: Path, as_json: bool) -> None:
    """Installed convenants (newest version of each)."""
    rows: list[dict[str, Any]] = []
    with node_at(home) as ctx:
        for inst in convenants.latest_versions(ctx.conn):
            conv, _, why_not = admin.convenant_status(ctx, inst.document.to_json())
            party = conv.party(ctx.node_id)
            rows.append(
                {
                    "id": conv.id,
                    "version": conv.version,
                    "title": conv.title,
                    "valid_until": rfc3339(conv.valid_until),
                    "installed_at": inst.installed_at,
                    "roles": list(party.roles) if party else [],
                    "in_force": why_not is None,
                    "reason": why_not,
                }
            )
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo("no convenants installed")
    else:
        print_table(
            ["id", "version", "our roles", "valid until", "state"],
            [
                [
                    r["id"],
                    str(r["version"]),
                    ",".join(r["roles"]),
                    r["valid_until"],
                    "in force" if r["in_force"] else f"not in force: {r['reason']}",
                ]
                for r in rows
            ],
        )
