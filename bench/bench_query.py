"""Latency of one bekendheid query fanned out from a requester to N partner nodes.

Run as ``python bench/bench_query.py`` (``--quick`` for a smoke run of a few seconds).

For N = 5, 10 and 20 partners, each holding ``--registrations`` (2,000) police-style
registrations in scope of one convenant, a coordinator asks the requester node's
``POST /api/v1/bekendheid`` about one subject and about a family of 4, ``--rounds``
(200) times each, after a warm-up round that brings the requester's copies of all tag
sets up to date. Printed per case: p50/p99/mean/max latency in ms, CPU ms per round, and
the crypto-only bound of the same run: what the protocol's own cryptography costs per
round on one core (per partner: requester blind + finalize, partner blind_evaluate,
one Ed25519 sign and one verify on each side), measured right here.

Two layouts:

* in-process (default): every node is a real aiohttp server on 127.0.0.1 with its own
  keys and SQLite file (tests/federation.py), but all share ONE Python process and ONE
  event loop, so the whole federation runs on one core of this 2-core machine;
* processes (default too; ``--no-processes`` skips it): every node, requester included,
  is its own ``python -m node serve --home ...`` process; the bench process is only the
  coordinator's HTTP client. N+1 processes share the machine's cores.

``--profile`` adds a cProfile of the in-process family query at the largest N, grouped
into crypto / sqlite / json / pydantic / aiohttp / node code.
Every node is given limits far above the bench's load: the per-requester token bucket
(600 evaluations/min by default) would otherwise refuse after the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import aiohttp
from bench_common import (
    POLICE_THEMES,
    CryptoCounter,
    NodeProcesses,
    add_node,
    cpu_seconds_pid,
    cpu_seconds_self,
    machine_busy_seconds,
    machine_line,
    partner_ids,
    percentile,
    profile_report,
    profiled,
    protocol_crypto_costs,
)
from bench_crypto import crypto_bound

from node.demo.synthetic import iter_bulk_registrations, make_bsn
from node.flows.publishing import apply_changes
from node.protocol.identifiers import AddressIdentifier, BsnIdentifier, PersonIdentifier
from tests.federation import PURPOSE, Federation, convenant_toml

REQUESTER = "vh-bench"
CONVENANT = "vh-test-veelplegers"
QUERY_PATH = "/api/v1/bekendheid"


def _subject_json(identifier: Any) -> dict[str, Any]:
    return dict(identifier.model_dump(mode="json", exclude_none=True))


def build_federation(
    root: Path, n_partners: int, registrations: int, seed: int
) -> tuple[Federation, list[dict[str, Any]], list[dict[str, Any]], dict[str, set[str]]]:
    """Requester + N partners, convenant installed everywhere, registries loaded.

    Returns the federation, the single subject, the family of 4, and per query the set
    of partners that must answer hit (all others must answer no_hit).
    """
    fed = Federation(root)
    add_node(fed, REQUESTER, "veiligheidshuis")
    partners = partner_ids(n_partners)
    for node_id, org in partners:
        add_node(fed, node_id, org)
    fed.exchange_cards()
    parties = [(REQUESTER, "veiligheidshuis", (), True)] + [
        (node_id, org, POLICE_THEMES, False) for node_id, org in partners
    ]
    fed.sign_and_install(convenant_toml(parties))
    regs_by_partner = {}
    for i, (node_id, _) in enumerate(partners):
        regs = list(iter_bulk_registrations(registrations, random.Random(seed + i)))
        apply_changes(fed.nodes[node_id].ctx, regs, actor="bench")
        regs_by_partner[node_id] = regs

    def first(node_id: str, kind: type) -> Any:
        for reg in regs_by_partner[node_id]:
            for ident in reg.identifiers:
                if isinstance(ident, kind):
                    return ident
        raise RuntimeError(f"no {kind.__name__} at {node_id}")

    p = [node_id for node_id, _ in partners]
    single = [_subject_json(first(p[0], BsnIdentifier))]
    unknown = BsnIdentifier(bsn=make_bsn(random.Random(seed - 1)))
    family = [
        single[0],
        _subject_json(first(p[1 % len(p)], PersonIdentifier)),
        _subject_json(unknown),
        _subject_json(first(p[2 % len(p)], AddressIdentifier)),
    ]
    expected = {"single": {p[0]}, "family": {p[0], p[1 % len(p)], p[2 % len(p)]}}
    return fed, single, family, expected


def query_body(subjects: list[dict[str, Any]], i: int) -> dict[str, Any]:
    return {
        "convenant_id": CONVENANT,
        "purpose": PURPOSE,
        "case_ref": f"BENCH-{i:06d}",
        "subjects": subjects,
    }


async def post_query(
    session: aiohttp.ClientSession, url: str, token: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with session.post(
        url + QUERY_PATH, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data}")
        return dict(data)


def check(result: dict[str, Any], must_hit: set[str]) -> str | None:
    """None if every partner answered as the ground truth says, else what went wrong."""
    for p in result["partners"]:
        want = "hit" if p["partner"] in must_hit else "no_hit"
        if p["status"] != want:
            return f"{p['partner']}: {p['status']} ({p.get('reason')}: {p.get('detail')})"
    return None


async def run_rounds(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    subjects: list[dict[str, Any]],
    must_hit: set[str],
    rounds: int,
    cpu: Any,
) -> dict[str, Any]:
    lat: list[float] = []
    partner_max: list[float] = []
    wrong: list[str] = []
    cpu0 = cpu()
    busy0 = machine_busy_seconds()
    wall0 = time.perf_counter()
    for i in range(rounds):
        t0 = time.perf_counter()
        result = await post_query(session, url, token, query_body(subjects, i))
        lat.append((time.perf_counter() - t0) * 1000)
        partner_max.append(max(p["elapsed_ms"] for p in result["partners"]))
        problem = check(result, must_hit)
        if problem:
            wrong.append(problem)
    wall = time.perf_counter() - wall0
    ours = cpu() - cpu0
    return {
        "other_cores": max(0.0, (machine_busy_seconds() - busy0 - ours) / wall),
        "rounds": rounds,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "mean": sum(lat) / len(lat),
        "max": max(lat),
        "partner_max_p50": percentile(partner_max, 50),
        "cpu_ms_per_round": ours * 1000 / rounds,
        "wall_s": wall,
        "wrong": wrong,
    }


def bound_ms(costs: dict[str, float], n_partners: int, k: int) -> float:
    """Crypto-only time of one round on one core: per partner blind + blind_evaluate +
    finalize over k elements, and one Ed25519 sign and verify on each side."""
    per_partner = (
        costs[f"blind:{k}"]
        + costs[f"blind_evaluate:{k}"]
        + costs[f"finalize:{k}"]
        + 2 * costs["sign"]
        + 2 * costs["verify"]
    )
    return n_partners * per_partner * 1000


def print_case(
    layout: str, n: int, label: str, k: int, r: dict[str, Any], costs: dict[str, float]
) -> None:
    b = bound_ms(costs, n, k)
    print(
        f"{layout:<10} {n:>3} {label:<8} {r['rounds']:>6} {r['p50']:>8.1f} {r['p99']:>8.1f} "
        f"{r['mean']:>8.1f} {r['max']:>8.1f} {r['partner_max_p50']:>10.1f} "
        f"{r['cpu_ms_per_round']:>9.1f} {b:>9.2f} {r['p50'] / b:>7.1f}x {r['other_cores']:>6.2f}"
    )
    for w in r["wrong"][:3]:
        print(f"   ! wrong answer: {w}")
    if r["wrong"]:
        print(f"   ! {len(r['wrong'])} of {r['rounds']} rounds had a wrong or failed status")


HEADER = (
    f"{'layout':<10} {'N':>3} {'query':<8} {'rounds':>6} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'mean ms':>8} {'max ms':>8} {'slowest':>10} {'CPU ms':>9} {'bound ms':>9} "
    f"{'p50/bd':>8} {'other':>6}"
)


async def crypto_counts(
    fed: Federation, single: list[dict[str, Any]], family: list[dict[str, Any]]
) -> dict[str, dict[str, int]]:
    """The crypto calls one round really makes, requester and partners together."""
    out = {}
    for label, subjects in (("single", single), ("family", family)):
        with CryptoCounter() as c:
            await fed.api(REQUESTER, "POST", QUERY_PATH, json=query_body(subjects, 999_999))
        out[label] = dict(c.counts)
    return out


async def in_process(
    args: argparse.Namespace,
    n: int,
    costs: dict[str, float],
    prims: dict[str, float],
    profile: bool,
) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-query-{n}-") as tmp:
        t0 = time.perf_counter()
        fed, single, family, expected = build_federation(Path(tmp), n, args.registrations, 7)
        await fed.start()
        try:
            setup = time.perf_counter() - t0
            node = fed.nodes[REQUESTER]
            assert fed.session is not None
            token = node.tokens["coordinator"]
            t0 = time.perf_counter()
            for subjects, must in ((single, expected["single"]), (family, expected["family"])):
                problem = check(
                    await post_query(fed.session, node.url, token, query_body(subjects, 0)), must
                )
                if problem:
                    print(f"   ! warm-up answered wrongly: {problem}")
            warm = time.perf_counter() - t0
            print(
                f"# in-process N={n}: set-up {setup:.1f} s, warm-up (full tag-set sync) "
                f"{warm * 1000:.0f} ms"
            )
            for label, subjects, k in (("single", single, 1), ("family", family, 4)):
                r = await run_rounds(
                    fed.session,
                    node.url,
                    token,
                    subjects,
                    expected[label],
                    args.rounds,
                    cpu_seconds_self,
                )
                print_case("in-proc", n, label, k, r, costs)
            counts = await crypto_counts(fed, single, family)
            for label, c in counts.items():
                k = 1 if label == "single" else 4
                actual = (
                    c.get("ed25519_sign", 0) / prims["ed25519_sign"]
                    + c.get("ed25519_verify", 0) / prims["ed25519_verify"]
                    + c.get("scalarmult", 0) / prims["scalarmult"]
                    + c.get("hash_to_group", 0) / prims["hash_to_group"]
                ) * 1000
                print(
                    f"   crypto calls in one {label} round: "
                    f"{c.get('ed25519_verify', 0)} Ed25519 verify (protocol needs {2 * n}; "
                    f"tree heads add {2 * n}: the answers' and the requests' (§9.5)), "
                    f"{c.get('ed25519_sign', 0)} sign (protocol needs {2 * n}; tree heads add "
                    f"{n + 1}), {c.get('scalarmult', 0)} scalar mult, "
                    f"{c.get('hash_to_group', 0)} hash-to-group "
                    f"(~{actual:.1f} ms of crypto vs a {bound_ms(costs, n, k):.1f} ms bound)"
                )
            if profile:
                with profiled(True) as prof:
                    await run_rounds(
                        fed.session,
                        node.url,
                        token,
                        family,
                        expected["family"],
                        max(10, args.rounds // 4),
                        cpu_seconds_self,
                    )
                print(profile_report(pstats.Stats(prof), title=f"in-process N={n} family query"))
        finally:
            await fed.close()


async def in_processes(args: argparse.Namespace, n: int, costs: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-query-proc-{n}-") as tmp:
        fed, single, family, expected = build_federation(Path(tmp), n, args.registrations, 7)
        urls = {node_id: node.url for node_id, node in fed.nodes.items()}
        homes = {node_id: node.home for node_id, node in fed.nodes.items()}
        token = fed.nodes[REQUESTER].tokens["coordinator"]
        await fed.close()  # closes every node's database; the processes reopen them
        procs = NodeProcesses()
        try:
            for node_id, home in homes.items():
                procs.start(node_id, home)
            await procs.wait_ready(urls)
            pids = [procs.pid(node_id) for node_id in homes]

            def cpu_all() -> float:
                return sum(cpu_seconds_pid(p) for p in pids) + cpu_seconds_self()

            async with aiohttp.ClientSession() as session:
                url = urls[REQUESTER]
                t0 = time.perf_counter()
                for subjects, must in ((single, expected["single"]), (family, expected["family"])):
                    problem = check(
                        await post_query(session, url, token, query_body(subjects, 0)), must
                    )
                    if problem:
                        print(f"   ! warm-up answered wrongly: {problem}")
                print(
                    f"# processes N={n}: {n + 1} 'vhnode serve' processes, warm-up "
                    f"{(time.perf_counter() - t0) * 1000:.0f} ms"
                )
                for label, subjects, k in (("single", single, 1), ("family", family, 4)):
                    r = await run_rounds(
                        session, url, token, subjects, expected[label], args.rounds, cpu_all
                    )
                    print_case("processes", n, label, k, r, costs)
        finally:
            procs.stop_all()


async def main_async(args: argparse.Namespace) -> None:
    print(f"bench_query — {machine_line()}")
    print(
        "All traffic on 127.0.0.1. In-process layout: all nodes in ONE process and ONE event "
        "loop (one core);\nprocesses layout: one 'vhnode serve' process per node, N+1 "
        "processes on this machine's cores."
    )
    budget = 0.02 if args.quick else 0.3
    t0 = time.perf_counter()
    prims = crypto_bound(budget)
    costs = protocol_crypto_costs((1, 4), budget)
    print(
        f"crypto measured in this run ({time.perf_counter() - t0:.1f} s): "
        + ", ".join(f"{k} {1e6 / v:.1f} µs" for k, v in prims.items())
        + "; exact ops: "
        + ", ".join(
            f"{k} {v * 1e6:.0f} µs" for k, v in costs.items() if not k.startswith("evaluate")
        )
    )
    for k in (1, 4):
        print(
            f"bound per partner, {k} subject(s): {bound_ms(costs, 1, k):.3f} ms on one core "
            "(blind + blind_evaluate + finalize + 2 sign + 2 verify)"
        )
    print(
        f"{args.registrations} registrations per partner; {args.rounds} rounds per case after "
        "a warm-up round; 'slowest' = median over rounds of the slowest partner's elapsed_ms "
        "as the requester measured it;\n'CPU ms' = CPU time of all processes per round; "
        "'bound ms' = crypto-only time of one round on one core (N x per partner);\n"
        "'other' = cores used by processes outside this bench meanwhile (from /proc/stat): "
        "load that was competing for the 2 cores."
    )
    print(HEADER)
    for n in args.partners:
        await in_process(args, n, costs, prims, args.profile and n == max(args.partners))
    if args.processes:
        print(HEADER)
        for n in args.partners:
            await in_processes(args, n, costs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few rounds")
    ap.add_argument("--partners", type=int, nargs="+", default=None)
    ap.add_argument("--registrations", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument(
        "--no-processes",
        dest="processes",
        action="store_false",
        help="skip the one-process-per-node layout",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the in-process family query at the largest N",
    )
    args = ap.parse_args()
    if args.quick:
        args.partners = args.partners or [2, 3]
        args.registrations = args.registrations or 100
        args.rounds = args.rounds or 5
    args.partners = args.partners or [5, 10, 20]
    args.registrations = args.registrations or 2000
    args.rounds = args.rounds or 200
    args.rounds = max(1, min(args.rounds, 100_000))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
