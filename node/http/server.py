"""Running a node's HTTP server until SIGTERM or SIGINT (``vhnode serve``).

The node listens on loopback unless its ``node.toml`` names another address in
``[http] host``: exposing the peer endpoints is a decision the partner's admin writes
down, not a flag typed once. Shutdown is graceful: the runner stops accepting, finishes
open requests, closes the app's client session, and then the database is closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from pathlib import Path

import structlog
from aiohttp import web

from node.errors import ConfigError
from node.flows.context import NodeContext, open_node
from node.http.app import make_app
from node.http.connections import CappedSite
from node.logging_setup import configure_logging

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

logger = structlog.get_logger("vhnode.server")

# Several nodes may share one event loop (tests, the demo): one signal handler per loop
# stops all of them, rather than the last serve() silently taking the signal from the rest.
_stop_events: dict[asyncio.AbstractEventLoop, set[asyncio.Event]] = {}


def check_host(ctx: NodeContext, host: str) -> None:
    """Allow loopback addresses and the host named in the node's config; refuse the rest."""
    if host in (ctx.cfg.http.host, "localhost"):
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


def _on_signal(loop: asyncio.AbstractEventLoop) -> None:
    for event in _stop_events.get(loop, ()):
        event.set()


def _watch_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    events = _stop_events.setdefault(loop, set())
    if not events:
        for sig in SHUTDOWN_SIGNALS:
            try:
                loop.add_signal_handler(sig, _on_signal, loop)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not the main thread, or no signals on this platform: the caller stops
                # serve() by cancelling it instead.
                break
    events.add(stop)


def _unwatch_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    events = _stop_events.get(loop)
    if events is None:
        return
    events.discard(stop)
    if not events:
        del _stop_events[loop]
        for sig in SHUTDOWN_SIGNALS:
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                break


def _url(address: object, fallback_host: str, fallback_port: int) -> str:
    host, port = fallback_host, fallback_port
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), int(address[1])
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve(ctx: NodeContext, host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Serve ``ctx`` on host:port until SIGTERM/SIGINT or cancellation; then close ``ctx``.

    ``ready`` is set once the socket listens. Raises ConfigError for a host that is
    neither loopback nor the configured one, OSError when the address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runner: web.AppRunner | None = None
    try:
        check_host(ctx, host)
        runner = make_runner(ctx)
        await runner.setup()
        await CappedSite(runner, ctx.cfg.http.max_connections, host=host, port=port).start()
        _watch_signals(loop, stop)
        addresses = runner.addresses
        url = _url(addresses[0] if addresses else None, host, port)
        logger.info("listening", node_id=ctx.node_id, url=url)
        if ready is not None:
            ready.set()
        await stop.wait()
        logger.info("stopping", node_id=ctx.node_id)
    finally:
        _unwatch_signals(loop, stop)
        if runner is not None:
            await runner.cleanup()
        ctx.close()


def run(home: Path, log_level: str = "info") -> None:
    """Open the node at ``home`` and serve it on its configured host and port."""
    configure_logging(log_level)
    ctx = open_node(home)
    asyncio.run(serve(ctx, ctx.cfg.http.host, ctx.cfg.http.port))
