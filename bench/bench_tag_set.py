"""Tag-set build time for a large partner registry: batched import and full rebuild.

Run as ``python bench/bench_tag_set.py`` (``--quick``: 10,000 subjects, a few seconds;
default sizes 100,000 and 1,000,000 — the million takes several minutes and prints
progress).

Two ways a provider's tag set gets built, each measured in its own child process (so
peak RSS belongs to that one phase):

* ``import``: the provider has an installed convenant in which it is a provider (scope:
  all police themes, so every registration is in scope). Registrations from
  ``node.demo.synthetic.iter_bulk_registrations`` are applied in batches of
  ``admin.IMPORT_BATCH`` (20,000) with ``node.flows.publishing.apply_changes``, as
  ``admin.import_registrations`` does: registry upsert, OPRF evaluation of the batch's
  subject keys, reference counts, one published tag-set version and one log append
  per batch. After the import, single-registration pushes (what
  ``PUT /api/v1/registrations/{ref}`` does) are timed on the full set.
* ``rebuild``: the registry is loaded while no convenant is installed (registry rows
  only), then ``admin.install_convenant`` installs it and calls ``tag_sets.rebuild``,
  which evaluates every subject key of the whole registry; a second ``rebuild`` with
  nothing changed is timed too.

Printed: rows/s, total seconds (generation of the synthetic rows separately), peak RSS
(``resource.getrusage``), database size, and the crypto-only bound of the same run:
``oprf.evaluate`` per element (``crypto_bound()``) × the number of distinct subject keys.
``--profile`` adds a cProfile of the first size's import.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import (
    POLICE_THEMES,
    add_node,
    dir_size_mb,
    machine_line,
    peak_rss_mb,
    profile_report,
    profiled,
)
from bench_crypto import crypto_bound

from node.demo.synthetic import iter_bulk_registrations
from node.flows import admin
from node.flows.publishing import apply_changes, rebuild
from node.protocol.registration import Registration
from node.store import tag_sets as tag_store
from tests.federation import CONVENANT_ID, Federation, convenant_toml

PROVIDER = "p01-politie"
REQUESTER = "vh-bench"
BATCH = admin.IMPORT_BATCH


def _federation(root: Path, install_at_provider: bool) -> tuple[Federation, Any]:
    fed = Federation(root)
    add_node(fed, REQUESTER, "veiligheidshuis")
    add_node(fed, PROVIDER, "politie")
    fed.exchange_cards()
    toml = convenant_toml(
        [
            (REQUESTER, "veiligheidshuis", (), True),
            (PROVIDER, "politie", POLICE_THEMES, False),
        ]
    )
    doc = admin.draft_convenant(fed.nodes[REQUESTER].ctx, toml)
    for node in fed.nodes.values():
        doc = admin.sign_convenant(node.ctx, doc.to_json())
    admin.install_convenant(fed.nodes[REQUESTER].ctx, doc.to_json())
    if install_at_provider:
        admin.install_convenant(fed.nodes[PROVIDER].ctx, doc.to_json())
    return fed, doc.to_json()


def _load(ctx: Any, size: int, label: str) -> dict[str, float]:
    """Apply ``size`` synthetic registrations in IMPORT_BATCH batches; time gen and apply."""
    rows = iter_bulk_registrations(size, random.Random(2026))
    gen_s = apply_s = 0.0
    done = 0
    batch_times: list[tuple[int, float]] = []
    next_report = time.perf_counter() + 10
    t_all = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        chunk: list[Registration] = list(islice(rows, BATCH))
        gen_s += time.perf_counter() - t0
        if not chunk:
            break
        t0 = time.perf_counter()
        apply_changes(ctx, chunk, actor="import")
        dt = time.perf_counter() - t0
        apply_s += dt
        done += len(chunk)
        batch_times.append((done, dt))
        if time.perf_counter() >= next_report or done == size:
            elapsed = time.perf_counter() - t_all
            print(
                f"  [{label}] {done:>9,} / {size:,} rows, {elapsed:6.1f} s, last batch "
                f"{dt:.2f} s, RSS peak {peak_rss_mb():.0f} MB",
                flush=True,
            )
            next_report = time.perf_counter() + 10
    first = batch_times[0][1] if batch_times else 0.0
    last = batch_times[-1][1] if batch_times else 0.0
    return {
        "gen_s": gen_s,
        "apply_s": apply_s,
        "first_batch_s": first,
        "last_batch_s": last,
        "batches": len(batch_times),
    }


def _db_mb(ctx: Any) -> tuple[float, float]:
    """(database + WAL as left, main file after a WAL checkpoint) in MB."""
    home = ctx.home
    before = sum(p.stat().st_size for p in home.glob("node.db*")) / 1e6
    ctx.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = (home / "node.db").stat().st_size / 1e6
    try:  # where the bytes are: tables and indexes, largest first (SQLite's dbstat)
        rows = ctx.conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 8"
        ).fetchall()
        print("  largest: " + ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in rows), flush=True)
    except sqlite3.OperationalError:  # SQLite built without dbstat
        pass
    return before, after


async def _sync_phase(fed: Federation, subject: dict[str, Any], profile: bool) -> dict[str, Any]:
    """The requester fetches the provider's whole tag set over HTTP (first query), asks
    again (in sync), then after a one-registration push asks again (a delta of one tag)."""
    await fed.start()
    out: dict[str, Any] = {}
    try:
        for label in ("full", "insync", "delta"):
            if label == "delta":
                reg = next(iter_bulk_registrations(1, random.Random(97)))
                apply_changes(
                    fed.nodes[PROVIDER].ctx,
                    [
                        Registration(
                            ref="PUSH-DELTA", themes=reg.themes, identifiers=reg.identifiers
                        )
                    ],
                )
            rss0 = peak_rss_mb()
            t0 = time.perf_counter()
            with profiled(profile and label == "delta") as prof:
                result = await fed.query(REQUESTER, [subject])
            out[f"sync_{label}_s"] = time.perf_counter() - t0
            out[f"sync_{label}_rss_mb"] = peak_rss_mb() - rss0
            status = {p["partner"]: p["status"] for p in result["partners"]}
            if status.get(PROVIDER) != "hit":
                print(f"  ! {label} query answered {result['partners']}", flush=True)
            if prof is not None:
                print(
                    profile_report(
                        pstats.Stats(prof),
                        top=15,
                        title=(
                            "query after a one-registration push (requester fetches a delta "
                            "of one tag; both nodes in this process)"
                        ),
                    ),
                    flush=True,
                )
    finally:
        await fed.close()
    return out


def child_import(size: int, profile: bool, sync: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tagset-import-") as tmp:
        fed, _ = _federation(Path(tmp), install_at_provider=True)
        ctx = fed.nodes[PROVIDER].ctx
        rss0 = peak_rss_mb()
        t0 = time.perf_counter()
        with profiled(profile) as prof:
            timing = _load(ctx, size, "import")
        total = time.perf_counter() - t0
        head = tag_store.head(ctx.conn, CONVENANT_ID)
        # Single-registration pushes on the full set (PUT /api/v1/registrations/{ref}).
        push: list[float] = []
        for i, reg in enumerate(iter_bulk_registrations(5, random.Random(99))):
            one = Registration(ref=f"PUSH-{i}", themes=reg.themes, identifiers=reg.identifiers)
            t1 = time.perf_counter()
            apply_changes(ctx, [one], actor="push")
            push.append(time.perf_counter() - t1)
        push_prof = None
        if profile:  # where a one-registration push spends its time on the full set
            reg = next(iter_bulk_registrations(1, random.Random(98)))
            one = Registration(ref="PUSH-PROFILED", themes=reg.themes, identifiers=reg.identifiers)
            with profiled(True) as push_prof:
                apply_changes(ctx, [one], actor="push")
        db_mb, db_ckpt_mb = _db_mb(ctx)
        out = {
            "mode": "import",
            "size": size,
            "total_s": total,
            **timing,
            "keys": head.count,
            "versions": head.version,
            "rss0_mb": rss0,
            "peak_rss_mb": peak_rss_mb(),
            "db_mb": db_mb,
            "db_ckpt_mb": db_ckpt_mb,
            "home_mb": dir_size_mb(ctx.home),
            "push_ms_median": statistics.median(push) * 1000,
            "push_ms_max": max(push) * 1000,
        }
        if sync:
            print("  [sync] requester fetches the whole tag set over HTTP ...", flush=True)
            first = next(iter_bulk_registrations(1, random.Random(2026)))
            subject = first.identifiers[0].model_dump(mode="json", exclude_none=True)
            out.update(asyncio.run(_sync_phase(fed, subject, profile)))
            out["peak_rss_after_sync_mb"] = peak_rss_mb()
        for node in fed.nodes.values():
            node.ctx.close()
        if prof is not None:
            print(
                profile_report(
                    pstats.Stats(prof), title=f"import of {size:,} rows (including generating them)"
                ),
                flush=True,
            )
        if push_prof is not None:
            print(
                profile_report(
                    pstats.Stats(push_prof), top=12, title=f"one-registration push on {size:,} rows"
                ),
                flush=True,
            )
        return out


def child_rebuild(size: int, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tagset-rebuild-") as tmp:
        fed, doc_json = _federation(Path(tmp), install_at_provider=False)
        ctx = fed.nodes[PROVIDER].ctx
        t0 = time.perf_counter()
        timing = _load(ctx, size, "registry only")
        load_s = time.perf_counter() - t0
        rss_before = peak_rss_mb()
        print("  [rebuild] installing the convenant: rebuild of the whole registry ...", flush=True)
        t0 = time.perf_counter()
        with profiled(profile) as prof:
            conv = admin.install_convenant(ctx, doc_json)
        rebuild_s = time.perf_counter() - t0
        rss_after = peak_rss_mb()
        head = tag_store.head(ctx.conn, CONVENANT_ID)
        t0 = time.perf_counter()
        unchanged = rebuild(ctx, conv)
        again_s = time.perf_counter() - t0
        db_mb, db_ckpt_mb = _db_mb(ctx)
        out = {
            "mode": "rebuild",
            "size": size,
            "registry_load_s": load_s,
            "registry_gen_s": timing["gen_s"],
            "registry_apply_s": timing["apply_s"],
            "total_s": rebuild_s,
            "rebuild_again_s": again_s,
            "rebuild_again_published": unchanged,
            "keys": head.count,
            "peak_rss_before_mb": rss_before,
            "peak_rss_mb": rss_after,
            "db_mb": db_mb,
            "db_ckpt_mb": db_ckpt_mb,
        }
        for node in fed.nodes.values():
            node.ctx.close()
        if prof is not None:
            print(
                profile_report(pstats.Stats(prof), title=f"rebuild over {size:,} rows"), flush=True
            )
        return out


def run_child(mode: str, size: int, profile: bool, sync: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--size", str(size)]
    if profile:
        cmd.append("--profile")
    if not sync:
        cmd.append("--no-sync")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
        else:
            print(line, end="", flush=True)
    if proc.wait() != 0 or result is None:
        raise SystemExit(f"child {mode} {size} failed (exit {proc.returncode})")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10,000 subjects only")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument(
        "--modes", nargs="+", choices=("import", "rebuild"), default=["import", "rebuild"]
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the first size")
    ap.add_argument(
        "--no-sync",
        dest="sync",
        action="store_false",
        help="skip the requester's tag-set fetch after the import",
    )
    ap.add_argument("--child", choices=("import", "rebuild"), help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child == "import":
            res = child_import(args.size, args.profile, args.sync)
        else:
            res = child_rebuild(args.size, args.profile)
        print("RESULT " + json.dumps(res), flush=True)
        return
    sizes = args.sizes or ([10_000] if args.quick else [100_000, 1_000_000])
    sizes = [max(1, min(s, 20_000_000)) for s in sizes]
    print(f"bench_tag_set — {machine_line()}")
    prims = crypto_bound(0.02 if args.quick else 0.3)
    per_eval = 1 / prims["evaluate_per_element"]
    print(
        f"crypto measured in this run: oprf.evaluate {per_eval * 1e6:.1f} µs per element "
        f"({prims['evaluate_per_element']:,.0f}/s on one core); batches of {BATCH:,} rows; "
        "one process, one core (SQLite and the OPRF run in the same thread)"
    )
    results = []
    for i, size in enumerate(sizes):
        for mode in args.modes:
            print(f"# {mode}, {size:,} registrations", flush=True)
            r = run_child(mode, size, args.profile and i == 0, args.sync)
            results.append(r)
            bound = r["keys"] * per_eval
            if mode == "import":
                print(
                    f"  import {size:,} rows: {r['total_s']:.1f} s total "
                    f"({size / r['total_s']:,.0f} rows/s), of which generating the synthetic "
                    f"rows {r['gen_s']:.1f} s and apply_changes {r['apply_s']:.1f} s "
                    f"({size / r['apply_s']:,.0f} rows/s); {r['keys']:,} distinct subject "
                    f"keys = tags; crypto bound {bound:.1f} s "
                    f"(apply_changes = {r['apply_s'] / bound:.1f}x bound)\n"
                    f"  batches: {r['batches']}, first {r['first_batch_s']:.2f} s, last "
                    f"{r['last_batch_s']:.2f} s; peak RSS {r['peak_rss_mb']:.0f} MB (before "
                    f"import {r['rss0_mb']:.0f} MB); database {r['db_mb']:.0f} MB incl. WAL, "
                    f"{r['db_ckpt_mb']:.0f} MB after checkpoint\n"
                    f"  one-registration push on the full set: median "
                    f"{r['push_ms_median']:.0f} ms, max {r['push_ms_max']:.0f} ms "
                    f"(crypto bound for its at most 3 keys {3 * per_eval * 1000:.2f} ms)",
                    flush=True,
                )
                if "sync_full_s" in r:
                    print(
                        f"  requester's first query = full tag-set fetch over HTTP of "
                        f"{r['keys']:,} tags: {r['sync_full_s']:.1f} s "
                        f"(+{r['sync_full_rss_mb']:.0f} MB peak RSS, both nodes in one "
                        f"process); next query in sync: "
                        f"{r['sync_insync_s'] * 1000:.0f} ms; query after a one-registration "
                        f"push (delta of one tag): {r['sync_delta_s'] * 1000:.0f} ms",
                        flush=True,
                    )
            else:
                print(
                    f"  registry-only load {size:,} rows: {r['registry_load_s']:.1f} s "
                    f"(apply_changes {r['registry_apply_s']:.1f} s, "
                    f"{size / r['registry_apply_s']:,.0f} rows/s)\n"
                    f"  install + rebuild: {r['total_s']:.1f} s ({size / r['total_s']:,.0f} "
                    f"rows/s, {r['keys'] / r['total_s']:,.0f} keys/s); {r['keys']:,} keys; "
                    f"crypto bound {bound:.1f} s (rebuild = {r['total_s'] / bound:.1f}x bound)"
                    f"\n  rebuild again, nothing changed: {r['rebuild_again_s']:.1f} s "
                    f"(published: {r['rebuild_again_published']})\n"
                    f"  peak RSS {r['peak_rss_mb']:.0f} MB (before the rebuild "
                    f"{r['peak_rss_before_mb']:.0f} MB); database {r['db_mb']:.0f} MB incl. "
                    f"WAL, {r['db_ckpt_mb']:.0f} MB after checkpoint",
                    flush=True,
                )
    print("summary (JSON): " + json.dumps(results))


if __name__ == "__main__":
    main()
