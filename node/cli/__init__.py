"""The ``vhnode`` command line: a thin layer over the flows (README "Setting up a real node").

Every command takes ``--home`` (env ``VHNODE_HOME``); commands that print data take
``--json``. Failures are handled once, in ``VhnodeGroup.main`` (``node.cli.common``): an
expected error prints one ``error: <detail>`` line on stderr and exits 1 (2 for a usage
error, 130 when interrupted) — never a traceback.

``main`` is the top-level group. Each command family lives in its own module —
``identity`` (init, card, peer), ``registry``, ``users``, ``convenants``, ``query``,
``details``, ``liaison``, ``audit``, ``serve`` (serve, status), and ``vhnode demo`` from
``node.demo.command`` — and is imported only when it runs (``node.cli.common.COMMANDS``),
so a call costs what it uses.
"""

from __future__ import annotations

from node.cli.common import main

__all__ = ["main"]
