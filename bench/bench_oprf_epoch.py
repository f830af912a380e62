"""What an OPRF key epoch change costs a provider (docs/protocol.md §6.1.1).

Run as ``python bench/bench_oprf_epoch.py`` (``--quick``: 10,000 registrations; default
sizes 100,000 and 1,000,000 — the million takes several minutes).

Per size, in a child process of its own (so peak RSS is that size's): the provider's
registry is loaded without a convenant, the convenant is installed (its tag set built
under epoch 0), then ``key_epochs.change_epoch`` moves it to epoch 1, as the running
node's schedule does. Printed beside the crypto-only bound of the same run
(``oprf.evaluate`` per element × the subject keys in scope):

* ``change s``: the whole change (its OPRF runs in worker threads, outside the lock);
* ``chunk writes``: the small write jobs that add each chunk's rows to the new set
  (count, their total, the longest: how long an answer may wait behind one);
* ``switch s``: the one write job that publishes the new set (digest over every bucket,
  the version, the epoch) — the longest an answer waits, once per epoch;
* peak RSS during the change, database size after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import machine_line, peak_rss_mb
from bench_crypto import crypto_bound
from bench_tag_set import PROVIDER, _db_mb, _federation, _load

from node.flows import admin, key_epochs, publishing
from node.store import oprf_epochs
from node.store import tag_sets as tag_store
from tests.federation import CONVENANT_ID


def child(size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-oprf-epoch-") as tmp:
        fed, doc_json = _federation(Path(tmp), install_at_provider=False)
        ctx = fed.nodes[PROVIDER].ctx
        _load(ctx, size, "registry only")
        print("  installing the convenant (epoch 0 set) ...", flush=True)
        conv = admin.install_convenant(ctx, doc_json)
        before = tag_store.head(ctx.conn, CONVENANT_ID)
        switch: list[float] = []
        chunks: list[float] = []

        def timed(fn: Any, into: list[float]) -> Any:
            def run(*args: Any, **kwargs: Any) -> Any:
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    into.append(time.perf_counter() - t)

            return run

        key_epochs.finish_epoch = timed(publishing.finish_epoch, switch)  # type: ignore[attr-defined]
        key_epochs.stage_chunk = timed(publishing.stage_chunk, chunks)  # type: ignore[attr-defined]
        rss0 = peak_rss_mb()
        print("  changing to epoch 1 ...", flush=True)
        t0 = time.perf_counter()
        changed = asyncio.run(key_epochs.change_epoch(ctx, conv, 1))
        total = time.perf_counter() - t0
        after = tag_store.head(ctx.conn, CONVENANT_ID)
        db_mb, db_ckpt_mb = _db_mb(ctx)
        out = {
            "size": size,
            "keys": after.count,
            "epoch": oprf_epochs.current(ctx.conn, CONVENANT_ID).epoch,
            "changed": changed is not None,
            "versions": [before.version, after.version],
            "change_s": total,
            "switch_s": switch[0] if switch else None,
            "chunks": len(chunks),
            "chunk_writes_s": sum(chunks),
            "chunk_max_s": max(chunks, default=0.0),
            "peak_rss_before_mb": rss0,
            "peak_rss_mb": peak_rss_mb(),
            "db_mb": db_mb,
            "db_ckpt_mb": db_ckpt_mb,
        }
        for node in fed.nodes.values():
            node.ctx.close()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10,000 registrations only")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print("RESULT " + json.dumps(child(args.child)), flush=True)
        return
    sizes = args.sizes or ([10_000] if args.quick else [100_000, 1_000_000])
    print(machine_line(), flush=True)
    rate = crypto_bound()["evaluate_per_element"]
    print(f"crypto this run: oprf.evaluate {1e6 / rate:.1f} µs per element", flush=True)
    print(
        "| registrations | subject keys | change s | crypto bound s | × bound | chunk writes "
        "(count, total s, longest s) | switch s (one write job) | peak RSS MB | DB MB (incl. "
        "WAL / after checkpoint) |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for size in sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        r = json.loads(line.removeprefix("RESULT "))
        bound = r["keys"] / rate
        print(
            f"| {size:,} | {r['keys']:,} | {r['change_s']:.1f} | {bound:.1f} | "
            f"{r['change_s'] / bound:.2f} | {r['chunks']}, {r['chunk_writes_s']:.1f}, "
            f"{r['chunk_max_s']:.3f} | {r['switch_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['db_mb']:.0f} / {r['db_ckpt_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
