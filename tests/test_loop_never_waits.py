"""The event loop never waits (issue 8 item 2): a node answers its peers while another
process imports and installs a convenant on its home and its privacy officer verifies
its log. The full-size figures are bench/bench_loop_lag.py's; here the same scenario at a
size CI can afford, asserting what must hold at any size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from node.flows.context import ON_LOOP, LoopBlocked
from tests.federation import Federation
from tests.loop_lag import ASKER, TARGET, run


async def test_rounds_keep_answering_while_admin_work_runs(tmp_path: Path) -> None:
    out = await run(tmp_path, log_entries=20_000, import_rows=6_000)
    print(out.summary())
    for name, (rc, text) in out.processes.items():
        assert rc == 0, f"{name}: {text}"
    assert out.rounds, "no round completed while the admin work ran"
    for r in out.rounds:
        # Every round got real answers: the police node knows Jan, the others do not.
        assert r[TARGET] == "hit", out.summary()
        assert set(r.values()) <= {"hit", "no_hit"}, r
    assert out.verify
    assert all(v["status"] == 200 and v["ok"] for v in out.verify)
    # A loop that waited on the write lock (the CLI holds it for whole batches) or ran a
    # log verification stalls for seconds; the p99 goal (50 ms) is the bench's to report.
    assert max(out.lags) < 1.0, out.summary()


async def test_sqlite_on_the_loop_is_refused_while_serving(federation: Federation) -> None:
    ctx = federation.nodes[ASKER].ctx
    token = ON_LOOP.set(True)
    try:
        with pytest.raises(LoopBlocked):
            _ = ctx.conn
        # Handing the work to the node's threads is what serving code does instead.
        assert await ctx.read(lambda: ctx.conn.execute("SELECT 1").fetchone()[0]) == 1
    finally:
        ON_LOOP.reset(token)
    # Outside a request (a test's or the CLI's own code) the direct connection serves.
    assert ctx.conn.execute("SELECT 1").fetchone()[0] == 1
