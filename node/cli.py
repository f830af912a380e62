"""The ``vhnode`` command line: a thin layer over ``node.admin`` (README "Setting up a real node").

Every command takes ``--home`` (env ``VHNODE_HOME``); commands that print data take
``--json``. Failures are handled once, in ``VhnodeGroup.main``: an expected error prints
one ``error: <detail>`` line on stderr and exits 1 (2 for a usage error, 130 when
interrupted) — never a traceback.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar, cast, get_args

import aiohttp
import click
from click.exceptions import NoArgsIsHelpError
from pydantic import ValidationError

from node import admin
from node.audit import inzage, report
from node.config import HttpConfig, NodeConfig, OrgType, load_config
from node.context import NodeContext, open_node
from node.cross_check import CrossCheck, cross_check
from node.errors import InputError, VhnodeError
from node.identifiers import SubjectIdentifier, parse_identifier
from node.logging_setup import LEVELS
from node.protocol import jws
from node.protocol.convenant import parse_convenant
from node.protocol.models import rfc3339
from node.protocol.peer_card import verify_card
from node.store import convenants, log, peers, users

DEFAULT_HOME = "./vhnode-home"
BEKENDHEID_PATH = "/api/v1/bekendheid"
QUERY_TIMEOUT_SECONDS = 60.0
MAX_ERROR_LINES = 20

F = TypeVar("F", bound=Callable[..., Any])


# --- error handling: one place ---------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_error(e: OSError) -> str:
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e) or type(e).__name__


class VhnodeGroup(click.Group):
    """The top-level group: runs a command and turns every failure into one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        def run() -> Any:
            return super(VhnodeGroup, self).main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )

        if not standalone_mode:  # an embedding caller wants the exceptions
            return run()
        message: str | None = None
        try:
            rv = run()
            code = rv if isinstance(rv, int) else 0
        except NoArgsIsHelpError as e:  # a bare group: its help is the useful answer
            e.show()
            code = e.exit_code
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "vhnode"
            message, code = f"{e.format_message()} (see '{where} --help')", e.exit_code
        except click.ClickException as e:
            message, code = e.format_message(), e.exit_code
        except (click.Abort, KeyboardInterrupt):
            code = 130
        except VhnodeError as e:
            message, code = e.detail, 1
        except OSError as e:
            message, code = _os_error(e), 1
        except sqlite3.Error as e:  # e.g. "database is locked" by a long write elsewhere
            message, code = f"node database: {e}", 1
        except Exception as e:  # a bug: still one line, unless asked for the traceback
            if os.environ.get("VHNODE_DEBUG"):
                raise
            message = f"unexpected {type(e).__name__}: {e} (set VHNODE_DEBUG=1 for a traceback)"
            code = 1
        if message is not None:
            click.echo(f"error: {_one_line(message)}", err=True)
        sys.exit(code)


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one ``error:`` line and exit ``code``."""
    click.echo(f"error: {_one_line(message)}", err=True)
    raise click.exceptions.Exit(code)


# --- shared options and helpers --------------------------------------------------------


def home_option(f: F) -> F:
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="VHNODE_HOME",
        default=DEFAULT_HOME,
        show_default=True,
        help="Node home directory (env VHNODE_HOME).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def out_option(f: F, help_text: str = "Write to this file instead of standard output.") -> F:
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Path(dir_okay=False, path_type=Path),
        help=help_text,
    )(f)


@contextmanager
def node_at(home: Path) -> Iterator[NodeContext]:
    ctx = open_node(home)
    try:
        yield ctx
    finally:
        ctx.close()


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def document_text(doc: jws.SignedDocument) -> str:
    return json.dumps(doc.to_json(), indent=2) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``."""
    path = path.expanduser()
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        write_atomic(output, text)
        click.echo(f"wrote {output}")


