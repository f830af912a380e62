"""Federation simulator: N real nodes on 127.0.0.1 with keys, a convenant and data.

Every node is a real aiohttp server with its own home directory, SQLite file and keys;
they talk over real HTTP. Tests stage attacks in a few lines by stopping a node,
shifting its clock, tampering with what it sends, or calling the peer endpoints directly.
"""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from node import admin
from node.app import make_app
from node.config import NodeConfig
from node.context import NodeContext, open_node
from node.registration import Registration, parse_registration

CONVENANT_ID = "vh-test-veelplegers"
PURPOSE = "casusoverleg-veelplegers"
OTHER_PURPOSE = "casusoverleg-jeugd"

# (node id, org type, scope themes or () for none, may ask bekendheid)
DEFAULT_PARTIES: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("vh-test", "veiligheidshuis", ("casus",), True),
    ("politie-test", "politie", ("veelplegers", "huiselijk_geweld"), True),
    ("om-test", "om", ("veelplegers",), False),
    ("ggz-test", "ggz", ("zorg",), False),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clock:
    """A node's clock: real time plus an offset a test can move."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class SimNode:
    node_id: str
    home: Path
    port: int
    clock: Clock
    ctx: NodeContext
    runner: web.AppRunner | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def card_json(self) -> Any:
        return admin.own_card(self.ctx)[1].to_json()


def convenant_toml(
    parties: Sequence[tuple[str, str, tuple[str, ...], bool]],
    convenant_id: str = CONVENANT_ID,
    version: int = 1,
    valid_from: str = "2020-01-01T00:00:00Z",
    valid_until: str = "2099-01-01T00:00:00Z",
) -> str:
    out = textwrap.dedent(f"""\
        id = "{convenant_id}"
        version = {version}
        title = "Testconvenant veelplegers"
        legal_basis = "AVG art. 6 lid 1 onder e; convenant Zorg- en Veiligheidshuis"
        valid_from = {valid_from}
        valid_until = {valid_until}

        [[purposes]]
        id = "{PURPOSE}"
        description = "Voorbereiding casusoverleg veelplegers"

        [[purposes]]
        id = "{OTHER_PURPOSE}"
        description = "Justitieel casusoverleg jeugd"
        """)
    for node_id, _, themes, asks in parties:
        roles = (['"provider"'] if themes else []) + (['"requester"'] if asks else [])
        out += textwrap.dedent(f"""
            [[parties]]
            node_id = "{node_id}"
            roles = [{", ".join(roles)}]
            query_purposes = [{'"' + PURPOSE + '"' if asks else ""}]
            scope_themes = [{", ".join('"' + t + '"' for t in themes)}]
            """)
    return out


@dataclass
class Federation:
    root: Path
    nodes: dict[str, SimNode] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None

    # --- set-up -----------------------------------------------------------------

    def add_node(self, node_id: str, org_type: str) -> SimNode:
        port = free_port()
        home = self.root / node_id
        cfg = NodeConfig.model_validate(
            {
                "node_id": node_id,
                "organisation": f"{org_type.capitalize()} testregio",
                "org_type": org_type,
                "endpoint": f"http://127.0.0.1:{port}",
                "http": {"host": "127.0.0.1", "port": port},
                "peers": {"timeout_seconds": 2.0, "tag_set_timeout_seconds": 10.0},
            }
        )
        admin.init_node(home, cfg)
        clock = Clock()
        node = SimNode(node_id, home, port, clock, open_node(home, clock=clock))
        for role in ("coordinator", "source", "privacy_officer", "admin"):
            node.tokens[role] = admin.create_user(node.ctx, f"{role}-{node_id}", role)
        self.nodes[node_id] = node
        return node

    def exchange_cards(self) -> None:
        for a in self.nodes.values():
            for b in self.nodes.values():
                if a is not b:
                    admin.add_peer(a.ctx, b.card_json())

    def sign_and_install(self, toml_text: str, signers: Sequence[str] | None = None) -> Any:
        """Draft at the first node, sign at every node (or only ``signers``), install."""
        first = next(iter(self.nodes.values()))
        doc = admin.draft_convenant(first.ctx, toml_text)
        for node in self.nodes.values():
            if signers is None or node.node_id in signers:
                doc = admin.sign_convenant(node.ctx, doc.to_json())
        if signers is None:
            for node in self.nodes.values():
                admin.install_convenant(node.ctx, doc.to_json())
        return doc.to_json()

    def register(self, node_id: str, *records: dict[str, Any]) -> None:
        regs: list[Registration] = [parse_registration(r) for r in records]
        from node.tag_sets import apply_changes

        apply_changes(self.nodes[node_id].ctx, regs, actor="test")

    # --- running ----------------------------------------------------------------

    async def start(self, node_id: str | None = None) -> None:
        for node in [self.nodes[node_id]] if node_id else list(self.nodes.values()):
            if node.runner is not None:
                continue
            node.runner = web.AppRunner(make_app(node.ctx), access_log=None)
            await node.runner.setup()
            await web.TCPSite(node.runner, "127.0.0.1", node.port).start()
        if self.session is None:
            self.session = aiohttp.ClientSession()

    async def stop(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.runner is not None:
            await node.runner.cleanup()
            node.runner = None

    async def close(self) -> None:
        for runner in self.__dict__.get("_extra_runners", []):
            await runner.cleanup()
        for node_id in list(self.nodes):
            await self.stop(node_id)
            self.nodes[node_id].ctx.close()
        if self.session is not None:
            await self.session.close()

    # --- the coordinator's view ---------------------------------------------------

    async def api(
        self,
        node_id: str,
        method: str,
        path: str,
        role: str = "coordinator",
        json: Any = None,
        data: bytes | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        assert self.session is not None
        node = self.nodes[node_id]
        headers = {"Authorization": f"Bearer {token or node.tokens[role]}"}
        async with self.session.request(
            method, node.url + path, json=json, data=data, headers=headers
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def query(
        self,
        requester: str,
        subjects: Sequence[dict[str, Any]],
        purpose: str = PURPOSE,
        convenant_id: str = CONVENANT_ID,
        case_ref: str = "CASUS-2026-001",
        partners: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "convenant_id": convenant_id,
            "purpose": purpose,
            "case_ref": case_ref,
            "subjects": list(subjects),
        }
        if partners is not None:
            body["partners"] = list(partners)
        status, result = await self.api(requester, "POST", "/api/v1/bekendheid", json=body)
        assert status == 200, result
        return dict(result)


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {p["partner"]: p["status"] for p in result["partners"]}


async def standard_federation(
    root: Path, parties: Sequence[tuple[str, str, tuple[str, ...], bool]] = DEFAULT_PARTIES
) -> Federation:
    fed = Federation(root)
    for node_id, org_type, _, _ in parties:
        fed.add_node(node_id, org_type)
    fed.exchange_cards()
    fed.sign_and_install(convenant_toml(parties))
    await fed.start()
    return fed


@dataclass
class Interposer:
    """Sits on a node's port in front of the real node, which moves to another port.

    Records every request body and lets a test rewrite responses or delay them: the
    network attacker and the slow partner of the threat model.
    """

    target_port: int
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    delay: float = 0.0
    rewrite: Any = None  # callable(path, body bytes) -> bytes
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import asyncio

        body = await request.read()
        self.requests.append((request.path, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method,
                f"http://127.0.0.1:{self.target_port}{request.path}",
                data=body,
                headers={"Content-Type": request.content_type},
            ) as resp,
        ):
            out = await resp.read()
            status, ctype = resp.status, resp.content_type
        if self.rewrite is not None:
            out = self.rewrite(request.path, out)
        return web.Response(status=status, body=out, content_type=ctype)


async def interpose(fed: Federation, node_id: str) -> Interposer:
    node = fed.nodes[node_id]
    await fed.stop(node_id)
    inner = free_port()
    node.runner = web.AppRunner(make_app(node.ctx), access_log=None)
    await node.runner.setup()
    await web.TCPSite(node.runner, "127.0.0.1", inner).start()
    proxy = Interposer(target_port=inner)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    proxy.runner = web.AppRunner(app, access_log=None)
    await proxy.runner.setup()
    await web.TCPSite(proxy.runner, "127.0.0.1", node.port).start()
    fed_cleanup = fed.__dict__.setdefault("_extra_runners", [])
    fed_cleanup.append(proxy.runner)
    return proxy
