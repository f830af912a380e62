"""Federation simulator: N real nodes on 127.0.0.1 with keys, a convenant and data.

Every node is a real aiohttp server with its own home directory, SQLite file and keys;
they talk over real HTTP. Tests stage attacks in a few lines by stopping a node,
setting its clock, tampering with what it sends, or calling the peer endpoints directly.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from node.clock import SYSTEM_CLOCK, ManualClock
from node.config import NodeConfig
from node.flows import admin
from node.flows.context import NodeContext, open_node
from node.flows.publishing import apply_changes
from node.http.app import make_app
from node.http.connections import CappedSite
from node.http.server import make_runner, peer_site
from node.protocol.registration import Registration, parse_registration

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


def bound_socket() -> socket.socket:
    """A loopback socket bound to a free port and kept: no other socket (an outgoing
    client connection's ephemeral port, say) can take the port before the server starts."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SimNode:
    node_id: str
    home: Path
    port: int
    clock: ManualClock
    ctx: NodeContext
    runner: web.AppRunner | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    sock: socket.socket | None = None  # held from init until the first start
    # A TLS node (Federation(tls=True)): its peer listener, where its card's endpoint is.
    tls_port: int | None = None
    tls_sock: socket.socket | None = None

    @property
    def url(self) -> str:
        """The local listener (API, web app): plain HTTP on loopback, TLS node or not."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def peer_url(self) -> str:
        """Where peers reach this node: its card's endpoint."""
        if self.tls_port is None:
            return self.url
        return f"https://127.0.0.1:{self.tls_port}"

    def card_json(self) -> Any:
        return admin.own_card(self.ctx)[1].to_json()


def convenant_toml(
    parties: Sequence[tuple[str, str, tuple[str, ...], bool]],
    convenant_id: str = CONVENANT_ID,
    version: int = 1,
    valid_from: str = "2020-01-01T00:00:00Z",
    valid_until: str = "2099-01-01T00:00:00Z",
    extra: str = "",
) -> str:
    """A convenant's TOML source; ``extra`` is appended (categories, detail rules)."""
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
    return out + extra


@dataclass
class Federation:
    root: Path
    nodes: dict[str, SimNode] = field(default_factory=dict)
    # Every node's clock starts here and stands still until a test sets or advances it.
    started_at: datetime = field(default_factory=SYSTEM_CLOCK.now)
    session: aiohttp.ClientSession | None = None
    # Nodes added from now on speak mutual TLS between them (a self-signed certificate
    # each, made by init_node; card v2), with these [tls] settings on top.
    tls: bool = False
    tls_settings: dict[str, Any] = field(default_factory=dict)
    # Writes <home>/tls/cert.pem and key.pem before init (a CA's certificate, say);
    # unset: init_node makes a self-signed one.
    tls_issue: Callable[[Path, str], None] | None = None

    # --- set-up -----------------------------------------------------------------

    def add_node(self, node_id: str, org_type: str, *, tls: bool | None = None) -> SimNode:
        sock = bound_socket()
        port = int(sock.getsockname()[1])
        home = self.root / node_id
        raw: dict[str, Any] = {
            "node_id": node_id,
            "organisation": f"{org_type.capitalize()} testregio",
            "org_type": org_type,
            "endpoint": f"http://127.0.0.1:{port}",
            "http": {"host": "127.0.0.1", "port": port},
            "peers": {"timeout_seconds": 4.0, "tag_set_timeout_seconds": 10.0},
        }
        tls_sock = None
        if self.tls if tls is None else tls:
            tls_sock = bound_socket()
            tls_port = int(tls_sock.getsockname()[1])
            raw["endpoint"] = f"https://127.0.0.1:{tls_port}"
            raw["tls"] = {
                "cert_file": "tls/cert.pem",
                "key_file": "tls/key.pem",
                "host": "127.0.0.1",
                "port": tls_port,
                **self.tls_settings,
            }
        cfg = NodeConfig.model_validate(raw)
        clock = ManualClock(self.started_at)
        if tls_sock is not None and self.tls_issue is not None:
            self.tls_issue(home, node_id)
        admin.init_node(home, cfg, clock.now())
        node = SimNode(node_id, home, port, clock, open_node(home, clock=clock), sock=sock)
        if tls_sock is not None:
            node.tls_sock, node.tls_port = tls_sock, int(tls_sock.getsockname()[1])
        for role in ("coordinator", "source", "privacy_officer", "liaison", "admin"):
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
        apply_changes(self.nodes[node_id].ctx, regs, actor="test")

    # --- running ----------------------------------------------------------------

    async def start(self, node_id: str | None = None) -> None:
        for node in [self.nodes[node_id]] if node_id else list(self.nodes.values()):
            if node.runner is not None:
                continue
            # The server's own runner and site: its timeouts and connection cap.
            node.runner = make_runner(node.ctx)
            await node.runner.setup()
            cap = node.ctx.cfg.http.max_connections
            if node.sock is not None:
                await CappedSite(node.runner, cap, sock=node.sock).start()
                node.sock = None
            else:
                await CappedSite(node.runner, cap, host="127.0.0.1", port=node.port).start()
            if node.tls_port is not None:  # the peer listener: TLS, /peer/ only
                if node.tls_sock is not None:
                    site = peer_site(node.ctx, node.runner, sock=node.tls_sock)
                    node.tls_sock = None
                else:
                    site = peer_site(node.ctx, node.runner, host="127.0.0.1", port=node.tls_port)
                assert site is not None
                await site.start()
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
            node = self.nodes[node_id]
            if node.sock is not None:  # a node that was never started
                node.sock.close()
            if node.tls_sock is not None:
                node.tls_sock.close()
            node.ctx.close()
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
    root: Path,
    parties: Sequence[tuple[str, str, tuple[str, ...], bool]] = DEFAULT_PARTIES,
    *,
    tls: bool = False,
) -> Federation:
    """The default parties, cards exchanged, the convenant installed, serving; with
    ``tls``, over mutual TLS (each node's card a v2 card with its certificate)."""
    fed = Federation(root, tls=tls)
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
    # Per path, a delay of its own (a partner that answers one request and stalls on the next).
    delay_paths: dict[str, float] = field(default_factory=dict)
    rewrite: Any = None  # callable(path, body bytes) -> bytes
    runner: web.AppRunner | None = None
    # Per path, the next requests' fast failures, one each, before the node sees them: an
    # HTTP status answered instead (a proxy's 502/503), or None: the connection is cut
    # before any answer (a reset).
    failures: dict[str, list[int | None]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.path, body))
        queued = self.failures.get(request.path)
        if queued:
            status = queued.pop(0)
            if status is None:
                assert request.transport is not None
                request.transport.abort()
                raise ConnectionResetError("cut before any answer")
            return web.Response(status=status, text="upstream unavailable")
        delay = self.delay_paths.get(request.path, self.delay)
        if delay:
            await asyncio.sleep(delay)
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method,
                f"http://127.0.0.1:{self.target_port}{request.path}",
                data=body,
                # The local API behind the proxy still needs its bearer token.
                headers={"Content-Type": request.content_type}
                | {k: v for k, v in request.headers.items() if k == "Authorization"},
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
    inner_sock = bound_socket()
    inner = int(inner_sock.getsockname()[1])
    node.runner = web.AppRunner(make_app(node.ctx), access_log=None)
    await node.runner.setup()
    await web.SockSite(node.runner, inner_sock).start()
    proxy = Interposer(target_port=inner)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    proxy.runner = web.AppRunner(app, access_log=None)
    await proxy.runner.setup()
    await web.TCPSite(proxy.runner, "127.0.0.1", node.port).start()
    fed_cleanup = fed.__dict__.setdefault("_extra_runners", [])
    fed_cleanup.append(proxy.runner)
    return proxy