def _first_error(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


# --- the group -------------------------------------------------------------------------


@click.group(
    cls=VhnodeGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="vhnode", prog_name="vhnode")
def main() -> None:
    """vhnode: one partner's node in a Veiligheidshuis federation.

    Answers and asks bekendheid (is this person, family or address known to you?) under
    signed convenants, without a central database.
    """


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
    click.echo(f"peer card: {home / admin.CARD_FILE}")
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
            click.echo((ctx.home / admin.CARD_FILE).read_text(), nl=False)
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
        text = (ctx.home / admin.CARD_FILE).read_text()
    emit(text, output)


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
        now = ctx.clock()
        known = peers.all_peers(ctx.conn)
    state = {
        p.node_id: "revoked" if p.revoked_at else "active" if p.card.valid_at(now) else "expired"
        for p in known
    }
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


# --- registry --------------------------------------------------------------------------


@main.group()
def registry() -> None:
    """This partner's own registry of subjects it knows."""


@registry.command("import")
@home_option
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by suffix.")
@json_option
def registry_import(home: Path, file: Path, fmt: str | None, as_json: bool) -> None:
    """Import registrations from CSV or JSON Lines; invalid rows are reported and skipped."""
    with node_at(home) as ctx:
        report = admin.import_registrations(ctx, file, cast(Literal["csv", "jsonl"] | None, fmt))
    invalid = len(report.errors)
    if as_json:
        print_json(report.as_json(max_errors=invalid))
    else:
        click.echo(
            f"rows: {report.rows}  changed: {report.upserted}  unchanged: {report.unchanged}"
            f"  invalid: {invalid}"
        )
        for convenant_id, version in sorted(report.tag_set_versions.items()):
            click.echo(f"tag set {convenant_id}: now version {version}")
        for err in report.errors[:MAX_ERROR_LINES]:
            click.echo(str(err))
        if invalid > MAX_ERROR_LINES:
            click.echo(f"… and {invalid - MAX_ERROR_LINES} more (--json lists all)")
    if invalid and invalid == report.rows:
        fail(f"no valid row in {file}")


@registry.command("purge")
@home_option
@json_option
def registry_purge(home: Path, as_json: bool) -> None:
    """Remove registrations past their retain_until day now (a running node does this hourly)."""
    with node_at(home) as ctx:
        refs = admin.purge_expired(ctx)
    if as_json:
        print_json({"purged": len(refs), "refs": refs})
    else:
        click.echo(f"purged {len(refs)} registration(s) past their retain_until day")


@registry.command("stats")
@home_option
@json_option
def registry_stats(home: Path, as_json: bool) -> None:
    """Number of registrations and the tag set published under each convenant."""
    with node_at(home) as ctx:
        st = admin.status(ctx)
    data = {"registrations": st["registrations"], "tag_sets": st["convenants"]}
    if as_json:
        print_json(data)
        return
    click.echo(f"registrations: {data['registrations']}")
    for convenant_id, h in sorted(st["convenants"].items()):
        click.echo(
            f"tag set {convenant_id} (convenant v{h['version']}): "
            f"version {h['tag_set_version']}, {h['tag_set_count']} tags"
        )


# --- user ------------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Users of the node's local API (bearer tokens)."""


@user.command("add")
@home_option
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(users.ROLES))
def user_add(home: Path, name: str, role: str) -> None:
    """Create a user; its token is printed once."""
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


# --- convenant -------------------------------------------------------------------------


@main.group()
def convenant() -> None:
    """Convenants: draft, sign, merge signatures, check, install."""


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
    """Per party: signed, missing or bad; and whether the convenant is in force."""
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
                    }
                    for r in rows
                ],
            }
        )
        return
    click.echo(f"convenant {conv.id} v{conv.version}: {conv.title}")
    click.echo(f"valid {rfc3339(conv.valid_from)} to {rfc3339(conv.valid_until)}")
    print_table(
        ["party", "organisation", "roles", "signature"],
        [[r.node_id, r.organisation, ",".join(r.roles), r.signature] for r in rows],
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


# --- serve -----------------------------------------------------------------------------


@main.command()
@home_option
@click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True)
def serve(home: Path, log_level: str) -> None:
    """Run the node's HTTP server until SIGTERM or Ctrl-C."""
    from node import server  # noqa: PLC0415 - the server pulls in the whole HTTP stack

    server.run(home, log_level)


