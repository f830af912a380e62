"""The transparency log: appends per second, proofs, and verifying a log of 1,000,000 entries.

Run as ``python bench/bench_log.py`` (about 3 minutes: it builds logs of 10^3, 10^5 and
10^6 entries) or ``--quick`` (10^3 and 10^4, a few seconds; ``--quick --sizes 1000000``
adds the 10^6 verify to a quick run). Everything goes to real
SQLite files opened the way the node opens them (``node.store.db.connect``: WAL,
synchronous=NORMAL) in a temporary directory, removed afterwards.

Printed, each beside the bound measured in the same run:

* group-commit appends per second, durable (``BEGIN IMMEDIATE``, one
  ``log.append_entries`` per job, one ``log.seal`` — one signed head — and one COMMIT
  per group; WAL, synchronous=NORMAL as the node runs), for groups of 1, 10, 100 and
  1,000 jobs of one entry and of 100 jobs of 10 entries, without and with a concurrent
  reader (another process reading heads and inclusion proofs in a loop). Bounds, same
  run: the CPU the log cannot avoid (canonical body + leaf hash + the subtree hashes
  per entry, measured on the same entries, plus one head signed per group) and the raw
  SQLite rate of the same rows (the same INSERTs, grouping and COMMITs, nothing
  computed); the combined bound is both costs added, what one writer thread can reach;
* one entry per append on top of the largest log (appends must not slow down as it
  grows);
* ``log.inclusion_proof`` and ``log.consistency_proof`` (from SQLite, including the check
  against our own signed head) and ``merkle.verify_inclusion`` /
  ``merkle.verify_consistency`` at each log size, random positions. Bound: the proof's
  length in SHA-256 of 64 bytes (what verification must hash);
* ``log.verify`` of the largest log, built in commit groups of 1,000 entries (100 jobs
  of 10: 1,000 signed heads at 10^6). Bound: per entry one SHA-256 of its body and one
  of 64 bytes (the subtree it completes on average), per head one Ed25519 verification;
  and the cost per head measured separately, to extrapolate a log with a head after every entry.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.signing
import rfc8785

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.protocol import jws, merkle
from node.store import db, log

NODE = "node-politie-amsterdam"
PSEUDONYM_KEY = bytes(range(32))
BUILD_GROUP = 1_000  # entries per commit group when building the logs
BUILD_JOB = 10  # entries per append_entries call


def seconds_per_call(fn: Callable[[], object], budget: float, min_calls: int = 3) -> float:
    """Mean wall time of ``fn`` over repeated calls filling about ``budget`` seconds."""
    fn()
    calls, start = 0, time.perf_counter()
    now = start
    while now < start + budget or calls < min_calls:
        fn()
        calls += 1
        now = time.perf_counter()
    return (now - start) / calls


def hash_cost(data: bytes, rounds: int = 200_000) -> float:
    """Seconds per SHA-256 of ``data``, in a tight loop (no call overhead of our own)."""
    sha256 = hashlib.sha256
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(rounds):
            sha256(data).digest()
        best = min(best, time.perf_counter() - t0)
    return best / rounds


def entry(i: int) -> log.LogEntry:
    """A typical partner-side entry: one evaluation answered under a convenant."""
    return log.LogEntry(
        kind="bekendheid.evaluated",
        trace_id=f"0f9c2b1e-7d4a-4c55-9e1b-{i:012d}",
        convenant_id="conv-veelplegers-amsterdam",
        convenant_version=3,
        purpose="casusoverleg",
        actor="coordinator-17",
        counterparty="node-vh-amsterdam",
        subjects=(),
        outcome="evaluated",
        reason=None,
        data={"case_ref": f"ZVH-2026-{i:06d}", "elements": 1 + i % 4, "rule": "scope-veelplegers",
              "tag_set_version": 41},
    )  # fmt: skip


def append_rate(conn: sqlite3.Connection, key: nacl.signing.SigningKey, batch: int,
                budget: float, start: int) -> tuple[float, int]:  # fmt: skip
    """Entries per second appended ``batch`` per transaction for about ``budget`` s."""
    n, t0 = 0, time.perf_counter()
    now = t0
    while now < t0 + budget:
        entries = [entry(start + n + i) for i in range(batch)]
        with db.tx(conn):
            log.append(conn, key, NODE, entries, datetime.now(UTC))
        n += batch
        now = time.perf_counter()
    return n / (now - t0), n


def build(path: Path, key: nacl.signing.SigningKey, size: int) -> tuple[sqlite3.Connection, float]:
    conn = db.connect(path)
    t0 = time.perf_counter()
    for start in range(0, size, BUILD_GROUP):
        end = min(size, start + BUILD_GROUP)
        now = datetime.now(UTC)
        with db.tx(conn):
            for job in range(start, end, BUILD_JOB):
                log.append_entries(
                    conn, NODE, [entry(i) for i in range(job, min(end, job + BUILD_JOB))], now
                )
            log.seal(conn, key, NODE, now)
    return conn, time.perf_counter() - t0


def group_rate(conn: sqlite3.Connection, key: nacl.signing.SigningKey, jobs: int, per_job: int,
               budget: float, start: int) -> tuple[float, float, int]:  # fmt: skip
    """Entries/s appended in commit groups of ``jobs`` × ``per_job`` entries, one head and
    one COMMIT per group, for about ``budget`` s; and the CPU share of this process."""
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    now = t0
    while now < t0 + budget:
        made = [[entry(start + n + j * per_job + i) for i in range(per_job)] for j in range(jobs)]
        stamp = datetime.now(UTC)
        with db.tx(conn):
            for job in made:
                log.append_entries(conn, NODE, job, stamp)
            log.seal(conn, key, NODE, stamp)
        n += jobs * per_job
        now = time.perf_counter()
    return n / (now - t0), (time.process_time() - c0) / (now - t0), n


def cpu_per_entry(count: int) -> float:
    """Seconds per entry of what append_entries must compute: the canonical body, its leaf
    hash and the subtrees it completes (the same entries, the same frontier)."""
    made = [entry(i) for i in range(count)]
    frontier = merkle.Frontier()
    prev, stamp = bytes(32), "2026-11-23T17:03:00Z"
    t0 = time.perf_counter()
    for seq, e in enumerate(made):
        prev = merkle.leaf_hash(log._canonical_body(e, seq, prev, stamp, NODE))
        frontier.push(prev)
    return (time.perf_counter() - t0) / count


def head_cost(key: nacl.signing.SigningKey, budget: float) -> float:
    """Seconds to sign one tree head and serialise it as stored (what seal adds per group)."""
    root = os.urandom(32)

    def one() -> str:
        payload = {"node": NODE, "tree_size": 123_456, "root_hash": jws.b64u_encode(root),
                   "signed_at": "2026-11-23T17:03:00Z"}  # fmt: skip
        return jws.canonical(jws.sign(log.TREE_HEAD_TYP, payload, key).to_json()).decode()

    return seconds_per_call(one, budget)


def raw_sqlite_rate(path: Path, body_text: str, jobs: int, per_job: int, budget: float
                    ) -> float:  # fmt: skip
    """Entries/s of the same INSERTs with nothing computed: prepared rows (entries with a
    real body, the subtrees they complete, one head per group), one executemany per job
    and table, frontier rows and one COMMIT per group, in a file opened like the node's."""
    conn = db.connect(path)
    group = jobs * per_job
    frontier = merkle.Frontier()
    seqs = 200_000
    entry_rows, node_rows = [], []
    for seq in range(seqs):
        h = hashlib.sha256(seq.to_bytes(8, "big")).digest()
        entry_rows.append((seq, body_text, h, "bekendheid.evaluated", "2026-11-23T17:03:00Z",
                           f"0f9c2b1e-7d4a-4c55-9e1b-{seq:012d}", "conv-veelplegers-amsterdam",
                           "node-vh-amsterdam"))  # fmt: skip
        node_rows.append(frontier.push(h))
    jws_text = "x" * 520
    n, t0 = 0, time.perf_counter()
    now = t0
    while now < t0 + budget and n + group <= seqs:
        with db.tx(conn):
            for j in range(n, n + group, per_job):
                conn.executemany(
                    "INSERT INTO log_entries"
                    " (seq, body, leaf_hash, kind, time, trace_id, convenant_id, counterparty)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    entry_rows[j : j + per_job],
                )
                done = [r for rows in node_rows[j : j + per_job] for r in rows]
                if done:
                    conn.executemany(
                        "INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", done
                    )
            conn.executemany(
                "INSERT OR REPLACE INTO log_frontier (level, hash) VALUES (?, ?)",
                [(0, bytes(32)), (1, bytes(32))],
            )
            conn.execute(
                "INSERT INTO tree_heads (tree_size, root_hash, signed_at, jws) VALUES (?, ?, ?, ?)",
                (n + group, bytes(32), "2026-11-23T17:03:00Z", jws_text),
            )
        n += group
        now = time.perf_counter()
    conn.close()
    return n / (now - t0)


