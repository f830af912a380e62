"""The ``vhnode`` command line: a thin layer over the flows (README "Setting up a real node").

Every command takes ``--home`` (env ``VHNODE_HOME``); commands that print data take
``--json``. Failures are handled once, in ``VhnodeGroup.main`` (``node.cli.common``): an
expected error prints one ``error: <detail>`` line on stderr and exits 1 (2 for a usage
error, 130 when interrupted) — never a traceback.

``main`` is the top-level group; each module below registers one command family on it:
``identity`` (init, card, peer), ``registry``, ``users``, ``convenants``, ``query``,
``audit``, ``serve`` (serve, status), and ``vhnode demo`` from ``node.demo``.
"""

from __future__ import annotations

from node.cli import (  # noqa: F401 - each registers its commands on main
    audit,
    convenants,
    details,
    identity,
    liaison,
    query,
    registry,
    serve,
    users,
)
from node.cli.common import main
from node.demo import demo

__all__ = ["main"]

main.add_command(demo)
