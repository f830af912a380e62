"""What every ``vhnode`` command shares: the top-level group, its one place for errors, options.

Failures are handled once, in ``VhnodeGroup.main``: an expected error prints one
``error: <detail>`` line on stderr and exits 1 (2 for a usage error, 130 when interrupted)
— never a traceback.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from click.exceptions import NoArgsIsHelpError

from node.errors import VhnodeError
from node.flows.context import NodeContext, open_node

DEFAULT_HOME = "./vhnode-home"

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