def reader(path: str, stop: Any) -> None:
    """A concurrent reader in its own process (no shared GIL): heads and inclusion proofs,
    each in its own read transaction, as the node's read connections serve them."""
    conn = db.connect(Path(path))
    rng = random.Random(7)
    while not stop.is_set():
        head = log.latest_head(conn)
        if head is not None and head.tree_size > 1:
            log.inclusion_proof(conn, rng.randrange(head.tree_size), head.tree_size)
    conn.close()


def table_mb(conn: sqlite3.Connection, name: str) -> float:
    """Size of one table's b-tree (needs SQLite's dbstat, present in CPython's builds)."""
    try:
        r = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        return float("nan")
    return float(r[0] or 0) / 1e6


def row(what: str, value: str, bound: str, ratio: str = "") -> None:
    print(f"  {what:<52} {value:>16} {bound:>18} {ratio:>8}")


def proof_figures(
    conn: sqlite3.Connection, size: int, rng: random.Random, budget: float, t_sha64: float
) -> None:
    """Generate and verify inclusion and consistency proofs at random positions."""
    top = log.latest_head(conn)
    assert top is not None
    assert top.tree_size == size
    seqs = [rng.randrange(size) for _ in range(2000)]
    leaf_hashes = {
        s: bytes(
            conn.execute("SELECT leaf_hash FROM log_entries WHERE seq = ?", (s,)).fetchone()[0]
        )
        for s in seqs
    }
    it = itertools.cycle(seqs)
    gen_incl = seconds_per_call(lambda: log.inclusion_proof(conn, next(it), size), budget)
    proofs = [(s, log.inclusion_proof(conn, s, size)) for s in seqs[:200]]
    plen = statistics.mean(len(p) for _, p in proofs)
    assert all(
        merkle.verify_inclusion(leaf_hashes[s], s, size, p, top.root_hash) for s, p in proofs
    )
    k = itertools.cycle(proofs)

    def verify_one_inclusion() -> bool:
        s, p = next(k)
        return merkle.verify_inclusion(leaf_hashes[s], s, size, p, top.root_hash)

    t_ver_incl = seconds_per_call(verify_one_inclusion, budget)

    # Consistency from older signed heads (what a peer holds: here every 10,000 entries)
    # and from random sizes (no head there, so no self-check against one).
    head_sizes = [r[0] for r in conn.execute("SELECT tree_size FROM tree_heads")]
    older = [h for h in head_sizes if 0 < h < size]
    olds = [rng.choice(older) if older else rng.randrange(1, size) for _ in range(50)]
    olds += [rng.randrange(1, size) for _ in range(50)]
    o = itertools.cycle(olds)
    gen_cons = seconds_per_call(lambda: log.consistency_proof(conn, next(o), size), budget)
    cproofs = [
        (m, log.subtree_hash(conn, 0, m), log.consistency_proof(conn, m, size)) for m in olds[50:]
    ]
    clen = statistics.mean(len(p) for _, _, p in cproofs)
    assert all(merkle.verify_consistency(m, size, r, top.root_hash, p) for m, r, p in cproofs)
    c = itertools.cycle(cproofs)

    def verify_one_consistency() -> bool:
        m, root_m, p = next(c)
        return merkle.verify_consistency(m, size, root_m, top.root_hash, p)

    t_ver_cons = seconds_per_call(verify_one_consistency, budget)
    # verification hashes each proof element once (consistency: plus the old root again)
    print(f"  {'':<52} {'measured':>16} {'bound':>18} {'× bound':>8}")
    row(f"inclusion proof, generate (avg {plen:.1f} hashes)", f"{gen_incl * 1e6:.0f} µs", "")
    row("inclusion proof, verify", f"{t_ver_incl * 1e6:.1f} µs",
        f"{plen * t_sha64 * 1e6:.1f} µs", f"{t_ver_incl / (plen * t_sha64):.1f}")  # fmt: skip
    row(f"consistency proof, generate (avg {clen:.1f} hashes)", f"{gen_cons * 1e6:.0f} µs", "")
    row("consistency proof, verify", f"{t_ver_cons * 1e6:.1f} µs",
        f"{(clen + 1) * t_sha64 * 1e6:.1f} µs",
        f"{t_ver_cons / ((clen + 1) * t_sha64):.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 entries, seconds")
    parser.add_argument("--sizes", type=int, nargs="+", help="log sizes to build (the last"
                        " one is verified)")  # fmt: skip
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000]
    if args.sizes:
        sizes = sorted(args.sizes)
    budget = 0.3 if args.quick else 2.0
    rng = random.Random(9162)
    key = nacl.signing.SigningKey.generate()
    pub = bytes(key.verify_key)
    print(
        f"bench_log — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )

    with tempfile.TemporaryDirectory(prefix="bench_log_") as tmp:
        tmpdir = Path(tmp)

        # --- bounds, this run ------------------------------------------------------------
        sample = db.connect(tmpdir / "sample.db")
        with db.tx(sample):
            log.append(sample, key, NODE, [entry(123_456)], datetime.now(UTC))
        body_text = sample.execute("SELECT body FROM log_entries").fetchone()[0]
        body = json.loads(body_text)
        head = log.latest_head(sample)
        assert head is not None
        head_json = json.loads(head.jws)
        sample.close()
        raw = body_text.encode()
        b64 = os.urandom(64)
        signed = key.sign(b"x" * 200)
        t_sha64 = hash_cost(b64)
        t_sha_body = hash_cost(raw)
        t_json = seconds_per_call(lambda: json.loads(raw), budget)
        t_sign = seconds_per_call(lambda: key.sign(b"x" * 200), budget)
        t_verify = seconds_per_call(
            lambda: key.verify_key.verify(signed.message, signed.signature), budget
        )
        t_jcs = seconds_per_call(lambda: jws.canonical(body), budget)
        t_rfc8785 = seconds_per_call(lambda: rfc8785.dumps(body), budget)
        t_head = seconds_per_call(lambda: log.check_head(head_json, NODE, pub), budget)
        print("\nbounds (same run):")
        row("SHA-256 of 64 bytes", f"{t_sha64 * 1e6:.2f} µs", f"{1 / t_sha64:,.0f}/s")
        row(f"SHA-256 of a typical entry body ({len(raw)} B)", f"{t_sha_body * 1e6:.2f} µs",
            f"{1 / t_sha_body:,.0f}/s")  # fmt: skip
        row("json.loads of that body (not a bound: verify's parse)", f"{t_json * 1e6:.2f} µs",
            f"{1 / t_json:,.0f}/s")  # fmt: skip
        row("Ed25519 sign (pynacl)", f"{t_sign * 1e6:.1f} µs", f"{1 / t_sign:,.0f}/s")
        row("Ed25519 verify (pynacl)", f"{t_verify * 1e6:.1f} µs", f"{1 / t_verify:,.0f}/s")
        row("RFC 8785 canonicalisation of that entry (jws.canonical)", f"{t_jcs * 1e6:.1f} µs",
            f"{1 / t_jcs:,.0f}/s")  # fmt: skip
        row("  the same with the rfc8785 package alone", f"{t_rfc8785 * 1e6:.1f} µs",
            f"{1 / t_rfc8785:,.0f}/s")  # fmt: skip
        row("check_head: parse + verify one signed tree head", f"{t_head * 1e6:.1f} µs",
            f"{1 / t_head:,.0f}/s")  # fmt: skip

        # --- group-commit appends --------------------------------------------------------
        t_entry = cpu_per_entry(20_000)
        t_seal = head_cost(key, budget)
        print(f"\n  CPU per entry (canonical body + leaf hash + subtrees) {t_entry * 1e6:.2f} µs;"
              f" one head signed and serialised {t_seal * 1e6:.1f} µs")  # fmt: skip
        print("\ngroup-commit appends, durable (entries/s; one head + one COMMIT per group):")
        print(f"  {'group':<30} {'measured':>10} {'cpu':>5} {'CPU bd':>10} {'SQLite bd':>10}"
              f" {'both bd':>10} {'× both':>7}")  # fmt: skip
        start, case = 0, 0
        shapes = [(1, 1), (10, 1), (100, 1), (1000, 1), (100, 10)]
        ctx = multiprocessing.get_context("spawn")
        for with_reader in (False, True):
            fresh_path = tmpdir / f"appends_{with_reader}.db"
            fresh = db.connect(fresh_path)
            with db.tx(fresh):
                log.append(fresh, key, NODE, [entry(0)], datetime.now(UTC))
            start = 1
            stop = ctx.Event()
            proc = None
            if with_reader:
                proc = ctx.Process(target=reader, args=(str(fresh_path), stop))
                proc.start()
                time.sleep(1.0)  # let it import and start reading
            for jobs, per_job in shapes:
                rate, cpu, n = group_rate(fresh, key, jobs, per_job, budget * 2, start)
                start += n
                group = jobs * per_job
                cpu_bound = 1 / (t_entry + t_seal / group)
                sql_bound = raw_sqlite_rate(tmpdir / f"raw_{case}.db", body_text, jobs, per_job,
                                            budget)  # fmt: skip
                case += 1
                both = 1 / (1 / cpu_bound + 1 / sql_bound)
                label = f"{jobs:,} job{'s' if jobs > 1 else ''} × {per_job}"
                label += " + reader" if with_reader else ""
                print(f"  {label:<30} {rate:>9,.0f}/s {cpu:>5.0%} {cpu_bound:>9,.0f}/s"
                      f" {sql_bound:>9,.0f}/s {both:>9,.0f}/s {both / rate:>7.1f}")  # fmt: skip
            if proc is not None:
                stop.set()
                proc.join()
            assert log.verify(fresh, NODE, pub).ok
            fresh.close()
        print("  (cpu: this process's CPU time over the wall time; the raw SQLite rate runs"
              " without the reader)")  # fmt: skip

        # --- logs of each size: proofs ---------------------------------------------------
        largest: sqlite3.Connection | None = None
        for size in sizes:
            conn, took = build(tmpdir / f"log_{size}.db", key, size)
            nodes = conn.execute("SELECT count(*) FROM log_nodes").fetchone()[0]
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            mb = (tmpdir / f"log_{size}.db").stat().st_size / 1e6
            print(f"\nlog of {size:,} entries: built in {took:.1f} s ({size / took:,.0f}/s, "
                  f"groups of {min(size, BUILD_GROUP):,}); file {mb:.0f} MB, of which "
                  f"log_nodes ({nodes:,} rows) {table_mb(conn, 'log_nodes'):.1f} MB and "
                  f"log_entries {table_mb(conn, 'log_entries'):.0f} MB")  # fmt: skip
            proof_figures(conn, size, rng, budget, t_sha64)
            if largest is not None:
                largest.close()
            largest = conn

        # --- the largest log: appends on top, then verify ------------------------------------
        assert largest is not None
        size = sizes[-1]
        rate, n = append_rate(largest, key, 1, budget * 2, size)
        bound = 1 / (t_sign + t_jcs + 2 * t_sha64)
        print(f"\nappends on top of the {size:,}-entry log, 1 entry per append:")
        row(f"1 entry per append ({n:,} entries)", f"{rate:,.0f}/s", f"{bound:,.0f}/s",
            f"{bound / rate:.1f}")  # fmt: skip
        total = size + n
        heads = largest.execute("SELECT count(*) FROM tree_heads").fetchone()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        report = log.verify(largest, NODE, pub)
        took, cpu_took = time.perf_counter() - t0, time.process_time() - c0
        assert report.ok, report.problems
        assert report.entries == total
        largest.close()
        bound_s = total * (t_sha_body + t_sha64) + heads * t_verify
        print(f"\nverify() of the log of {total:,} entries and {heads:,} signed heads:")
        print(f"  {'':<52} {'measured':>16} {'bound':>18} {'× bound':>8}")
        row("log.verify", f"{took:.1f} s", f"{bound_s:.2f} s", f"{took / bound_s:.1f}")
        row("  its CPU time", f"{cpu_took:.1f} s", "", "")
        row("  per entry", f"{took / total * 1e6:.1f} µs",
            f"{(t_sha_body + t_sha64) * 1e6:.2f} µs", "")  # fmt: skip
        row("  per entry, with json.loads of the body added to the bound", "",
            f"{(t_sha_body + t_sha64 + t_json) * 1e6:.2f} µs",
            f"{took / total / (t_sha_body + t_sha64 + t_json):.1f}")  # fmt: skip
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  peak RSS of this process so far: {rss:.0f} MB (verify streams the log)")
        print(
            f"  a log with a signed head after every entry would add ≈{total * t_head:.0f} s "
            f"({total:,} × check_head {t_head * 1e6:.0f} µs; Ed25519 verify alone "
            f"{total * t_verify:.0f} s)"
        )


if __name__ == "__main__":
    main()