# --- crafting peer messages and reading what nodes did (refusal and attack tests) ---------
# Appended helpers; the imports live here so this block stays self-contained.

import json as jsonlib  # noqa: E402
import secrets  # noqa: E402

import nacl.signing  # noqa: E402

from node.protocol import jws, oprf  # noqa: E402
from node.protocol.bekendheid import (  # noqa: E402
    EVALUATE_REQUEST_TYP,
    TAG_SET_REQUEST_TYP,
    EvaluateRequest,
    TagSetRequest,
)

EVALUATE_PATH = "/peer/v1/evaluate"
TAG_SET_PATH = "/peer/v1/tag-set"
JOSE = "application/jose+json"
PROBLEM = "application/problem+json"
BSN_KEY = b"bsn:123456782"

Rewrite = Callable[[str, bytes], bytes]


def toml_time(t: datetime) -> str:
    """A TOML datetime literal for ``convenant_toml``'s validity window."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def outsider(
    fed: Federation,
    node_id: str = "gemeente-test",
    org_type: str = "gemeente",
    known_by: Sequence[str] = (),
) -> SimNode:
    """A real node outside the convenant whose card only ``known_by`` have added."""
    node = fed.add_node(node_id, org_type)
    for other in known_by:
        admin.add_peer(fed.nodes[other].ctx, node.card_json())
    return node


def evaluate_request(
    fed: Federation,
    requester: str,
    partner: str,
    *,
    elements: Sequence[bytes] | None = None,
    signer: nacl.signing.SigningKey | None = None,
    **fields: Any,
) -> jws.SignedDocument:
    """A signed evaluate request as ``requester``'s client would send it; ``fields``
    override any message field (``blinded_elements`` as base64url text)."""
    if elements is None:
        _, elements = oprf.blind([BSN_KEY])
    values: dict[str, Any] = {
        "requester": requester,
        "partner": partner,
        "convenant_id": CONVENANT_ID,
        "convenant_version": 1,
        "purpose": PURPOSE,
        "case_ref": "CASUS-TEST",
        "requesting_user": "tester",
        "trace_id": secrets.token_hex(16),
        "nonce": jws.b64u_encode(secrets.token_bytes(16)),
        "issued_at": fed.nodes[requester].clock.now(),
        "blinded_elements": tuple(jws.b64u_encode(e) for e in elements),
    }
    values.update(fields)
    req = EvaluateRequest(**values)
    key = signer or fed.nodes[requester].ctx.keys.signing
    return jws.sign(EVALUATE_REQUEST_TYP, req.wire(), key)


def tag_set_request(
    fed: Federation,
    requester: str,
    partner: str,
    *,
    signer: nacl.signing.SigningKey | None = None,
    **fields: Any,
) -> jws.SignedDocument:
    """A signed tag-set request (full set unless ``since_version`` is given)."""
    values: dict[str, Any] = {
        "requester": requester,
        "partner": partner,
        "convenant_id": CONVENANT_ID,
        "convenant_version": 1,
        "since_version": 0,
        "nonce": jws.b64u_encode(secrets.token_bytes(16)),
        "issued_at": fed.nodes[requester].clock.now(),
    }
    values.update(fields)
    req = TagSetRequest(**values)
    key = signer or fed.nodes[requester].ctx.keys.signing
    return jws.sign(TAG_SET_REQUEST_TYP, req.wire(), key)


def jws_bytes(doc: jws.SignedDocument) -> bytes:
    return jsonlib.dumps(doc.to_json()).encode()


@dataclass(frozen=True)
class PeerReply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)


async def post_peer(
    fed: Federation,
    node_id: str,
    path: str,
    body: bytes | jws.SignedDocument,
    content_type: str = JOSE,
) -> PeerReply:
    """POST raw bytes (or a signed document) to a node's peer endpoint."""
    assert fed.session is not None
    data = jws_bytes(body) if isinstance(body, jws.SignedDocument) else body
    async with fed.session.post(
        fed.nodes[node_id].url + path, data=data, headers={"Content-Type": content_type}
    ) as resp:
        return PeerReply(resp.status, resp.content_type, await resp.read())


