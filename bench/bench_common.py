"""Helpers shared by the bench scripts: federation set-up, child processes, profiles, timings.

Not a benchmark itself. Scripts do ``sys.path.insert(0, str(Path(__file__).parent))``
and ``from bench_common import ...``. Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import functools
import io
import os
import platform
import pstats
import resource
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import nacl.signing  # noqa: E402

from node.clock import ManualClock  # noqa: E402
from node.config import NodeConfig  # noqa: E402
from node.demo.synthetic import THEMES_BY_ORG_TYPE  # noqa: E402
from node.flows import admin  # noqa: E402
from node.flows.context import open_node  # noqa: E402
from node.protocol import oprf  # noqa: E402
from tests.federation import Federation, SimNode, free_port  # noqa: E402

PYTHON = sys.executable
# Limits far beyond anything a bench can reach: the token bucket must never refuse here.
HUGE_LIMITS = {"evaluations_per_minute": 1e15, "evaluation_burst": 10**12}
POLICE_THEMES = THEMES_BY_ORG_TYPE["politie"]
PARTNER_ORG_TYPES = (
    "politie", "om", "reclassering", "rvdk", "jeugdzorg", "ggz", "gemeente",
    "woningcorporatie", "dji",
)  # fmt: skip


# --- environment --------------------------------------------------------------------------


def machine_line() -> str:
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_seconds_pid(pid: int) -> float:
    """utime + stime of another process from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_seconds() -> float:
    """CPU seconds all processes on this machine have been busy (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def seconds_per_call(fn: Callable[[], object], budget: float, min_calls: int = 3) -> float:
    """Mean wall time of ``fn`` over repeated calls filling about ``budget`` seconds."""
    fn()
    calls = 0
    start = time.perf_counter()
    now = start
    while now < start + budget or calls < min_calls:
        fn()
        calls += 1
        now = time.perf_counter()
    return (now - start) / calls


# --- exact protocol crypto ------------------------------------------------------------------


def protocol_crypto_costs(batch_sizes: Sequence[int], budget: float) -> dict[str, float]:
    """Seconds per call of the exact operations of one evaluate exchange, per batch size.

    Keys: ``blind:k``, ``blind_evaluate:k``, ``finalize:k``, ``evaluate:k`` (the
    provider-side PRF used for tag sets), ``sign``, ``verify`` (Ed25519 over a message of
    the size of an evaluate request).
    """
    sk, pk = oprf.derive_key_pair(bytes(range(32)), b"bench")
    out: dict[str, float] = {}
    for k in batch_sizes:
        inputs = [f"bsn:{100000000 + i:09d}".encode() for i in range(k)]
        blinds, blinded = oprf.blind(inputs)
        evaluated, proof = oprf.blind_evaluate(sk, pk, blinded)
        out[f"blind:{k}"] = seconds_per_call(functools.partial(oprf.blind, inputs), budget)
        out[f"blind_evaluate:{k}"] = seconds_per_call(
            functools.partial(oprf.blind_evaluate, sk, pk, blinded), budget
        )
        out[f"finalize:{k}"] = seconds_per_call(
            functools.partial(oprf.finalize, inputs, blinds, blinded, evaluated, pk, proof),
            budget,
        )
        out[f"evaluate:{k}"] = seconds_per_call(
            functools.partial(oprf.evaluate, sk, inputs), budget
        )
    key = nacl.signing.SigningKey.generate()
    message = os.urandom(700)
    signed = key.sign(message)
    out["sign"] = seconds_per_call(lambda: key.sign(message), budget)
    out["verify"] = seconds_per_call(
        lambda: key.verify_key.verify(signed.message, signed.signature), budget
    )
    return out


class CryptoCounter:
    """Counts the crypto calls the node really makes (Ed25519 sign/verify, scalar mults).

    Patches PyNaCl's classes and the module globals oprf.py calls through, in this
    process only, and restores them on exit. For one instrumented round, never while timing.
    """

    _OPRF_NAMES = ("_mul", "_mul_any", "_mul_base", "_mul_base_any", "_from_hash")

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        counts = self.counts

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[label] += 1
            return original(*args, **kwargs)

        self._saved.append((owner, name, original))
        setattr(owner, name, wrapper)

    def __enter__(self) -> CryptoCounter:
        self._wrap(nacl.signing.SigningKey, "sign", "ed25519_sign")
        self._wrap(nacl.signing.VerifyKey, "verify", "ed25519_verify")
        for name in self._OPRF_NAMES:
            label = "hash_to_group" if name == "_from_hash" else "scalarmult"
            self._wrap(oprf, name, label)
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()


# --- federation set-up ----------------------------------------------------------------------


def add_node(
    fed: Federation,
    node_id: str,
    org_type: str,
    limits: dict[str, Any] | None = None,
    peer_timeout: float = 10.0,
    tls: bool = False,
) -> SimNode:
    """tests.federation.Federation.add_node with the node's [limits] raised for benchmarks;
    ``tls``: peers over mutual TLS (a self-signed certificate, card v2)."""
    port = free_port()
    home = fed.root / node_id
    raw: dict[str, Any] = {
        "node_id": node_id,
        "organisation": f"{org_type.capitalize()} benchregio",
        "org_type": org_type,
        "endpoint": f"http://127.0.0.1:{port}",
        "http": {"host": "127.0.0.1", "port": port},
        "limits": limits or HUGE_LIMITS,
        "peers": {"timeout_seconds": peer_timeout, "tag_set_timeout_seconds": 120.0},
    }
    tls_port = free_port() if tls else None
    if tls_port is not None:
        raw["endpoint"] = f"https://127.0.0.1:{tls_port}"
        raw["tls"] = {
            "cert_file": "tls/cert.pem",
            "key_file": "tls/key.pem",
            "host": "127.0.0.1",
            "port": tls_port,
        }
    cfg = NodeConfig.model_validate(raw)
    clock = ManualClock(fed.started_at)
    admin.init_node(home, cfg, clock.now())
    node = SimNode(node_id, home, port, clock, open_node(home, clock=clock), tls_port=tls_port)
    for role in ("coordinator", "source", "privacy_officer", "admin"):
        node.tokens[role] = admin.create_user(node.ctx, f"{role}-{node_id}", role)
    fed.nodes[node_id] = node
    return node


def partner_ids(n: int) -> list[tuple[str, str]]:
    """(node id, org type) of ``n`` partners."""
    out = []
    for i in range(n):
        org = PARTNER_ORG_TYPES[i % len(PARTNER_ORG_TYPES)]
        out.append((f"p{i + 1:02d}-{org}", org))
    return out


# --- child processes (vhnode serve) ---------------------------------------------------------


class NodeProcesses:
    """``python -m node serve --home H`` per node; stopped with SIGTERM by pid."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, node_id: str, home: Path, prefix: Sequence[str] = ()) -> None:
        cmd = [*prefix] if prefix else [PYTHON]
        cmd += ["-m", "node", "serve", "--home", str(home), "--log-level", "warning"]
        self.logs[node_id] = home / "serve.log"
        with self.logs[node_id].open("ab") as log_file:  # a file, not a pipe nobody drains
            self.procs[node_id] = subprocess.Popen(
                cmd,
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )

    async def wait_ready(self, urls: dict[str, str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            for node_id, url in urls.items():
                while True:
                    proc = self.procs[node_id]
                    if proc.poll() is not None:
                        err = self.logs[node_id].read_text(errors="replace")
                        raise RuntimeError(f"{node_id} exited: {err[-2000:]}")
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with s.get(url + "/healthz") as r:
                            if r.status == 200:
                                break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{node_id} did not become ready")
                    await asyncio.sleep(0.1)

    def pid(self, node_id: str) -> int:
        return self.procs[node_id].pid

    def stop_all(self, timeout: float = 30.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for node_id, proc in self.procs.items():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  ! {node_id} (pid {proc.pid}) ignored SIGTERM; killing it")
                proc.kill()
                proc.wait()
        self.procs.clear()


# --- profiles ---------------------------------------------------------------------------------

CATEGORIES = (
    "crypto", "sqlite", "json/jcs/base64", "pydantic", "aiohttp/asyncio", "node code", "other"
)  # fmt: skip


def _category(filename: str, funcname: str) -> str:
    f = filename.replace("\\", "/")
    if filename == "~":  # a built-in: classify by the name cProfile gives it
        n = funcname
        if "sqlite3" in n:
            return "sqlite"
        if any(k in n for k in ("_sodium", "crypto_", "_cffi", "sha512", "sha256", "hmac")):
            return "crypto"
        if "_json" in n or "json" in n or "binascii" in n or "b64" in n:
            return "json/jcs/base64"
        if "pydantic" in n or "validate_python" in n or "serialize" in n or "to_python" in n:
            return "pydantic"
        if any(k in n for k in ("select", "epoll", "socket", "send", "recv", "_asyncio")):
            return "aiohttp/asyncio"
        return "other"
    if "/nacl/" in f or "/rbcl/" in f or "/protocol/oprf.py" in f or funcname.startswith("crypto_"):
        return "crypto"
    if "/json/" in f or "/rfc8785/" in f or f.endswith("/base64.py"):
        return "json/jcs/base64"
    if "/pydantic" in f:
        return "pydantic"
    if "/aiohttp/" in f or "/asyncio/" in f or "/multidict/" in f or "/yarl/" in f:
        return "aiohttp/asyncio"
    if "/sqlite3/" in f:
        return "sqlite"
    if "/node/" in f or "/tests/" in f or "/bench/" in f:
        return "node code"
    if "/structlog/" in f or "/logging/" in f:
        return "other"
    if f.endswith(("/re/__init__.py", "/_strptime.py", "/datetime.py", "/dataclasses.py")):
        return "other"
    return "other"


def profile_report(
    stats: pstats.Stats, top: int = 25, title: str = "profile", show_other: int = 8
) -> str:
    """Self time by category, then the top functions by self and by cumulative time.

    With BENCH_PROFILE_DIR set, the raw profile is also dumped there for pstats/snakeviz.
    """
    dump_dir = os.environ.get("BENCH_PROFILE_DIR")
    if dump_dir:
        safe = "".join(c if c.isalnum() else "_" for c in title)[:80]
        stats.dump_stats(str(Path(dump_dir) / f"{safe}.prof"))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1e-9
    by_cat: dict[str, float] = defaultdict(float)
    for (filename, _line, funcname), (_cc, _nc, tt, _ct, callers) in raw.items():
        cat = _category(filename, funcname)
        if cat == "other" and filename == "~" and callers:
            # A generic built-in (isinstance, str.encode, BytesIO.write ...): charge its
            # time to the categories of its callers, in proportion to their calls' time.
            weights = {c: v[2] for c, v in callers.items()}
            norm = sum(weights.values()) or 1.0
            for (cf, _cl, cn), w in weights.items():
                by_cat[_category(cf, cn)] += tt * (w / norm if norm else 1 / len(weights))
            continue
        by_cat[cat] += tt
    out = io.StringIO()
    print(
        f"--- {title}: self time by category (cProfile, {total:.2f} s profiled; generic "
        "built-ins charged to their callers) ---",
        file=out,
    )
    for cat in CATEGORIES:
        print(f"  {cat:<18} {by_cat[cat]:8.2f} s  {100 * by_cat[cat] / total:5.1f} %", file=out)
    others = sorted(
        (
            (v[2], f"{Path(k[0]).name}:{k[1]}({k[2]})")
            for k, v in raw.items()
            if _category(k[0], k[2]) == "other" and k[0] != "~"
        ),
        reverse=True,
    )[:show_other]
    if others:
        print(
            "  largest 'other': " + ", ".join(f"{name} {t:.2f} s" for t, name in others), file=out
        )
    for key, label in (("tottime", "self"), ("cumulative", "cumulative")):
        buf = io.StringIO()
        saved, stats.stream = stats.stream, buf  # type: ignore[attr-defined]
        try:
            stats.sort_stats(key).print_stats(top)
        finally:
            stats.stream = saved  # type: ignore[attr-defined]
        lines = buf.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print(f"--- {title}: top {top} by {label} time ---", file=out)
        for line in lines[start : start + top + 1]:
            print("  " + line.replace(str(ROOT) + "/", "")[:160], file=out)
    return out.getvalue()


@contextlib.contextmanager
def profiled(enabled: bool) -> Iterator[cProfile.Profile | None]:
    if not enabled:
        yield None
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield prof
    finally:
        prof.disable()


def dir_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
