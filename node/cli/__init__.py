"""The ``vhnode`` command line: a thin layer over ``node.admin`` (README "Setting up a real node").

Every command takes ``--home`` (env ``VHNODE_HOME``); commands that print data take
``--json``. Failures are handled once, in ``VhnodeGroup.main`` (``node.cli.common``): an
expected error prints one ``error: <detail>`` line on stderr and exits 1 (2 for a usage
error, 130 when interrupted) — never a traceback.

``main`` is the top-level group; each module below registers one command family on it:
``identity`` (init, card, peer), ``registry``, ``users``, ``convenants``, ``query``,
``audit``, ``serve`` (serve, status), and ``vhnode demo`` from ``node.demo`` when present.
"""

from __future__ import annotations

import click

from node.cli import (  # noqa: F401 - each registers its commands on main
    audit,
    convenants,
    identity,
    query,
    registry,
    serve,
    users,
)
from node.cli.common import main
from node.errors import VhnodeError

__all__ = ["main"]

# --- demo (node.demo, when present) ----------------------------------------------------


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