# --- query -----------------------------------------------------------------------------

PERSON_FORMAT = "Surname|tussenvoegsel|first names|YYYY-MM-DD"
ADDRESS_FORMAT = "1234AB|12|A"


def _person(text: str) -> SubjectIdentifier:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) != 4:
        raise InputError(f"--person: expected '{PERSON_FORMAT}' (4 fields), got {len(parts)}")
    surname, tussenvoegsel, first_names, birth_date = parts
    return parse_identifier(
        {
            "kind": "person",
            "surname": surname,
            "tussenvoegsel": tussenvoegsel or None,
            "first_names": first_names,
            "birth_date": birth_date,
        }
    )


def _address(text: str) -> SubjectIdentifier:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) not in (2, 3):
        raise InputError(f"--address: expected '{ADDRESS_FORMAT}' (addition optional)")
    return parse_identifier(
        {
            "kind": "address",
            "postcode": parts[0],
            "house_number": parts[1],
            "addition": (parts[2] or None) if len(parts) == 3 else None,
        }
    )


async def _post_json(url: str, token: str, body: Any) -> tuple[int, str, str]:
    timeout = aiohttp.ClientTimeout(total=QUERY_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            return resp.status, resp.content_type, await resp.text()
    except aiohttp.ClientError as e:
        raise VhnodeError(f"cannot reach the node at {url}: {e}") from e
    except TimeoutError as e:
        raise VhnodeError(f"no answer from {url} within {QUERY_TIMEOUT_SECONDS:.0f} s") from e


def _problem_detail(text: str) -> str:
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or text[:200])
    return text[:200]