def open_signed(fed: Federation, signer: str, body: bytes, typ: str) -> dict[str, Any]:
    """Parse a JWS and verify it with ``signer``'s signing key (raises if it does not
    verify); returns the payload."""
    doc = jws.parse_bytes(body, typ)
    keys = fed.nodes[signer].ctx.keys
    assert doc.kids() == (keys.signing_fingerprint,)
    doc.verify(keys.signing_fingerprint, keys.signing_public)
    return doc.payload


def log_entries(node: SimNode, kind: str | None = None) -> list[dict[str, Any]]:
    """The node's transparency-log entry bodies, oldest first (of one kind if given)."""
    if kind is None:
        rows = node.ctx.conn.execute("SELECT body FROM log_entries ORDER BY seq")
    else:
        rows = node.ctx.conn.execute(
            "SELECT body FROM log_entries WHERE kind = ? ORDER BY seq", (kind,)
        )
    return [jsonlib.loads(r[0]) for r in rows]


STATE_TABLES = (
    "log_entries",
    "tree_heads",
    "registrations",
    "registration_details",
    "tag_set_versions",
    "tag_set_members",
    "tag_set_buckets",
    "seen_nonces",
    "peers",
    "convenants",
    "users",
    "peer_tag_sets",
    "peer_tags",
    "peer_tag_buckets",
    "detail_requests",
    "detail_categories",
    "hit_notices",
)


