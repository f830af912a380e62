"""Connections to the node's listener: slow and idle clients cannot hold it
(docs/api.md "Connections", config ``[http]``).

aiohttp closes a connection that waits for a request head longer than its keep-alive
timeout, counted from the connection's start or its previous response — so that one
setting, ``header_timeout_seconds``, ends both a slowloris client that trickles its
headers and an idle keep-alive connection. The body has its own deadline (the app's body
middleware). What aiohttp does not bound is how many connections are open at once: the
site here caps them at ``max_connections``. At the cap a new connection first takes the
place of the oldest one that has no request in progress (idle, or still sending its
head); when every connection is busy it is answered 503 and closed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

logger = structlog.get_logger("vhnode.http")

_BODY = json.dumps(
    {
        "type": "https://vhnode.nl/problems/too_many_connections",
        "title": "Too many connections",
        "status": 503,
        "detail": "the node holds as many connections as it takes; retry shortly",
    }
).encode()
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/problem+json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\n" + _BODY
)


class _Full(asyncio.Protocol):
    """A connection over the cap: one 503 answer, then closed, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_FULL)
        transport.close()


def _waiting_for_a_request(handler: RequestHandler) -> bool:
    # No request being handled: the connection is idle between requests or still
    # sending a request head (aiohttp's flag, set from a complete head to the answer sent).
    return not getattr(handler, "_request_in_progress", False)


class CappedSite(web.BaseSite):
    """A TCP site (on a socket bound already, or on host and port) whose connections are
    capped at ``max_connections``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        max_connections: int,
        *,
        host: str | None = None,
        port: int = 0,
        sock: socket.socket | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float | None = None,
    ) -> None:
        super().__init__(runner)
        self._max = max_connections
        self._host, self._port, self._sock = host, port, sock
        self._ssl, self._handshake_timeout = ssl_context, handshake_timeout
        self._refused = 0

    @property
    def name(self) -> str:
        if self._sock is not None:
            host, port = self._sock.getsockname()[:2]
        else:
            host, port = self._host, self._port
        return f"{'https' if self._ssl else 'http'}://{host}:{port}"

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None
        open_ = [h for h in server.connections if h.transport is not None]
        if len(open_) >= self._max:
            idle = next((h for h in open_ if _waiting_for_a_request(h)), None)
            if idle is None:
                self._refused += 1
                if self._refused == 1 or self._refused % 1000 == 0:
                    logger.warning(
                        "connections_full", max_connections=self._max, refused=self._refused
                    )
                return _Full()
            idle.force_close()  # the oldest without a request in progress makes room
        return server()

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(
                self._protocol,
                sock=self._sock,
                backlog=self._backlog,
                ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout if self._ssl else None,
            )
        else:
            self._server = await loop.create_server(
                self._protocol,
                self._host,
                self._port,
                backlog=self._backlog,
                reuse_address=True,
                ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout if self._ssl else None,
            )
