"""What one ``vhnode`` call costs as a whole process, beside the bare interpreter's cost.

Run as ``python bench/bench_cli.py`` (``--runs N``, default 15; ``--quick``: 5).

A real four-node federation from the test simulator (tests/federation.py) serves on
127.0.0.1 in this process; the commands run as their own processes, the way a
coordinator runs them. Timed, as wall time from start to exit (median, min, max):

* ``python -c pass`` — the bound: an interpreter that starts and stops;
* ``vhnode --help`` — the CLI's own start-up;
* ``vhnode query`` (one BSN, four partners) — start-up, node.toml, one local API call,
  and printing; and the same with ``--url`` instead of ``--home``;
* the same query as one HTTP call from this process — what the node itself takes.

``query - node`` is then what the CLI adds to the node's answer. Goal (issue 9 item 17):
a CLI call costs at most 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from bench_common import machine_line

from tests.federation import CONVENANT_ID, PURPOSE, Federation, standard_federation

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
QUERY = "vhnode query (1 BSN, 4 partners)"
NODE = "node alone (one API call)"


VHNODE: list[str] = []  # --vhnode: another build's command line, to compare


def vhnode_command() -> list[str]:
    """The installed console script, as a user runs it; else ``python -m node``."""
    if VHNODE:
        return VHNODE
    script = Path(sys.executable).parent / "vhnode"
    return [str(script)] if script.exists() else [sys.executable, "-m", "node"]


def timed(run: Callable[[], object], runs: int) -> list[float]:
    run()  # warm-up: the file cache, the node's first tag-set fetch
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        out.append((time.perf_counter() - start) * 1000)
    return out


def process(argv: Sequence[str], env: dict[str, str], cwd: Path) -> Callable[[], object]:
    # Run from an empty folder: ``python -m`` puts the working directory first on the path,
    # which from a checkout would load that checkout's code instead of the one named.
    def run() -> object:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:3])}…: exit {proc.returncode}: {proc.stderr!r}")
        return proc

    return run


def api_query(port: int, token: str, body: bytes) -> Callable[[], object]:
    def run() -> object:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(
                "POST",
                "/api/v1/bekendheid",
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise SystemExit(f"API: HTTP {resp.status}: {data[:200]!r}")
            return data
        finally:
            conn.close()

    return run


def serve_in_background(root: Path) -> tuple[Federation, Callable[[], None]]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[Federation] = []

    async def start() -> None:
        fed = await standard_federation(root)
        fed.register(
            "politie-test", {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN]}
        )
        holder.append(fed)
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()))
    thread.start()
    if not ready.wait(60):
        raise SystemExit("the federation did not start")

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(holder[0].close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()

    return holder[0], stop


def row(name: str, ms: Sequence[float]) -> str:
    return f"{name:34} {statistics.median(ms):8.0f} {min(ms):8.0f} {max(ms):8.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--vhnode",
        help="command that runs the CLI to time instead of the installed one, e.g. "
        "'env PYTHONPATH=/tmp/old python -m node' for an older checkout",
    )
    args = parser.parse_args()
    if args.vhnode:
        VHNODE[:] = shlex.split(args.vhnode)
    runs = 5 if args.quick else args.runs
    print(machine_line())
    results: dict[str, list[float]] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VHNODE_")}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        empty = Path(tmp) / "cwd"
        empty.mkdir()
        fed, stop = serve_in_background(Path(tmp) / "federation")
        try:
            node = fed.nodes["vh-test"]
            token = node.tokens["coordinator"]
            asked = ["--convenant", CONVENANT_ID, "--purpose", PURPOSE, "--case", "BENCH-1",
                     "--bsn", JAN_BSN["bsn"]]  # fmt: skip
            with_home = [*vhnode_command(), "query", "--home", str(node.home), *asked]
            with_url = [*vhnode_command(), "query", "--url", node.url, *asked]
            body = json.dumps(
                {
                    "convenant_id": CONVENANT_ID,
                    "purpose": PURPOSE,
                    "case_ref": "BENCH-1",
                    "subjects": [JAN_BSN],
                }
            ).encode()
            as_coordinator = {**env, "VHNODE_TOKEN": token}
            commands = {
                "python -c pass (bound)": process([sys.executable, "-c", "pass"], env, empty),
                "vhnode --help": process([*vhnode_command(), "--help"], env, empty),
                QUERY: process(with_home, as_coordinator, empty),
                "vhnode query --url (no node.toml)": process(with_url, as_coordinator, empty),
                NODE: api_query(node.port, token, body),
            }
            for name, command in commands.items():
                try:
                    results[name] = timed(command, runs)
                except SystemExit as e:  # another build may not read this node.toml
                    print(f"{name}: not timed: {e}")
        finally:
            stop()
    print(f"{'wall ms, ' + str(runs) + ' runs':34} {'median':>8} {'min':>8} {'max':>8}")
    for name, ms in results.items():
        print(row(name, ms))
    if QUERY not in results:
        return
    query_ms = statistics.median(results[QUERY])
    node_ms = statistics.median(results[NODE])
    bound_ms = statistics.median(results["python -c pass (bound)"])
    print(
        f"query - node = {query_ms - node_ms:.0f} ms of CLI (bound {bound_ms:.0f} ms); "
        f"goal: a call at most 300 ms, query {'meets' if query_ms <= 300 else 'misses'} it"
    )


if __name__ == "__main__":
    main()
