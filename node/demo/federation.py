"""The demo's node processes: homes set up, ``node serve`` started, checked, stopped.

Processes are stopped with SIGTERM (SIGKILL after a deadline); a stopped node's log is
verified offline from its database.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node import tls
from node.config import CARD_FILE, DB_FILE, NodeConfig
from node.demo.partners import (
    CONVENANT_ID,
    COORDINATOR_NODE,
    COORDINATOR_USER,
    DETAIL_PARTNER,
    LIAISON_USER,
    PARTNERS,
    DemoError,
    PartnerSpec,
    convenant_toml,
)
from node.demo.scenario import Scenario
from node.demo.truth import GroundTruth
from node.flows import admin
from node.flows.context import NodeContext, open_node
from node.protocol.peer_card import verify_card
from node.store import log

HEALTH_DEADLINE_SECONDS = 30.0
STOP_DEADLINE_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05


def serve_command(home: Path) -> list[str]:
    """How a node process is started (a test replaces ``node.demo.serve_command``)."""
    return [sys.executable, "-m", "node", "serve", "--home", str(home)]


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens of the demo's users: the coordinator at the Veiligheidshuis node and
    the liaison at the detail partner."""

    coordinator: str
    liaison: str


@dataclass
class DemoNode:
    spec: PartnerSpec
    home: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    started: bool = False
    stopped_by: str | None = None
    import_report: dict[str, Any] = field(default_factory=dict)
    # The peer listener's port: peers speak mutual TLS there (the demo's default);
    # None: a plain HTTP node (``vhnode demo --plain-http``).
    tls_port: int | None = None

    @property
    def node_id(self) -> str:
        return self.spec.node_id

    @property
    def url(self) -> str:
        """The local listener (API, web app): plain HTTP on loopback."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """Where peers reach the node: the card's endpoint."""
        if self.tls_port is None:
            return self.url
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def stderr_path(self) -> Path:
        return self.home / "serve.stderr.log"

    def as_json(self, truth: GroundTruth | None) -> dict[str, Any]:
        proc = self.process
        return {
            "node_id": self.node_id,
            "organisation": self.spec.organisation,
            "org_type": self.spec.org_type,
            "endpoint": self.endpoint,
            "local_url": self.url,
            "mutual_tls": self.tls_port is not None,
            "home": str(self.home),
            "scope_themes": list(self.spec.scope_themes),
            "query_purposes": list(self.spec.query_purposes),
            "registrations": self.import_report.get("rows", 0),
            "in_scope_registrations": truth.in_scope_count[self.node_id] if truth else None,
            "import": {
                k: self.import_report.get(k)
                for k in ("rows", "upserted", "invalid", "tag_set_versions")
            },
            "pid": proc.pid if proc else None,
            "started": self.started,
            "returncode": proc.returncode if proc else None,
            "stopped_by": self.stopped_by,
        }


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open until all are chosen)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the same code as this process
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tail(path: Path, max_chars: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-max_chars:]


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def http_json(
    method: str,
    url: str,
    token: str | None = None,
    body: Any = None,
    timeout: float = HTTP_TIMEOUT_SECONDS,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - http://127.0.0.1 only
    try:
        with _opener.open(req, timeout=timeout) as resp:
            status, raw = int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        status, raw = int(e.code), e.read()
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


def start_nodes(nodes: Sequence[DemoNode]) -> None:
    # ``serve_command`` is looked up on the package at call time: that is where a test
    # replaces it (``monkeypatch.setattr(node.demo, "serve_command", ...)``).
    from node import demo as package  # noqa: PLC0415 - the package imports this module

    env = _child_env()
    for node in nodes:
        # Appended to: a node started again (``demo --ui``) keeps its first run's output,
        # which the demo searches for leaked detail texts.
        with node.stderr_path.open("ab") as err:
            node.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                package.serve_command(node.home),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=node.home,
            )


