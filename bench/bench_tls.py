"""What mutual TLS between peers costs per bekendheid round, beside plain HTTP, in one run.

Run as ``python bench/bench_tls.py`` (``--quick`` for a smoke run of a few seconds).

For N partners (5 and 10), two federations are built alike in one process: one whose
nodes speak plain HTTP (v1 cards), one whose nodes speak mutual TLS (self-signed
certificates, v2 cards, docs/protocol.md §12.3). Every node is a real aiohttp server on
127.0.0.1 with its own keys and SQLite file, all on ONE event loop (one core). A
coordinator asks the requester's local API about one subject ``--rounds`` (200) times:

* ``warm``: the requester's pooled connections to the partners are reused (keep-alive,
  as in service): TLS adds record encryption and nothing else;
* ``cold``: every peer request opens a new connection (the requester's connector closes
  each after use): TLS adds a full TLS 1.3 handshake with client certificate per partner.

Printed per case: p50/p99/mean latency and CPU ms per round, and two bounds measured
right here: the protocol's crypto per round (as bench_query: blind, evaluate, finalize,
two Ed25519 signs and verifies per partner) and the TLS handshake's own crypto, one
mutual-TLS 1.3 handshake (ECDHE P-256, two ECDSA P-256 signatures and verifications)
between in-memory BIOs, times N for a cold round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import random
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import aiohttp
from bench_common import (
    add_node,
    cpu_seconds_self,
    machine_busy_seconds,
    machine_line,
    partner_ids,
    percentile,
    protocol_crypto_costs,
)
from bench_query import CONVENANT, REQUESTER, bound_ms, check, post_query, query_body

from node import tls
from node.demo.synthetic import iter_bulk_registrations
from node.flows.publishing import apply_changes
from node.protocol.identifiers import BsnIdentifier
from tests.federation import Federation, convenant_toml

POLICE = ("veelplegers", "huiselijk_geweld")
_TCP_CONNECTOR = aiohttp.TCPConnector


@contextlib.contextmanager
def cold_connections() -> Iterator[None]:
    """Nodes started inside make a new connection for every peer request: their client
    session's connector (node/http/app.py) closes each connection after its answer."""

    def connector(**kwargs: Any) -> aiohttp.TCPConnector:
        kwargs.pop("keepalive_timeout", None)
        return _TCP_CONNECTOR(force_close=True, **kwargs)

    aiohttp.TCPConnector = connector  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        aiohttp.TCPConnector = _TCP_CONNECTOR  # type: ignore[misc]


def build(
    root: Path, n: int, registrations: int, over_tls: bool
) -> tuple[Federation, Any, set[str]]:
    fed = Federation(root)
    add_node(fed, REQUESTER, "veiligheidshuis", tls=over_tls)
    partners = partner_ids(n)
    for node_id, org in partners:
        add_node(fed, node_id, org, tls=over_tls)
    fed.exchange_cards()
    parties = [(REQUESTER, "veiligheidshuis", (), True)] + [
        (node_id, org, POLICE, False) for node_id, org in partners
    ]
    fed.sign_and_install(convenant_toml(parties, convenant_id=CONVENANT))
    first_bsn: dict[str, Any] = {}
    for i, (node_id, _) in enumerate(partners):
        regs = list(iter_bulk_registrations(registrations, random.Random(7 + i)))
        apply_changes(fed.nodes[node_id].ctx, regs, actor="bench")
        if i == 0:
            bsn = next(
                ident for r in regs for ident in r.identifiers if isinstance(ident, BsnIdentifier)
            )
            first_bsn = bsn.model_dump(mode="json", exclude_none=True)
    return fed, [first_bsn], {partners[0][0]}


async def rounds(fed: Federation, subjects: Any, must_hit: set[str], count: int) -> dict[str, Any]:
    node = fed.nodes[REQUESTER]
    assert fed.session is not None
    token = node.tokens["coordinator"]
    problem = check(
        await post_query(fed.session, node.url, token, query_body(subjects, 0)), must_hit
    )
    if problem:  # the warm-up also brings the tag sets up to date
        raise RuntimeError(f"warm-up answered wrongly: {problem}")
    lat: list[float] = []
    wrong: list[str] = []
    cpu0, busy0, wall0 = cpu_seconds_self(), machine_busy_seconds(), time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        result = await post_query(fed.session, node.url, token, query_body(subjects, i + 1))
        lat.append((time.perf_counter() - t0) * 1000)
        if (problem := check(result, must_hit)) is not None:
            wrong.append(problem)
    wall = time.perf_counter() - wall0
    ours = cpu_seconds_self() - cpu0
    return {
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "mean": sum(lat) / len(lat),
        "cpu": ours * 1000 / count,
        "other": max(0.0, (machine_busy_seconds() - busy0 - ours) / wall),
        "wrong": wrong,
    }