def print_query_result(result: dict[str, Any]) -> None:
    several = int(result.get("subject_count", 1)) > 1
    click.echo(
        f"convenant {result['convenant_id']} v{result['convenant_version']}, "
        f"purpose {result['purpose']}, case {result['case_ref']}, "
        f"{result['subject_count']} subject(s), trace {result['trace_id']}"
    )
    headers = ["partner", "org type", "status", "reason / detail"]
    if several:
        headers.append("per subject")
    rows = []
    counts: dict[str, int] = {}
    for p in result["partners"]:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
        why = ": ".join(str(x) for x in (p.get("reason"), p.get("detail")) if x)
        row = [str(p["partner"]), str(p["org_type"]), str(p["status"]), why]
        if several:
            row.append(" ".join(f"{i + 1}:{s}" for i, s in enumerate(p.get("subjects", []))))
        rows.append(row)
    if rows:
        print_table(headers, rows)
    click.echo("summary: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))


@main.command()
@home_option
@click.option("--convenant", "convenant_id", required=True, help="Convenant id.")
@click.option("--purpose", required=True, help="Purpose id the convenant grants.")
@click.option("--case", "case_ref", required=True, help="Case reference (logged).")
@click.option("--bsn", "bsns", multiple=True, help="BSN (9 digits).")
@click.option("--person", "persons", multiple=True, help=f"'{PERSON_FORMAT}'.")
@click.option("--address", "addresses", multiple=True, help=f"'{ADDRESS_FORMAT}'.")
@click.option("--partner", "partners", multiple=True, help="Ask only these partners.")
@click.option("--url", help="Base URL of the running node (default: endpoint in node.toml).")
@click.option(
    "--token", envvar="VHNODE_TOKEN", required=True, help="Bearer token (env VHNODE_TOKEN)."
)
@json_option
def query(
    *,
    home: Path,
    convenant_id: str,
    purpose: str,
    case_ref: str,
    bsns: tuple[str, ...],
    persons: tuple[str, ...],
    addresses: tuple[str, ...],
    partners: tuple[str, ...],
    url: str | None,
    token: str,
    as_json: bool,
) -> None:
    """Ask bekendheid of every partner of a convenant, through the running node."""
    subjects: list[SubjectIdentifier] = [parse_identifier({"kind": "bsn", "bsn": b}) for b in bsns]
    subjects += [_person(p) for p in persons]
    subjects += [_address(a) for a in addresses]
    if not subjects:
        raise click.UsageError("give at least one --bsn, --person or --address")
    base = url or str(load_config(home.expanduser()).endpoint)
    body: dict[str, Any] = {
        "convenant_id": convenant_id,
        "purpose": purpose,
        "case_ref": case_ref,
        "subjects": [s.model_dump(mode="json") for s in subjects],
    }
    if partners:
        body["partners"] = list(partners)
    target = base.rstrip("/") + BEKENDHEID_PATH
    status, content_type, text = asyncio.run(_post_json(target, token, body))
    if status != 200:
        raise VhnodeError(f"the node refused the query (HTTP {status}): {_problem_detail(text)}")
    try:
        result = json.loads(text)
    except json.JSONDecodeError as e:
        raise VhnodeError(f"the node answered {content_type}, not JSON") from e
    if as_json:
        print_json(result)
    else:
        print_query_result(result)


# --- audit -----------------------------------------------------------------------------


@main.group()
def audit() -> None:
    """The node's tamper-evident log."""


@audit.command("verify")
@home_option
@json_option
def audit_verify(home: Path, as_json: bool) -> None:
    """Recompute the log and check it against its signed tree heads."""
    with node_at(home) as ctx:
        report = log.verify(ctx.conn, ctx.node_id, ctx.keys.signing_public)
    if as_json:
        print_json(admin.verify_report_json(report))
    elif report.ok:
        click.echo(f"OK: {report.entries} entries, {report.heads} signed tree heads")
    else:
        for p in report.problems:
            where = "head" if p.seq is None else f"seq {p.seq}"
            click.echo(f"{where}: {p.kind}: {p.detail}")
    if not report.ok:
        fail(f"the log does not verify ({len(report.problems)} problem(s))")


@audit.command("cross-check")
@home_option
@click.option("--peer", "peer_ids", multiple=True, help="Check only these peers.")
@json_option
def audit_cross_check(home: Path, peer_ids: tuple[str, ...], as_json: bool) -> None:
    """Ask peers to prove their logs extend the signed heads we hold (RFC 9162)."""

    async def run(ctx: NodeContext) -> list[CrossCheck]:
        async with aiohttp.ClientSession() as session:
            return await cross_check(ctx, session, list(peer_ids) or None)

    with node_at(home) as ctx:
        results = asyncio.run(run(ctx))
    if as_json:
        print_json({"peers": [r.as_json() for r in results]})
    else:
        for r in results:
            sizes = f"held {r.held_size}, now {r.current_size}" if r.held_size else ""
            click.echo(f"{r.peer:24} {r.verdict:13} {sizes:26} {r.detail}".rstrip())
        if not results:
            click.echo("no peer heads held yet: they arrive with answers to bekendheid queries")
    bad = [r.peer for r in results if r.verdict in ("inconsistent", "truncated", "forked")]
    if bad:
        fail(f"log of {', '.join(bad)} does not extend the heads we hold")


@audit.command("report")
@home_option
@click.option("--from", "start", metavar="YYYY-MM-DD", help="First day (UTC), inclusive.")
@click.option("--to", "end", metavar="YYYY-MM-DD", help="Last day (UTC), inclusive.")
@click.option("--convenant", "convenant_id", help="Only entries under this convenant id.")
@click.option("--purpose", help="Only entries with this purpose.")
@click.option(
    "--party",
    help="Only requests by this party: a partner's node id, or this node's id for its own rounds.",
)
@click.option("--user", help="Only entries by this user (local user, or a partner's user).")
@click.option(
    "--subjects-per-day",
    type=click.IntRange(1),
    default=report.DEFAULT_SUBJECTS_PER_DAY,
    show_default=True,
    help="Flag a party asking about more subjects under one convenant in one day.",
)
@click.option(
    "--requests-per-minute",
    type=click.IntRange(1),
    default=report.DEFAULT_REQUESTS_PER_MINUTE,
    show_default=True,
    help="Flag a party sending more requests under one convenant within 60 s.",
)
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (columns: docs/audit.md).")
@out_option
def audit_report(
    *,
    home: Path,
    start: str | None,
    end: str | None,
    convenant_id: str | None,
    purpose: str | None,
    party: str | None,
    user: str | None,
    subjects_per_day: int,
    requests_per_minute: int,
    as_json: bool,
    as_csv: bool,
    output: Path | None,
) -> None:
    """Who asked what under which convenant and purpose; refusals; unusual patterns."""
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    filters = report.parse_filters(
        start=start, end=end, convenant=convenant_id, purpose=purpose, party=party, user=user
    )
    thresholds = report.parse_thresholds(subjects_per_day, requests_per_minute)
    with node_at(home) as ctx:
        rep = report.report_for(ctx.conn, ctx.node_id, ctx.clock(), filters, thresholds)
    if as_json:
        text = json.dumps(rep.as_json(), indent=2, ensure_ascii=False) + "\n"
    elif as_csv:
        text = report.csv_text(rep)
    else:
        text = report.render_text(rep)
    emit(text, output)


def _os_user() -> str:
    # The CLI has no API user: the log names the operating-system account instead.
    try:
        return "cli:" + getpass.getuser()
    except (OSError, KeyError):
        return "cli"


@audit.command("inzage")
@home_option
@click.option("--bsn", "bsns", multiple=True, help="BSN (9 digits).")
@click.option("--person", "persons", multiple=True, help=f"'{PERSON_FORMAT}'.")
@click.option("--address", "addresses", multiple=True, help=f"'{ADDRESS_FORMAT}'.")
@click.option("--ref", "request_ref", help="Reference of the access request (logged).")
@json_option
@out_option
def audit_inzage(
    *,
    home: Path,
    bsns: tuple[str, ...],
    persons: tuple[str, ...],
    addresses: tuple[str, ...],
    request_ref: str | None,
    as_json: bool,
    output: Path | None,
) -> None:
    """Answer a data subject's access request: every logged processing about them."""
    subjects: list[SubjectIdentifier] = [parse_identifier({"kind": "bsn", "bsn": b}) for b in bsns]
    subjects += [_person(p) for p in persons]
    subjects += [_address(a) for a in addresses]
    if not subjects:
        raise click.UsageError("give at least one --bsn, --person or --address")
    with node_at(home) as ctx:
        rep = inzage.answer(ctx, subjects, _os_user(), request_ref)
    if as_json:
        text = json.dumps(rep.as_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = inzage.render_text(rep)
    emit(text, output)


# --- status ----------------------------------------------------------------------------


@main.command()
@home_option
@json_option
def status(home: Path, as_json: bool) -> None:
    """This node: id, key fingerprint, counts, convenants."""
    with node_at(home) as ctx:
        st = admin.status(ctx)
    if as_json:
        print_json(st)
        return
    click.echo(f"node id:                 {st['node_id']}")
    click.echo(f"organisation:            {st['organisation']} ({st['org_type']})")
    click.echo(f"signing key fingerprint: {st['signing_key_fingerprint']}")
    click.echo(f"registrations:           {st['registrations']}")
    click.echo(f"peers:                   {', '.join(st['peers']) or 'none'}")
    click.echo(f"log entries:             {st['log_size']}")
    for convenant_id, h in sorted(st["convenants"].items()):
        click.echo(
            f"convenant {convenant_id} v{h['version']}: tag set version "
            f"{h['tag_set_version']}, {h['tag_set_count']} tags"
        )


# --- demo (node/demo.py, when present) -------------------------------------------------


def _register_demo() -> None:
    try:
        from node.demo import demo  # noqa: PLC0415 - optional module
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == "node.demo":
            return
        reason = f"the demo cannot load: {e}"

        @main.command("demo", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def broken_demo(args: tuple[str, ...]) -> None:
            """Run the demo federation (unavailable: see the error)."""
            raise VhnodeError(reason)

        del broken_demo
        return
    main.add_command(demo)


_register_demo()