def state_counts(fed: Federation) -> dict[str, dict[str, int]]:
    """Row counts of every stateful table at every node: equal before and after means
    nothing was stored, logged or published."""
    return {
        node_id: {
            t: int(node.ctx.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
            for t in STATE_TABLES
        }
        for node_id, node in fed.nodes.items()
    }


def only_on(path: str, rewrite: Rewrite) -> Rewrite:
    """An Interposer rewrite that touches only responses to ``path``."""

    def apply(p: str, body: bytes) -> bytes:
        return rewrite(p, body) if p == path else body

    return apply


def replace_response(status: int, text: str, content_type: str) -> Rewrite:
    """An Interposer rewrite that answers with this response instead of the node's."""
    cls = type("ReplacedResponse", (web.HTTPException,), {"status_code": status})

    def rewrite(path: str, original: bytes) -> bytes:
        raise cls(text=text, content_type=content_type)

    return rewrite


def flip_signature_byte(body: bytes, index: int = 0) -> bytes:
    """The same JWS with one byte of its (first) signature inverted."""
    obj = jsonlib.loads(body)
    sig = bytearray(jws.b64u_decode(obj["signatures"][0]["signature"]))
    sig[index] ^= 0xFF
    obj["signatures"][0]["signature"] = jws.b64u_encode(bytes(sig))
    return jsonlib.dumps(obj).encode()


def resign(
    body: bytes,
    key: nacl.signing.SigningKey,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> bytes:
    """The JWS's payload, optionally edited in place by ``edit``, signed by ``key`` alone."""
    doc = jws.parse_bytes(body)
    payload = jsonlib.loads(jsonlib.dumps(doc.payload))
    if edit is not None:
        edit(payload)
    return jws_bytes(jws.sign(doc.typ, payload, key))


def partner_result(result: dict[str, Any], partner: str) -> dict[str, Any]:
    return next(p for p in result["partners"] if p["partner"] == partner)


# --- rolling a node's database back (log rewrite and fork attacks) -----------------


def snapshot(fed: Federation, node_id: str) -> Path:
    """A consistent copy of a node's database now (to stage a node rolling back)."""
    node = fed.nodes[node_id]
    path = node.home.parent / f"{node_id}-snapshot.db"
    node.ctx.conn.execute("VACUUM INTO ?", (str(path),))
    return path


async def restore(fed: Federation, node_id: str, snapshot: Path) -> None:
    """Stop a node, put an old copy of its database back, and start it again."""
    node = fed.nodes[node_id]
    await fed.stop(node_id)
    node.ctx.close()
    for suffix in ("", "-wal", "-shm"):
        (node.home / f"node.db{suffix}").unlink(missing_ok=True)
    shutil.copy(snapshot, node.home / "node.db")
    (node.home / "node.db").chmod(0o600)  # as restored by its admin: the node refuses others
    node.ctx = open_node(node.home, clock=node.clock)
    await fed.start(node_id)


# --- withdrawal from a convenant (§5.7) ----------------------------------------------------


def withdraw(
    fed: Federation,
    node_id: str,
    *,
    at: datetime | None = None,
    installed_by: Sequence[str] | None = None,
    convenant_id: str = CONVENANT_ID,
) -> Any:
    """``node_id`` signs its withdrawal (effective ``at``, default now) and installs it;
    every other node (or only ``installed_by``) installs it too. Returns the JWS object."""
    doc = admin.withdraw_from_convenant(
        fed.nodes[node_id].ctx, convenant_id, "Wij treden uit het convenant", at=at
    ).to_json()
    for other in fed.nodes.values():
        if other.node_id != node_id and (installed_by is None or other.node_id in installed_by):
            admin.install_withdrawal(other.ctx, doc)
    return doc
