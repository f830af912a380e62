"""Slow and idle clients cannot hold a node's listener (docs/api.md "Connections").

Real sockets against a real node on 127.0.0.1 with short limits: a slowloris client that
trickles its request head is closed by the server within ``header_timeout_seconds``; a
body that does not arrive within ``body_timeout_seconds`` is answered 408 and closed;
connections beyond ``max_connections`` take the place of idle ones, so a health check
still gets through while many idle keep-alive connections are open; a client that
aborts its upload is logged as such at info, not as an error with a traceback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from node.config import HttpConfig
from node.http.plumbing import SESSION
from tests.federation import EVALUATE_PATH, Federation, standard_federation

NODE = "politie-test"
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 16


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    f = await standard_federation(tmp_path)
    node = f.nodes[NODE]
    await f.stop(NODE)
    http = node.ctx.cfg.http.model_copy(
        update={
            "header_timeout_seconds": HEADER_TIMEOUT,
            "body_timeout_seconds": BODY_TIMEOUT,
            "max_connections": MAX_CONNECTIONS,
        }
    )
    node.ctx.cfg = node.ctx.cfg.model_copy(update={"http": http})
    await f.start(NODE)
    yield f
    await f.close()


async def _open(fed: Federation) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", fed.nodes[NODE].port)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed the connection (fails if it did not
    close within ``seconds``)."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_a_slowloris_connection_is_closed_within_the_header_timeout(
    fed: Federation,
) -> None:
    reader, writer = await _open(fed)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    async def trickle() -> None:
        # One more header line every 0.2 s, never the blank line that ends the head.
        for i in range(100):
            await asyncio.sleep(0.2)
            if writer.is_closing():
                return
            writer.write(f"X-Slow-{i}: a\r\n".encode())

    task = asyncio.create_task(trickle())
    try:
        sent = await _closed_within(reader, HEADER_TIMEOUT + 2.0)
    finally:
        task.cancel()
        writer.close()
    elapsed = time.monotonic() - started
    assert sent == b""  # closed, no answer: there was no request
    assert HEADER_TIMEOUT * 0.9 <= elapsed <= HEADER_TIMEOUT + 2.0, elapsed


async def test_an_idle_keep_alive_connection_is_closed_after_the_header_timeout(
    fed: Federation,
) -> None:
    reader, writer = await _open(fed)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    await reader.readexactly(length)
    assert await _closed_within(reader, HEADER_TIMEOUT + 2.0) == b""
    writer.close()


async def test_a_body_that_does_not_arrive_is_answered_408_and_closed(fed: Federation) -> None:
    reader, writer = await _open(fed)
    writer.write(
        b"POST " + EVALUATE_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/jose+json\r\nContent-Length: 5000\r\n\r\n{"pay'
    )
    started = time.monotonic()
    answer = await _closed_within(reader, BODY_TIMEOUT + 12.0)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    problem = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert problem["type"] == "https://vhnode.nl/problems/request_timeout"
    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9


async def test_idle_connections_make_room_for_a_new_one(fed: Federation) -> None:
    idle = [await _open(fed) for _ in range(MAX_CONNECTIONS * 3)]
    try:
        await asyncio.sleep(0.1)
        assert fed.session is not None
        async with fed.session.get(fed.nodes[NODE].url + "/healthz") as resp:
            assert resp.status == 200
    finally:
        for _, w in idle:
            w.close()


async def test_when_every_connection_is_busy_a_new_one_gets_503(fed: Federation) -> None:
    # Connections busy sending a body (a request in progress) are not taken over.
    busy = []
    for _ in range(MAX_CONNECTIONS):
        r, w = await _open(fed)
        w.write(
            b"POST " + EVALUATE_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 5000\r\n\r\n{"
        )
        busy.append((r, w))
    try:
        await asyncio.sleep(0.2)
        reader, writer = await _open(fed)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await _closed_within(reader, 5.0)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"too_many_connections" in answer
    finally:
        for _, w in busy:
            w.close()


async def test_an_aborted_upload_is_no_unhandled_error(fed: Federation) -> None:
    with structlog.testing.capture_logs() as logs:
        _, writer = await _open(fed)
        writer.write(
            b"POST " + EVALUATE_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"x" * 1000
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.transport.abort()
        await asyncio.sleep(0.5)
    events = [(e["event"], e["log_level"]) for e in logs]
    assert ("unhandled_error", "error") not in events, logs
    aborted = [e for e in logs if e.get("code") == "client_aborted"]
    assert [e["log_level"] for e in aborted] == ["info"], logs
    assert all("exc_info" not in e for e in aborted)


async def test_the_peer_client_gives_up_a_pooled_connection_before_a_partner_closes_it(
    tmp_path: Path,
) -> None:
    """A partner with default settings closes an idle connection after its header timeout;
    a node that kept its pooled connection longer could send a request into that close and
    read a healthy partner as unreachable. aiohttp exposes the connector's idle limit only
    as a private attribute, hence the getattr."""
    f = await standard_federation(tmp_path)
    try:
        node = f.nodes[NODE]
        assert node.runner is not None
        connector = node.runner.app[SESSION].connector
        assert connector is not None
        partner_default = HttpConfig().header_timeout_seconds
        assert getattr(connector, "_keepalive_timeout") < partner_default  # noqa: B009
    finally:
        await f.close()
