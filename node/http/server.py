"""Running a node's HTTP server until SIGTERM or SIGINT (``vhnode serve``).

The node listens on loopback unless its ``node.toml`` names another address in
``[http] host``: exposing the peer endpoints is a decision the partner's admin writes
down, not a flag typed once. Shutdown is graceful: the runner stops accepting, finishes
open requests, closes the app's client session, and then the database is closed.
SIGHUP reloads: the node reads card.json and node.toml's endpoint again
(``admin.read_for_reload``) and keeps serving. Under systemd (``Type=notify``) the
server tells the service manager when it is ready, reloading and stopping
(``node.systemd.notify``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from node import systemd
from node.config import load_config
from node.errors import ConfigError, VhnodeError
from node.flows import admin
from node.flows.context import NodeContext, open_node
from node.http.app import make_app
from node.http.connections import CappedSite
from node.logging_setup import configure_logging

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP

logger = structlog.get_logger("vhnode.server")

Notify = Callable[[str], object]


@dataclass(eq=False)
class _Served:
    """A node serve() runs: what a signal does to it."""

    ctx: NodeContext
    notify: Notify | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reloads: set[asyncio.Task[None]] = field(default_factory=set)

    def reload(self) -> None:
        task = asyncio.get_running_loop().create_task(_reload(self.ctx, self.notify))
        self.reloads.add(task)
        task.add_done_callback(self.reloads.discard)


# Several nodes may share one event loop (tests, the demo): one signal handler per loop
# stops (or reloads) all of them, rather than the last serve() silently taking the
# signal from the rest.
_served: dict[asyncio.AbstractEventLoop, set[_Served]] = {}


def check_host(ctx: NodeContext, host: str) -> None:
    """Allow loopback addresses and the hosts named in the node's config; refuse the rest."""
    if host in (ctx.cfg.http.host, "localhost"):
        return
    if ctx.cfg.tls is not None and host == ctx.cfg.tls.host:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"refusing to listen on {host}: only loopback, or the [http] host set in node.toml"
        )


def make_runner(ctx: NodeContext) -> web.AppRunner:
    """The node's app in a runner whose connections wait at most
    ``[http] header_timeout_seconds`` for a request head: aiohttp's keep-alive timeout
    runs from a connection's start and from each answer until the next head is
    complete, so it ends slowloris clients and idle keep-alive connections alike."""
    return web.AppRunner(
        make_app(ctx),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=ctx.cfg.http.header_timeout_seconds,
    )


def peer_site(
    ctx: NodeContext,
    runner: web.AppRunner,
    *,
    host: str | None = None,
    port: int = 0,
    sock: socket.socket | None = None,
) -> CappedSite | None:
    """The peer listener of a node with [tls] (docs/protocol.md §12.3): TLS 1.3, a
    client certificate asked for, /peer/ only (node/http/app.py ``tls_listener_middleware``);
    None without [tls]. A handshake must end within ``header_timeout_seconds``, as a
    request head must."""
    context = ctx.tls_server_context()
    if context is None:
        return None
    return CappedSite(
        runner,
        ctx.cfg.http.max_connections,
        host=host,
        port=port,
        sock=sock,
        ssl_context=context,
        handshake_timeout=ctx.cfg.http.header_timeout_seconds,
    )


def _on_signal(loop: asyncio.AbstractEventLoop) -> None:
    for served in _served.get(loop, ()):
        served.stop.set()


def _on_reload_signal(loop: asyncio.AbstractEventLoop) -> None:
    for served in _served.get(loop, ()):
        served.reload()


def _watch_signals(loop: asyncio.AbstractEventLoop, served: _Served) -> None:
    nodes = _served.setdefault(loop, set())
    if not nodes:
        handlers = [(sig, _on_signal) for sig in SHUTDOWN_SIGNALS]
        for sig, handler in [*handlers, (RELOAD_SIGNAL, _on_reload_signal)]:
            try:
                loop.add_signal_handler(sig, handler, loop)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not the main thread, or no signals on this platform: the caller stops
                # serve() by cancelling it instead.
                break
    nodes.add(served)


