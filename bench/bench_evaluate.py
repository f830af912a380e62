"""Evaluations per second on ONE answering node under concurrent signed load.

Run as ``python bench/bench_evaluate.py`` (``--quick`` for a smoke run of a few seconds).

The answering node (a provider under an installed convenant, 2,000 registrations) runs
as its own ``python -m node serve --home ...`` process, so the load generator does not
share its core: this machine has 2 cores, one for the node (a single-threaded asyncio
server) and one for the load generator. The node's rate limit is raised in its
``node.toml`` ``[limits]`` (the same token bucket ``node.ctx.limiter`` is built from), so
nothing is refused.

The load generator holds the keys of a real requester node (a party with a query right)
and sends ``--concurrency`` (16, 64) concurrent streams of signed evaluate requests,
each carrying ``--elements`` (1, 10) blinded elements, straight to ``/peer/v1/evaluate``
for ``--seconds`` (10) per case. Requests are signed with a fresh nonce each and
prepared before the timed window (a 2 s unrecorded warm-up sizes the pool), so the
generator's own signing does not eat into the window. Every response is checked for
HTTP 200; one in 50 is parsed and its signature verified.

Printed per case: requests/s, elements/s, latency p50/p99, the node's CPU use, and the
crypto-only bound of the same run on one core: per request one Ed25519 verify, one
sign and ``blind_evaluate`` over k elements (measured here), next to crypto_bound().
``--profile`` runs the node once more under cProfile (10 elements, highest concurrency)
and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import pstats
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import aiohttp
import nacl.signing
from bench_common import (
    POLICE_THEMES,
    PYTHON,
    NodeProcesses,
    add_node,
    cpu_seconds_pid,
    cpu_seconds_self,
    machine_busy_seconds,
    machine_line,
    partner_ids,
    percentile,
    profile_report,
    protocol_crypto_costs,
)
from bench_crypto import crypto_bound

from node.demo.synthetic import iter_bulk_registrations
from node.flows.publishing import apply_changes
from node.protocol import jws, oprf
from node.protocol.bekendheid import (
    EVALUATE_REQUEST_TYP,
    EVALUATE_RESPONSE_TYP,
    EvaluateRequest,
)
from node.protocol.models import rfc3339
from node.protocol.tree_head import TREE_HEAD_TYP, SignedTreeHead
from tests.federation import CONVENANT_ID, PURPOSE, Federation, convenant_toml

# Sizes of the requester's heads, one new size per request over the whole run: a size
# sent twice with another root would be a fork (refused forked_log).
HEAD_SIZES = itertools.count(1)
PARTNER = "p01-politie"
REQUESTER = "vh-bench"
EVALUATE_PATH = "/peer/v1/evaluate"


class RequestFactory:
    """Signed evaluate request bodies, as node/flows/asking.py builds them: with the
    requester's signed tree head (docs/protocol.md §9.5), one of a new size per request
    as in a run of rounds (each round's head is a new size, so the node verifies it and
    stores one row per request), or without one (``--no-head``: the earlier shape)."""

    def __init__(self, signing: nacl.signing.SigningKey, elements: int, head: bool) -> None:
        self.signing = signing
        self.head = head
        inputs = [f"bsn:{100000000 + i:09d}".encode() for i in range(64)]
        _, blinded = oprf.blind(inputs)
        self.pool = [jws.b64u_encode(b) for b in blinded]
        self.elements = elements
        self.i = 0

    def body(self) -> bytes:
        self.i += 1
        start = self.i % (len(self.pool) - self.elements + 1)
        req = EvaluateRequest(
            requester=REQUESTER,
            partner=PARTNER,
            convenant_id=CONVENANT_ID,
            convenant_version=1,
            purpose=PURPOSE,
            case_ref=f"BENCH-{self.i:08d}",
            requesting_user="coordinator-bench",
            trace_id=secrets.token_hex(16),
            nonce=jws.b64u_encode(secrets.token_bytes(16)),
            issued_at=datetime.now(UTC),
            blinded_elements=tuple(self.pool[start : start + self.elements]),
            tree_head=self._head() if self.head else None,
        )
        doc = jws.sign(EVALUATE_REQUEST_TYP, req.wire(), self.signing)
        return json.dumps(doc.to_json()).encode()

    def _head(self) -> SignedTreeHead:
        # A head of the requester for a size not sent before (the root is arbitrary: the
        # node checks the signature and keeps it; it holds no other root for that size).
        payload = {
            "node": REQUESTER,
            "tree_size": next(HEAD_SIZES),
            "root_hash": jws.b64u_encode(secrets.token_bytes(32)),
            "signed_at": rfc3339(datetime.now(UTC)),
        }
        doc = jws.sign(TREE_HEAD_TYP, payload, self.signing)
        return SignedTreeHead.model_validate(doc.to_json())


async def load(
    url: str,
    factory: RequestFactory,
    concurrency: int,
    seconds: float,
    prepared: list[bytes],
    partner_key: bytes,
    record: bool = True,
) -> dict[str, Any]:
    """``concurrency`` tasks posting back to back for ``seconds``; bounded by time."""
    lat: list[float] = []
    errors: list[str] = []
    generated_live = 0
    ok = 0
    verified = 0
    stop_at = time.perf_counter() + seconds
    fp = jws.fingerprint(partner_key)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal generated_live, ok, verified
        while time.perf_counter() < stop_at:
            if prepared:
                body = prepared.pop()
            else:
                body = factory.body()
                generated_live += 1
            t0 = time.perf_counter()
            async with session.post(
                url + EVALUATE_PATH, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                data = await resp.read()
                status = resp.status
            lat.append(time.perf_counter() - t0)
            if status != 200:
                if len(errors) < 5:
                    errors.append(f"HTTP {status}: {data[:200]!r}")
                else:
                    errors.append("")
                continue
            ok += 1
            if ok % 50 == 0:
                doc = jws.parse_bytes(data, EVALUATE_RESPONSE_TYP)
                doc.verify(fp, partner_key)
                if doc.payload["outcome"] != "evaluated":
                    errors.append(f"refused: {doc.payload.get('reason')}")
                verified += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "ok": ok,
        "errors": errors,
        "lat": lat,
        "generated_live": generated_live,
        "verified": verified,
    }


def build(root: Path, registrations: int, parties: int) -> tuple[Federation, Path, str, bytes]:
    """Requester + answering node (+ parties-2 further partners that only sign the
    convenant and are known as peers, as in a region with more partners)."""
    fed = Federation(root)
    add_node(fed, REQUESTER, "veiligheidshuis")
    add_node(fed, PARTNER, "politie")
    extra = partner_ids(parties - 1)[1:]
    for node_id, org in extra:
        add_node(fed, node_id, org)
    fed.exchange_cards()
    fed.sign_and_install(
        convenant_toml(
            [
                (REQUESTER, "veiligheidshuis", (), True),
                (PARTNER, "politie", POLICE_THEMES, False),
                *((node_id, org, POLICE_THEMES, False) for node_id, org in extra),
            ]
        )
    )
    regs = list(iter_bulk_registrations(registrations, random.Random(11)))
    apply_changes(fed.nodes[PARTNER].ctx, regs, actor="bench")
    node = fed.nodes[PARTNER]
    return fed, node.home, node.url, node.ctx.keys.signing_public


async def run_case(
    url: str,
    pid: int,
    signing: nacl.signing.SigningKey,
    partner_key: bytes,
    k: int,
    concurrency: int,
    seconds: float,
    head: bool,
) -> dict[str, Any]:
    factory = RequestFactory(signing, k, head)
    # Unrecorded warm-up with live signing: sizes the pool and warms the node.
    warm_s = min(2.0, seconds)
    warm = await load(url, factory, concurrency, warm_s, [], partner_key)
    need = int(warm["ok"] / warm["wall"] * seconds * 1.5) + 100
    need = min(need, 300_000)
    t0 = time.perf_counter()
    prepared = [factory.body() for _ in range(need)]
    prep_s = time.perf_counter() - t0
    node_cpu0, gen_cpu0 = cpu_seconds_pid(pid), cpu_seconds_self()
    busy0 = machine_busy_seconds()
    r = await load(url, factory, concurrency, seconds, prepared, partner_key)
    node_cpu = cpu_seconds_pid(pid) - node_cpu0
    gen_cpu = cpu_seconds_self() - gen_cpu0
    r["node_cpu_s"] = node_cpu
    r["node_cpu"] = node_cpu / r["wall"]
    r["gen_cpu"] = gen_cpu / r["wall"]
    r["other_cores"] = max(0.0, (machine_busy_seconds() - busy0 - node_cpu - gen_cpu) / r["wall"])
    r["prepared"] = need
    r["prep_s"] = prep_s
    return r


def print_case(
    parties: int, k: int, c: int, r: dict[str, Any], costs: dict[str, float], head: bool
) -> None:
    rps = r["ok"] / r["wall"]
    # The requester's head in the request (§9.5) is one more Ed25519 verify.
    verifies = 2 if head else 1
    bound = 1 / (verifies * costs["verify"] + costs["sign"] + costs[f"blind_evaluate:{k}"])
    lat = r["lat"] or [0.0]
    per_cpu = r["ok"] / r["node_cpu_s"] if r["node_cpu_s"] else 0.0
    print(
        f"{parties:>7} {k:>8} {c:>5} {r['wall']:>5.1f} {r['ok']:>7} {rps:>7.0f} {rps * k:>7.0f} "
        f"{percentile(lat, 50) * 1000:>7.1f} {percentile(lat, 99) * 1000:>7.1f} "
        f"{100 * r['node_cpu']:>4.0f}% {100 * r['gen_cpu']:>6.0f}% {bound:>8.0f} "
        f"{bound * k:>8.0f} {100 * rps / bound:>4.0f}% {per_cpu:>9.0f} {per_cpu * k:>8.0f} "
        f"{r['other_cores']:>5.2f}"
    )
    if r["errors"]:
        shown = [e for e in r["errors"] if e][:3]
        print(f"   ! {len(r['errors'])} failed responses, e.g. {shown}")
    if r["generated_live"]:
        print(
            f"   ! prepared pool ran out: {r['generated_live']} requests were signed "
            "during the window (the generator's CPU competed with its sending)"
        )


async def main_async(args: argparse.Namespace) -> None:
    print(f"bench_evaluate — {machine_line()}")
    print(
        "All traffic on 127.0.0.1. The answering node runs as its own 'vhnode serve' "
        "process (one asyncio thread, so at most one of the 2 cores);\nthe load generator "
        "runs in this process on the other core."
    )
    budget = 0.02 if args.quick else 0.3
    prims = crypto_bound(budget)
    costs = protocol_crypto_costs(sorted(set(args.elements)), budget)
    print(
        "crypto measured in this run: "
        + ", ".join(f"{k} {1e6 / v:.1f} µs" for k, v in prims.items())
        + "; exact: "
        + ", ".join(
            f"{k} {v * 1e6:.0f} µs"
            for k, v in costs.items()
            if k.startswith("blind_evaluate") or k in ("sign", "verify")
        )
    )
    verifies = 2 if args.head else 1
    print(
        "requests carry the requester's signed tree head (docs/protocol.md §9.5), a new size "
        "each: +1 verify and one stored row per request"
        if args.head
        else "requests carry no tree head (--no-head: the shape before docs/protocol.md §9.5)"
    )
    for k in sorted(set(args.elements)):
        per = verifies * costs["verify"] + costs["sign"] + costs[f"blind_evaluate:{k}"]
        print(
            f"bound, {k} element(s)/request: {verifies} verify + sign + blind_evaluate({k}) = "
            f"{per * 1e6:.0f} µs -> {1 / per:,.0f} requests/s, {k / per:,.0f} elements/s "
            "on one core (the node also signs a log tree head per request: +1 sign)"
        )
    print(
        "'node'/'loadgen' = CPU use of the node / the load generator (1 core = 100%); "
        "'bd' = crypto-only bound on one core; 'req/cpu-s' = requests per CPU-second of\n"
        "the node (its capacity on one whole core, robust to other load); 'other' = cores "
        "used meanwhile by processes outside this bench (from /proc/stat)."
    )
    header = (
        f"{'parties':>7} {'elements':>8} {'conc':>5} {'secs':>5} {'ok':>7} {'req/s':>7} "
        f"{'elem/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'node':>5} {'loadgen':>7} "
        f"{'bd req/s':>8} {'bd el/s':>8} {'of bd':>5} {'req/cpu-s':>9} "
        f"{'el/cpu-s':>8} {'other':>5}"
    )
    for parties in args.parties:
        with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
            fed, home, url, partner_key = build(Path(tmp), args.registrations, parties)
            requester_ctx = fed.nodes[REQUESTER].ctx
            signing = nacl.signing.SigningKey(bytes(requester_ctx.keys.signing))
            await fed.close()
            procs = NodeProcesses()
            try:
                procs.start(PARTNER, home)
                await procs.wait_ready({PARTNER: url})
                pid = procs.pid(PARTNER)
                print(
                    f"# convenant with {parties} parties (the answering node knows "
                    f"{parties - 1} peers)"
                )
                print(header)
                for k in args.elements:
                    for c in args.concurrency:
                        r = await run_case(
                            url, pid, signing, partner_key, k, c, args.seconds, args.head
                        )
                        print_case(parties, k, c, r, costs, args.head)
            finally:
                procs.stop_all()
            if args.profile and parties == max(args.parties):
                prof_file = Path(tmp) / "node.prof"
                procs = NodeProcesses()
                try:
                    procs.start(
                        PARTNER, home, prefix=[PYTHON, "-m", "cProfile", "-o", str(prof_file)]
                    )
                    await procs.wait_ready({PARTNER: url})
                    k, c = max(args.elements), max(args.concurrency)
                    r = await run_case(
                        url,
                        procs.pid(PARTNER),
                        signing,
                        partner_key,
                        k,
                        c,
                        args.seconds,
                        args.head,
                    )
                    print(
                        f"# under cProfile (slower): {parties} parties, {k} elements, "
                        f"concurrency {c}: {r['ok'] / r['wall']:.0f} req/s"
                    )
                finally:
                    procs.stop_all()
                print(
                    profile_report(
                        pstats.Stats(str(prof_file)),
                        title=f"answering node, {parties} parties, {k} elements, concurrency {c}",
                    )
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--concurrency", type=int, nargs="+", default=None)
    ap.add_argument("--elements", type=int, nargs="+", default=None)
    ap.add_argument("--registrations", type=int, default=2000)
    ap.add_argument(
        "--parties",
        type=int,
        nargs="+",
        default=None,
        help="convenant sizes (requester + answering node + others); default 2 21",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the node in a further run")
    ap.add_argument(
        "--no-head",
        dest="head",
        action="store_false",
        help="send requests without the requester's tree head (the shape before §9.5)",
    )
    args = ap.parse_args()
    if args.quick:
        args.seconds = args.seconds or 0.7
        args.concurrency = args.concurrency or [8]
        args.elements = args.elements or [1, 10]
        args.registrations = min(args.registrations, 200)
        args.parties = args.parties or [3]
    args.seconds = min(args.seconds or 10.0, 600.0)
    args.concurrency = args.concurrency or [16, 64]
    args.elements = args.elements or [1, 10]
    args.parties = [max(2, min(p, 60)) for p in (args.parties or [2, 21])]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