async def case(args: argparse.Namespace, n: int, over_tls: bool, cold: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-tls-{n}-") as tmp:
        fed, subjects, must_hit = build(Path(tmp), n, args.registrations, over_tls)
        with cold_connections() if cold else contextlib.nullcontext():
            await fed.start()
        try:
            return await rounds(fed, subjects, must_hit, args.rounds)
        finally:
            await fed.close()


def handshake_seconds(budget: float) -> float:
    """One mutual TLS 1.3 handshake between node contexts, in memory: the crypto (and
    OpenSSL's own work) a new peer connection costs, without sockets or the event loop."""
    with tempfile.TemporaryDirectory(prefix="bench-tls-hs-") as tmp:
        root = Path(tmp)
        now = datetime.datetime.now(datetime.UTC)
        files = []
        for name in ("client-x", "server-x"):
            cert, key = tls.self_signed(name, ["127.0.0.1"], now)
            (root / f"{name}.crt").write_bytes(cert)
            (root / f"{name}.key").write_bytes(key)
            (root / f"{name}.key").chmod(0o600)
            files.append(
                tls.TlsFiles(root / f"{name}.crt", root / f"{name}.key", None, tls.pem_to_der(cert))
            )
        client_files, server_files = files
        server = tls.server_context(server_files, [client_files.certificate_der])
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.minimum_version = ssl.TLSVersion.TLSv1_3
        client.check_hostname = False
        client.load_cert_chain(client_files.cert_file, client_files.key_file)
        client.load_verify_locations(cadata=server_files.certificate_der)

        def once() -> None:
            c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
            c = client.wrap_bio(c_in, c_out)
            s = server.wrap_bio(s_in, s_out, server_side=True)
            done_c = done_s = False
            while not (done_c and done_s):
                for obj, outbox, peer_in, side in (
                    (c, c_out, s_in, "c"),
                    (s, s_out, c_in, "s"),
                ):
                    try:
                        obj.do_handshake()
                        if side == "c":
                            done_c = True
                        else:
                            done_s = True
                    except ssl.SSLWantReadError:
                        pass
                    if outbox.pending:
                        peer_in.write(outbox.read())
            # TLS 1.3: the server checks the client certificate as it reads the client's
            # Finished; one read round finishes it.
            assert s.getpeercert(binary_form=True) is not None

        # CPU time, not wall time: both ends run here, and other work on the machine
        # must not count (the other column says how busy it was).
        once()
        calls, t0 = 0, time.process_time()
        while calls < 5 or time.process_time() - t0 < budget:
            once()
            calls += 1
        return (time.process_time() - t0) / calls


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--registrations", type=int, default=2000)
    ap.add_argument("--partners", type=int, nargs="*", default=[5, 10])
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.registrations, args.partners = 20, 200, [3]
    print(machine_line())
    costs = protocol_crypto_costs([1], 0.3 if args.quick else 1.5)
    hs = handshake_seconds(0.3 if args.quick else 1.5)
    print(f"one mutual TLS 1.3 handshake (P-256, both ends, in memory): {hs * 1000:.2f} ms CPU")
    print(
        f"{'N':>3} {'conns':<5} {'transport':<9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
        f"{'CPU ms':>8} {'bound ms':>9} {'+TLS bd':>8} {'other':>6}"
    )
    for n in args.partners:
        for cold in (False, True):
            results = {}
            for over_tls in (False, True):
                r = await case(args, n, over_tls, cold)
                results[over_tls] = r
                bound = bound_ms(costs, n, 1)
                tls_bound = n * hs * 1000 if (over_tls and cold) else 0.0
                print(
                    f"{n:>3} {'cold' if cold else 'warm':<5} {'mTLS' if over_tls else 'plain':<9} "
                    f"{r['p50']:>8.1f} {r['p99']:>8.1f} {r['mean']:>8.1f} {r['cpu']:>8.1f} "
                    f"{bound:>9.2f} {tls_bound:>8.2f} {r['other']:>6.2f}"
                )
                for w in r["wrong"][:3]:
                    print(f"   ! wrong answer: {w}")
            plain, mtls = results[False], results[True]
            d_p50, d_cpu = mtls["p50"] - plain["p50"], mtls["cpu"] - plain["cpu"]
            print(
                f"    TLS cost per round ({'cold' if cold else 'warm'}, N={n}): "
                f"p50 {d_p50:+.1f} ms, CPU {d_cpu:+.1f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
