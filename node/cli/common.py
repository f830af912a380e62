"""What every ``vhnode`` command shares: the top-level group, its one place for errors, options.

Failures are handled once, in ``VhnodeGroup.main``: an expected error prints one
``error: <detail>`` line on stderr and exits 1 (2 for a usage error, 130 when interrupted)
— never a traceback.

The group loads each command's module only when that command runs (``COMMANDS``): a
coordinator's ``vhnode query`` must not pay for the HTTP server, the crypto and the store
it never uses (bench/bench_cli.py). This module itself imports nothing heavy.
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.exceptions import NoArgsIsHelpError

from node.errors import DISK_FULL_DETAIL, VhnodeError

if TYPE_CHECKING:
    from node.flows.context import NodeContext

DEFAULT_HOME = "./vhnode-home"

F = TypeVar("F", bound=Callable[..., Any])


# --- error handling: one place ---------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_error(e: OSError) -> str:
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e) or type(e).__name__


# Top-level command → (module that defines it, its attribute there, its one-line summary).
# The summary lets ``vhnode --help`` list every command without importing any of them;
# tests/test_cli_startup.py checks that each equals the command's own first help line.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "audit": ("node.cli.audit", "audit", "The node's tamper-evident log."),
    "backup": (
        "node.cli.backup",
        "backup_command",
        "Back up the node home to one file, while the node runs: a consistent database copy.",
    ),
    "backup-key": (
        "node.cli.backup",
        "backup_key",
        "Make an X25519 key pair for encrypted backups; print the public key.",
    ),
    "card": ("node.cli.identity", "card", "This node's own peer card."),
    "convenant": (
        "node.cli.convenants",
        "convenant",
        "Convenants: draft, sign, merge signatures, check, install, withdraw.",
    ),
    "demo": (
        "node.demo.command",
        "demo",
        "Run a seven-node federation on loopback and check every answer against the truth.",
    ),
    "details": (
        "node.cli.details",
        "details",
        "Ask partners for detail after a hit, and read what they released (§14).",
    ),
    "init": (
        "node.cli.identity",
        "init",
        "Create a node home: config, keys, self-signed peer card, database.",
    ),
    "keys": ("node.cli.identity", "keys", "This node's signing key: rotation (§4.1.1)."),
    "liaison": (
        "node.cli.liaison",
        "liaison",
        "Decide the detail requests that wait for a liaison; read hit notices (§14.7).",
    ),
    "peer": ("node.cli.identity", "peer", "Partners' peer cards."),
    "query": (
        "node.cli.query",
        "query",
        "Ask bekendheid of every partner of a convenant, through the running node.",
    ),
    "registry": (
        "node.cli.registry",
        "registry",
        "This partner's own registry of subjects it knows.",
    ),
    "restore": (
        "node.cli.backup",
        "restore_command",
        "Restore a backup into the node home; the node's next start asks its peers first.",
    ),
    "serve": ("node.cli.serve", "serve", "Run the node's HTTP server until SIGTERM or Ctrl-C."),
    "service": (
        "node.cli.service",
        "service",
        "Run the node as a systemd service: its unit file.",
    ),
    "status": ("node.cli.serve", "status", "This node: id, key fingerprint, counts, convenants."),
    "tls": (
        "node.cli.identity",
        "tls_group",
        "This node's TLS certificate for peers: make, show and renew it.",
    ),
    "user": ("node.cli.users", "user", "Users of the node's local API (bearer tokens)."),
}


class VhnodeGroup(click.Group):
    """The top-level group: loads a command when it runs, and turns every failure into
    one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute, _ = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from ``COMMANDS``' summaries: no command module is imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                # Shortened as click shortens a command's own help.
                stand_in = click.Command(name, help=COMMANDS[name][2])
                rows.append((name, stand_in.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
            full = e.sqlite_errorcode == sqlite3.SQLITE_FULL  # one db.tx did not translate
            message, code = (DISK_FULL_DETAIL if full else f"node database: {e}"), 1
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
    from node.flows.context import open_node  # noqa: PLC0415 - only commands that open the home

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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``.

    A folder that is not there is named as the user typed it: the temporary file's name
    is ours, not theirs, and would only confuse the error line."""
    path = path.expanduser()
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise VhnodeError(f"cannot write {path}: the folder {path.parent} {what}")
    # A new file is the node user's alone: reports and access requests the CLI writes
    # hold personal data. An existing file keeps the mode its owner gave it.
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
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
