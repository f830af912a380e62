"""A node at work while its admin and privacy officer work too: the scenario of
tests/test_loop_never_waits.py and bench/bench_loop_lag.py.

A federation on loopback (tests/federation.py) in this process, so a probe can tick on
the nodes' own event loop. While the coordinator keeps asking rounds, at the police node
at once: ``vhnode registry import`` of ``import_rows`` rows and ``vhnode convenant
install`` of a second convenant (both as separate processes on the node's home, as an
admin runs them, holding the write lock between them), and ``GET /api/v1/audit/verify``
over a log grown to ``log_entries`` entries. The probe records how late each 10 ms tick
of the loop came; every round's per-partner statuses are kept.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.demo.synthetic import iter_bulk_registrations
from node.flows import admin
from node.policy.rate_limit import RateLimiter
from node.store import log
from node.store.db import tx
from tests.federation import DEFAULT_PARTIES, Federation, convenant_toml, standard_federation

TARGET = "politie-test"
ASKER = "vh-test"
JAN = {"kind": "bsn", "bsn": "123456782"}
NOBODY = {"kind": "bsn", "bsn": "111222333"}
TICK = 0.010


@dataclass
class Outcome:
    lags: list[float] = field(default_factory=list)  # seconds each tick came late
    rounds: list[dict[str, str]] = field(default_factory=list)  # partner → status
    round_ms: list[float] = field(default_factory=list)
    verify: list[dict[str, Any]] = field(default_factory=list)
    processes: dict[str, tuple[int, str]] = field(default_factory=dict)  # name → (rc, output)
    seconds: float = 0.0

    def lag_ms(self, q: float) -> float:
        ordered = sorted(self.lags)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for r in self.rounds:
            for s in r.values():
                statuses[s] = statuses.get(s, 0) + 1
        return {
            "seconds": round(self.seconds, 1),
            "ticks": len(self.lags),
            "lag_p50_ms": round(self.lag_ms(0.50), 1),
            "lag_p99_ms": round(self.lag_ms(0.99), 1),
            "lag_max_ms": round(1000 * max(self.lags), 1),
            "rounds": len(self.rounds),
            "round_p50_ms": round(statistics.median(self.round_ms), 1),
            "round_max_ms": round(max(self.round_ms), 1),
            "statuses": statuses,
            "verify_calls": len(self.verify),
            "processes": {k: v[0] for k, v in self.processes.items()},
        }


def grow_log(fed: Federation, node_id: str, entries: int, batch: int = 2_000) -> None:
    """Append ``entries`` filler entries to a node's log (set-up, before the clock runs)."""
    ctx = fed.nodes[node_id].ctx
    now = ctx.clock.now()
    for start in range(0, entries, batch):
        n = min(batch, entries - start)
        with tx(ctx.conn):
            ctx.record(
                [log.LogEntry(kind="test.filler", data={"i": start + i}) for i in range(n)], now
            )


def write_import(path: Path, rows: int, seed: int = 7) -> None:
    with path.open("w", encoding="utf-8") as f:
        for reg in iter_bulk_registrations(rows, random.Random(seed)):
            f.write(reg.model_dump_json() + "\n")


def second_convenant(fed: Federation, path: Path) -> None:
    """A second convenant under which the police node provides: installing it at the
    police node publishes a tag set over its whole registry."""
    parties = [p for p in DEFAULT_PARTIES if p[0] in (ASKER, TARGET)]
    doc = fed.sign_and_install(
        convenant_toml(parties, convenant_id="lag-test-tweede"), signers=[ASKER, TARGET]
    )
    path.write_text(json.dumps(doc))


async def _process(out: Outcome, name: str, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    stdout, _ = await proc.communicate()
    out.processes[name] = (proc.returncode or 0, stdout.decode(errors="replace")[-2000:])


async def run(root: Path, *, log_entries: int, import_rows: int) -> Outcome:
    """Set up the federation, then run everything at once; return what was measured."""
    fed = await standard_federation(root)
    try:
        for node in fed.nodes.values():
            # Rounds without pause: far more than the default rate limit lets through; the
            # scenario measures waiting, not the limiter (bench_common does the same).
            node.ctx.limiter = RateLimiter(per_minute=1e12, burst=10**9)
        fed.register(TARGET, {"ref": "JAN-1", "themes": ["veelplegers"], "identifiers": [JAN]})
        grow_log(fed, TARGET, log_entries)
        import_file = root / "import.jsonl"
        write_import(import_file, import_rows)
        convenant_file = root / "tweede.convenant.json"
        second_convenant(fed, convenant_file)
        home = str(fed.nodes[TARGET].home)
        out = Outcome()
        done = asyncio.Event()

        async def probe() -> None:
            loop = asyncio.get_running_loop()
            while not done.is_set():
                start = loop.time()
                await asyncio.sleep(TICK)
                out.lags.append(max(0.0, loop.time() - start - TICK))

        async def rounds() -> None:
            while not done.is_set():
                started = time.perf_counter()
                result = await fed.query(ASKER, [JAN, NOBODY])
                out.round_ms.append((time.perf_counter() - started) * 1000)
                out.rounds.append({p["partner"]: p["status"] for p in result["partners"]})
                await asyncio.sleep(0.05)

        async def verify() -> None:
            while not done.is_set():
                status, body = await fed.api(
                    TARGET, "GET", "/api/v1/audit/verify", role="privacy_officer"
                )
                out.verify.append({"status": status, "ok": body.get("ok")})

        async def admin_work() -> None:
            await asyncio.gather(
                _process(out, "import", "registry", "import", "--home", home, str(import_file)),
                _process(
                    out, "install", "convenant", "install", "--home", home, str(convenant_file)
                ),
            )
            done.set()

        started = time.perf_counter()
        tasks = [asyncio.create_task(t()) for t in (probe, rounds, verify)]
        await admin_work()
        await asyncio.gather(*tasks)
        out.seconds = time.perf_counter() - started
        admin.status(fed.nodes[TARGET].ctx)  # the node's own view still reads
        return out
    finally:
        await fed.close()