def _unwatch_signals(loop: asyncio.AbstractEventLoop, served: _Served) -> None:
    nodes = _served.get(loop)
    if nodes is None:
        return
    nodes.discard(served)
    if not nodes:
        del _served[loop]
        for sig in (*SHUTDOWN_SIGNALS, RELOAD_SIGNAL):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                break


async def _reload(ctx: NodeContext, notify: Notify | None) -> None:
    """Read the card and node.toml off the loop, then serve the new card. A card that
    does not verify leaves the one served in place: a reload never stops a node."""
    if notify is not None:
        notify("RELOADING=1")
    try:
        new = await asyncio.to_thread(admin.read_for_reload, ctx)
    except VhnodeError as e:
        # The reason is the whole story (a file that does not verify): no traceback.
        logger.error("reload_failed", node_id=ctx.node_id, reason=str(e))  # noqa: TRY400
        status = "reload failed; serving the card held"
    else:
        restart_for = admin.apply_reload(ctx, new)
        card = new.card[0]
        logger.info(
            "reloaded",
            node_id=ctx.node_id,
            card_valid_until=card.valid_until.isoformat(),
            endpoint=card.endpoint,
            # node.toml's other changes wait for a restart: say which sections.
            **({"restart_needed_for": ",".join(restart_for)} if restart_for else {}),
        )
        status = "serving"
    if notify is not None:
        notify(f"READY=1\nSTATUS={status}")


def _url(address: object, fallback_host: str, fallback_port: int) -> str:
    host, port = fallback_host, fallback_port
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), int(address[1])
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve(
    ctx: NodeContext,
    host: str,
    port: int,
    ready: asyncio.Event | None = None,
    notify: Notify | None = None,
) -> None:
    """Serve ``ctx`` on host:port until SIGTERM/SIGINT or cancellation; then close ``ctx``.
    SIGHUP reloads the card (``_reload``).

    ``ready`` is set once the socket listens. ``notify`` (``node.systemd.notify``) is
    told READY=1 then, and STOPPING=1 when the node stops. Raises ConfigError for a host
    that is neither loopback nor the configured one, OSError when the address cannot be
    bound.
    """
    loop = asyncio.get_running_loop()
    served = _Served(ctx, notify)
    stop = served.stop
    runner: web.AppRunner | None = None
    try:
        check_host(ctx, host)
        if ctx.cfg.tls is not None:
            check_host(ctx, ctx.cfg.tls.host)
        runner = make_runner(ctx)
        await runner.setup()
        await CappedSite(runner, ctx.cfg.http.max_connections, host=host, port=port).start()
        tls = ctx.cfg.tls
        peers = None if tls is None else peer_site(ctx, runner, host=tls.host, port=tls.port)
        if peers is not None:
            await peers.start()
        _watch_signals(loop, served)
        addresses = runner.addresses
        url = _url(addresses[0] if addresses else None, host, port)
        logger.info("listening", node_id=ctx.node_id, url=url)
        if tls is not None and len(addresses) > 1:
            peer_url = _url(addresses[1], tls.host, tls.port).replace("http:", "https:", 1)
            logger.info("listening_peers", node_id=ctx.node_id, url=peer_url)
        if ready is not None:
            ready.set()
        if notify is not None:
            notify(f"READY=1\nSTATUS=serving at {url}")
        await stop.wait()
        logger.info("stopping", node_id=ctx.node_id)
        if notify is not None:
            notify("STOPPING=1")
    finally:
        _unwatch_signals(loop, served)
        for task in list(served.reloads):
            task.cancel()
        if runner is not None:
            await runner.cleanup()
        ctx.close()


def run(home: Path, log_level: str = "info") -> None:
    """Open the node at ``home`` and serve it on its configured host and port, telling
    systemd how it goes when it runs as a service."""
    configure_logging(log_level, fmt=load_config(home.expanduser()).logging.format)
    ctx = open_node(home)
    asyncio.run(serve(ctx, ctx.cfg.http.host, ctx.cfg.http.port, notify=systemd.notify))