def wait_healthy(nodes: Sequence[DemoNode], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            assert node.process is not None
            if node.process.poll() is not None:
                raise DemoError(
                    f"node {node.node_id} exited with code {node.process.returncode} while "
                    f"starting; its stderr:\n{_tail(node.stderr_path)}"
                )
            with suppress(OSError, ValueError):
                status, body = http_json("GET", node.url + "/healthz", timeout=1.0)
                if status == 200 and isinstance(body, dict) and body.get("node_id") == node.node_id:
                    node.started = True
                    waiting.remove(node)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(n.node_id for n in waiting)
            stderr = "\n".join(f"--- {n.node_id} stderr:\n{_tail(n.stderr_path)}" for n in waiting)
            raise DemoError(f"no answer on /healthz within {deadline_s:g} s from {names}\n{stderr}")
        if waiting:
            time.sleep(POLL_SECONDS)


def stop_nodes(nodes: Sequence[DemoNode], deadline_s: float = STOP_DEADLINE_SECONDS) -> None:
    """SIGTERM every running process, wait, SIGKILL what is left after the deadline."""
    running = [n for n in nodes if n.process is not None and n.process.poll() is None]
    for node in running:
        assert node.process is not None
        with suppress(ProcessLookupError):
            node.process.send_signal(signal.SIGTERM)
        node.stopped_by = "sigterm"
    deadline = time.monotonic() + deadline_s
    try:
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
                node.stopped_by = "sigkill"
    except BaseException:  # a second Ctrl-C while waiting: do not wait politely any more
        for node in running:
            assert node.process is not None
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()
                node.stopped_by = "sigkill"
        raise


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM to the demo unwinds like Ctrl-C, so the ``finally`` stops the children."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def verify_home(home: Path, node_id: str) -> dict[str, Any]:
    """Verify a stopped node's log from its database, with the key of its peer card."""
    card, _ = verify_card(json.loads((home / CARD_FILE).read_text()))
    if card.node_id != node_id:
        return {
            "ok": False,
            "entries": 0,
            "heads": 0,
            "problems": [{"seq": None, "kind": "bad_head", "detail": "card of another node"}],
        }
    conn = _open_stopped(home / DB_FILE)
    try:
        return admin.verify_report_json(log.verify(conn, node_id, card.signing_key_bytes))
    finally:
        conn.close()


def _open_stopped(db_path: Path) -> sqlite3.Connection:
    """A stopped node's database, read without writing to it."""
    wal = db_path.with_name(db_path.name + "-wal")
    # A cleanly stopped node has checkpointed everything into the main file: read it as
    # immutable, which creates no -wal/-shm files. A WAL with frames (a killed process)
    # must be read through SQLite's WAL index; mode=ro does that without writing the log.
    clean = not wal.exists() or wal.stat().st_size == 0
    try:
        conn = sqlite3.connect(
            db_path.as_uri() + ("?immutable=1" if clean else "?mode=ro"), uri=True
        )
        conn.execute("SELECT count(*) FROM log_entries").fetchone()
    except sqlite3.Error:  # read-only WAL access needs the -shm file; fall back
        conn = sqlite3.connect(db_path)
    return conn


def log_entries(home: Path) -> list[tuple[str, str]]:
    """(kind, canonical JSON body) of every entry of a stopped node's log, in order."""
    conn = _open_stopped(home / DB_FILE)
    try:
        rows = conn.execute("SELECT kind, body FROM log_entries ORDER BY seq").fetchall()
        return [(str(kind), str(body)) for kind, body in rows]
    finally:
        conn.close()


# --- set-up -----------------------------------------------------------------------------


def set_up(
    nodes: Sequence[DemoNode],
    scenario: Scenario,
    say: Callable[[str], None],
    timings: dict[str, float],
) -> Tokens:
    """Init, peer cards, convenant, imports, the coordinator and the liaison user."""
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    for node in nodes:
        raw: dict[str, Any] = {
            "node_id": node.node_id,
            "organisation": node.spec.organisation,
            "org_type": node.spec.org_type,
            "endpoint": node.endpoint,
            "http": {"host": "127.0.0.1", "port": node.port},
        }
        if node.tls_port is not None:
            # init_node makes each node a self-signed certificate; its key goes on the card.
            raw["tls"] = {
                "cert_file": tls.CERT_FILE,
                "key_file": tls.KEY_FILE,
                "host": "127.0.0.1",
                "port": node.tls_port,
            }
        admin.init_node(node.home, NodeConfig.model_validate(raw), now)
    with ExitStack() as stack:
        ctxs: dict[str, NodeContext] = {}
        for node in nodes:
            ctx = open_node(node.home)
            stack.callback(ctx.close)
            ctxs[node.node_id] = ctx
        cards = {n.node_id: json.loads((n.home / CARD_FILE).read_text()) for n in nodes}
        for a in nodes:
            for b in nodes:
                if a is not b:
                    admin.add_peer(ctxs[a.node_id], cards[b.node_id])
        mtls = all(n.tls_port is not None for n in nodes)
        say(
            f"initialised {len(nodes)} nodes and exchanged peer cards "
            f"({len(nodes) * (len(nodes) - 1)} cards added); peers speak "
            + (
                "mutual TLS (a self-signed certificate per node, its key on the card)"
                if mtls
                else "plain HTTP"
            )
        )
        root = nodes[0].home.parent
        source = convenant_toml(PARTNERS, now)
        (root / "convenant.toml").write_text(source)
        doc = admin.draft_convenant(ctxs[COORDINATOR_NODE], source)
        for node in nodes:
            doc = admin.sign_convenant(ctxs[node.node_id], doc.to_json())
        (root / "convenant.json").write_text(json.dumps(doc.to_json(), indent=2) + "\n")
        for node in nodes:
            admin.install_convenant(ctxs[node.node_id], doc.to_json())
        say(
            f"convenant {CONVENANT_ID}: drafted at {COORDINATOR_NODE}, signed by all "
            f"{len(doc.signatures)} parties, installed everywhere"
        )
        timings["init_and_convenant"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        imports = nodes[0].home.parent / "imports"
        imports.mkdir(exist_ok=True)
        for node in nodes:
            path = imports / f"{node.node_id}.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for entry in scenario.registries[node.node_id]:
                    f.write(entry.registration.model_dump_json() + "\n")
            report = admin.import_registrations(
                ctxs[node.node_id], path, "jsonl", actor="demo-import"
            )
            node.import_report = report.as_json(max_errors=5)
            if report.errors:
                raise DemoError(
                    f"{node.node_id}: {len(report.errors)} invalid rows in {path}: "
                    f"{report.errors[0].reason}"
                )
        total = sum(n.import_report["rows"] for n in nodes)
        texts = sum(len(e.registration.details) for r in scenario.registries.values() for e in r)
        timings["import"] = time.perf_counter() - t1
        say(
            f"imported {total} registrations ({total // len(nodes)} per partner, JSON Lines "
            f"through admin.import_registrations, {texts} synthetic detail texts) in "
            f"{timings['import']:.1f} s"
        )
        return Tokens(
            coordinator=admin.create_user(ctxs[COORDINATOR_NODE], COORDINATOR_USER, "coordinator"),
            liaison=admin.create_user(ctxs[DETAIL_PARTNER], LIAISON_USER, "liaison"),
        )
