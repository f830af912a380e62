"""Slow and idle clients against a node on loopback (issue 9 item 5).

Run as ``python bench/bench_slow_clients.py`` (about 30 s). A four-node federation in this
process, the police node with the default ``[http]`` settings except a 5 s header timeout
(so the run is short). Measured, with the same run's bound printed beside each figure:

- 200 slowloris connections, each sending one header line every second and never the
  end of its head: how many the server closed, and how long after they opened;
- ``GET /healthz`` latency (median, p95 of 50) alone, and again with 500 idle keep-alive
  connections open (more than ``max_connections``, 256).

Before this change (the issue's figures): 0 of 200 slowloris connections closed in 60 s,
and /healthz went from 10 ms to 400 ms with 500 idle keep-alive connections.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.federation import Federation, standard_federation  # noqa: E402

NODE = "politie-test"
HEADER_TIMEOUT = 5.0
SLOWLORIS = 200
IDLE = 500


async def slowloris(port: int, results: list[float | None]) -> None:
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        for i in range(int(HEADER_TIMEOUT * 3)):
            try:
                data = await asyncio.wait_for(reader.read(1), 1.0)
            except TimeoutError:
                writer.write(f"X-Slow-{i}: a\r\n".encode())
                continue
            if data == b"":
                results.append(time.monotonic() - opened)
                return
        results.append(None)  # still open after three header timeouts
    except ConnectionError:
        results.append(time.monotonic() - opened)
    finally:
        writer.close()


async def healthz_ms(url: str, n: int = 50) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as session:  # a new connection per call
        for _ in range(n):
            started = time.perf_counter()
            async with session.get(url, headers={"Connection": "close"}) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            out.append((time.perf_counter() - started) * 1000)
    return out


def figures(ms: list[float]) -> str:
    return f"median {statistics.median(ms):.1f} ms, p95 {sorted(ms)[int(len(ms) * 0.95)]:.1f} ms"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fed: Federation = await standard_federation(Path(tmp))
        try:
            node = fed.nodes[NODE]
            await fed.stop(NODE)
            http = node.ctx.cfg.http.model_copy(update={"header_timeout_seconds": HEADER_TIMEOUT})
            node.ctx.cfg = node.ctx.cfg.model_copy(update={"http": http})
            await fed.start(NODE)

            closed: list[float | None] = []
            await asyncio.gather(*(slowloris(node.port, closed) for _ in range(SLOWLORIS)))
            times = [t for t in closed if t is not None]
            print(
                f"slowloris: {len(times)}/{SLOWLORIS} closed by the server, "
                f"after {min(times):.1f}-{max(times):.1f} s "
                f"(bound: all, within header_timeout {HEADER_TIMEOUT:g} s + 1 s)"
            )

            url = node.url + "/healthz"
            alone = await healthz_ms(url)
            idle = [await asyncio.open_connection("127.0.0.1", node.port) for _ in range(IDLE)]
            await asyncio.sleep(0.5)
            crowded = await healthz_ms(url)
            for _, w in idle:
                w.close()
            print(f"/healthz alone: {figures(alone)}")
            print(
                f"/healthz with {IDLE} idle connections open: {figures(crowded)} "
                "(bound: p95 within 50 ms of alone)"
            )
        finally:
            await fed.close()


if __name__ == "__main__":
    asyncio.run(main())
