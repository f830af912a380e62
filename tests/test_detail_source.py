"""The source-system endpoint client (docs/protocol.md §14.10) against a real HTTP server.

The source system is played by a small aiohttp server on 127.0.0.1; each test sets how it
answers. Every failure must give no text at all (all or nothing), the right failure code,
and a detail that names neither a ref nor a text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from node.config import DetailsConfig
from node.flows.detail_source import SourceAnswer, ask_source
from node.protocol.detail import MAX_ENTRY_CHARS, SOURCE_TOO_LARGE, SOURCE_UNAVAILABLE
from tests.federation import bound_socket, free_port

REFS = ("BVH-1", "BVH-7")
CATEGORIES = ("contactpersoon", "toezicht")
TRACE = "0123456789abcdef0123456789abcdef"
CONTACT = "Wijkagent J. de Vries, 06-12345678"
SUPERVISION = "Reclasseringstoezicht tot 2027-03-01"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SourceSystem:
    """The partner's source system: records every call and answers with ``handler``."""

    port: int
    handler: Handler | None = None
    calls: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    elsewhere: int = 0  # calls to /elsewhere (a redirect's target)
    # Set at teardown: a handler that stalls waits for it, so the server can stop.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/detail"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append((dict(request.headers), await request.json()))
        assert self.handler is not None
        return await self.handler(request)

    async def handle_elsewhere(self, request: web.Request) -> web.StreamResponse:
        self.elsewhere += 1
        return web.json_response({"details": []})

    def answer(self, data: Any) -> None:
        async def handler(_: web.Request) -> web.StreamResponse:
            return web.json_response(data)

        self.handler = handler


@pytest.fixture
async def source() -> AsyncIterator[SourceSystem]:
    sock = bound_socket()
    system = SourceSystem(int(sock.getsockname()[1]))
    app = web.Application()
    app.router.add_post("/detail", system.handle)
    app.router.add_post("/elsewhere", system.handle_elsewhere)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield system
    finally:
        system.release.set()
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def config(url: str | None, **kw: Any) -> DetailsConfig:
    return DetailsConfig.model_validate({"source_url": url, **kw})


async def ask(
    cfg: DetailsConfig,
    session: aiohttp.ClientSession,
    refs: tuple[str, ...] = REFS,
    categories: tuple[str, ...] = CATEGORIES,
) -> SourceAnswer:
    return await ask_source(
        cfg,
        session,
        refs,
        categories,
        purpose="casusoverleg-veelplegers",
        requester="vh-test",
        trace_id=TRACE,
    )


def assert_failed(answer: SourceAnswer, failure: str, *detail_words: str) -> None:
    assert answer.texts == {}
    assert answer.failure == failure
    assert answer.detail
    for word in detail_words:
        assert word in answer.detail, answer.detail
    for secret in (*REFS, CONTACT, SUPERVISION, "BVH-99"):
        assert secret not in answer.detail


def entry(ref: str, category: str, body: Any) -> dict[str, Any]:
    return {"ref": ref, "category": category, "body": body}


# --- the happy path ---------------------------------------------------------------------


async def test_texts_come_back_for_the_pairs_asked_with_token_and_fields_sent(
    source: SourceSystem, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    token_file = tmp_path / "source.token"
    token_file.write_text("  s3cret-Token_1\n")
    token_file.chmod(0o600)
    longest = "x" * MAX_ENTRY_CHARS
    source.answer(
        {
            "details": [
                entry("BVH-1", "contactpersoon", CONTACT),
                entry("BVH-7", "toezicht", SUPERVISION + "\r\nVoorwaarde: meldplicht"),
                entry("BVH-7", "contactpersoon", longest),
            ]
        }
    )
    answer = await ask(config(source.url, source_token_file=str(token_file)), session)
    assert answer.failure is None
    assert answer.detail is None
    assert answer.texts == {
        ("BVH-1", "contactpersoon"): CONTACT,
        ("BVH-7", "toezicht"): SUPERVISION + "\nVoorwaarde: meldplicht",
        ("BVH-7", "contactpersoon"): longest,
    }
    [(headers, body)] = source.calls
    assert headers["Authorization"] == "Bearer s3cret-Token_1"
    assert body == {
        "refs": list(REFS),
        "categories": list(CATEGORIES),
        "purpose": "casusoverleg-veelplegers",
        "requester": "vh-test",
        "trace_id": TRACE,
    }


async def test_without_token_file_no_authorization_header(
    source: SourceSystem, session: aiohttp.ClientSession
) -> None:
    source.answer({"details": []})
    answer = await ask(config(source.url), session)
    assert answer == SourceAnswer({})
    [(headers, _)] = source.calls
    assert "Authorization" not in headers


async def test_no_source_url_or_nothing_to_ask_makes_no_call(
    source: SourceSystem, session: aiohttp.ClientSession
) -> None:
    source.answer({"details": [entry("BVH-1", "contactpersoon", CONTACT)]})
    assert await ask(config(None), session) == SourceAnswer({})
    assert await ask(config(source.url), session, refs=()) == SourceAnswer({})
    assert await ask(config(source.url), session, categories=()) == SourceAnswer({})
    assert source.calls == []


# --- the token ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "word"),
    [
        (None, "cannot read"),
        ("  \n", "empty"),
        ("two words", "bearer token"),
        ("open-to-all", "other users"),
    ],
)
async def test_unusable_token_file_fails_without_a_call(
    source: SourceSystem,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    content: str | None,
    word: str,
) -> None:
    token_file = tmp_path / "source.token"
    if content is not None:
        token_file.write_text(content)
        # Only the last case leaves the file readable by others (mode 644).
        token_file.chmod(0o644 if content == "open-to-all" else 0o600)
    source.answer({"details": [entry("BVH-1", "contactpersoon", CONTACT)]})
    answer = await ask(config(source.url, source_token_file=str(token_file)), session)
    assert_failed(answer, SOURCE_UNAVAILABLE, word)
    assert answer.detail is not None
    assert str(tmp_path) not in answer.detail  # it may reach the requester: no local paths
    assert source.calls == []


# --- size and time ----------------------------------------------------------------------


def big_answer(size: int) -> bytes:
    """A well-formed answer of at least ``size`` bytes: only its size is wrong."""
    text = "y" * MAX_ENTRY_CHARS
    n = size // MAX_ENTRY_CHARS + 1
    refs = [f"R{i}" for i in range(n)]
    data = {"details": [entry(r, "contactpersoon", text) for r in refs]}
    return json.dumps(data).encode()


async def test_oversized_answer_with_honest_content_length(
    source: SourceSystem, session: aiohttp.ClientSession
) -> None:
    body = big_answer(4096)

    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    source.handler = handler
    refs = tuple(f"R{i}" for i in range(10))
    answer = await ask(config(source.url, source_max_bytes=4096), session, refs=refs)
    assert_failed(answer, SOURCE_TOO_LARGE, "4096")


async def test_oversized_answer_streamed_without_content_length_is_cut_off(
    source: SourceSystem, session: aiohttp.ClientSession
) -> None:
    """A chunked answer that never ends: the client stops reading past the limit."""
    written = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal written
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"details": [')
        try:
            while True:
                await resp.write(b'{"ref": "R", "category": "contactpersoon", "body": "y"},' * 64)
                written += 1
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    source.handler = handler
    answer = await ask(config(source.url, source_max_bytes=2048), session)
    assert_failed(answer, SOURCE_TOO_LARGE, "2048")
    assert written < 10_000  # the server was cut off, not read to some end


async def test_slow_answer_times_out(source: SourceSystem, session: aiohttp.ClientSession) -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        await source.release.wait()
        return web.json_response({"details": []})

    source.handler = handler
    answer = await ask(config(source.url, source_timeout_seconds=0.2), session)
    assert_failed(answer, SOURCE_UNAVAILABLE, "no answer", "0.2 s")


async def test_answer_that_stops_halfway_times_out(
    source: SourceSystem, session: aiohttp.ClientSession
) -> None:
    """Headers in time, then the body stalls: the deadline covers reading too."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"details": [')
        await source.release.wait()
        return resp

    source.handler = handler
    answer = await ask(config(source.url, source_timeout_seconds=0.2), session)
    assert_failed(answer, SOURCE_UNAVAILABLE, "no answer")


# --- HTTP and transport -----------------------------------------------------------------


async def test_http_500_is_unavailable(
    source: SourceSystem, session: aiohttp.ClientSession
) -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"details": [entry("BVH-1", "contactpersoon", CONTACT)]}, status=500
        )

    source.handler = handler
    assert_failed(await ask(config(source.url), session), SOURCE_UNAVAILABLE, "HTTP 500")


async def test_redirect_is_not_followed(
    source: SourceSystem, session: aiohttp.ClientSession
) -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{source.port}/elsewhere")

    source.handler = handler
    assert_failed(await ask(config(source.url), session), SOURCE_UNAVAILABLE, "HTTP 307")
    assert source.elsewhere == 0


async def test_unreachable_port_is_unavailable(session: aiohttp.ClientSession) -> None:
    url = f"http://127.0.0.1:{free_port()}/detail"
    assert_failed(await ask(config(url), session), SOURCE_UNAVAILABLE, "cannot reach")


async def test_non_json_is_unavailable(
    source: SourceSystem, session: aiohttp.ClientSession
) -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>Service Unavailable</html>", content_type="text/html")

    source.handler = handler
    assert_failed(await ask(config(source.url), session), SOURCE_UNAVAILABLE, "not JSON")


# --- what the answer says ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "word"),
    [
        ([entry("BVH-1", "contactpersoon", CONTACT)], "must be an object"),
        ({"details": {"BVH-1": CONTACT}}, "must be an array"),
        ({"details": [], "more": True}, "must be an object"),
        ({"details": ["BVH-1"]}, "details[0]"),
        ({"details": [{"ref": "BVH-1", "category": "contactpersoon"}]}, "details[0]"),
        ({"details": [{**entry("BVH-1", "contactpersoon", CONTACT), "x": 1}]}, "details[0]"),
        ({"details": [entry("BVH-1", "contactpersoon", 42)]}, "must be a string"),
        ({"details": [entry("BVH-1", "contactpersoon", " \n ")]}, "empty"),
        ({"details": [entry("BVH-1", "contactpersoon", "a\x00b")]}, "control characters"),
        ({"details": [entry(1, "contactpersoon", CONTACT)]}, "not asked"),
    ],
    ids=[
        "array", "details-object", "extra-member", "entry-string", "entry-no-body",
        "entry-extra", "body-number", "body-blank", "body-control", "ref-number",
    ],
)  # fmt: skip
async def test_wrong_shape_is_unavailable(
    source: SourceSystem, session: aiohttp.ClientSession, data: Any, word: str
) -> None:
    source.answer(data)
    assert_failed(await ask(config(source.url), session), SOURCE_UNAVAILABLE, word)


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        (entry("BVH-99", "contactpersoon", CONTACT), "ref that was not asked"),
        (entry("BVH-1", "samenvatting_antecedenten", CONTACT), "category that was not asked"),
        (entry("BVH-1", "contactpersoon", CONTACT), "twice"),
        (entry("BVH-7", "toezicht", "z" * (MAX_ENTRY_CHARS + 1)), f"at most {MAX_ENTRY_CHARS}"),
    ],
    ids=["unasked-ref", "unasked-category", "duplicate", "too-long"],
)
async def test_one_bad_entry_spoils_the_whole_answer(
    source: SourceSystem, session: aiohttp.ClientSession, bad: dict[str, Any], word: str
) -> None:
    source.answer({"details": [entry("BVH-1", "contactpersoon", CONTACT), bad]})
    with capture_logs() as logs:
        answer = await ask(config(source.url), session)
    assert_failed(answer, SOURCE_UNAVAILABLE, "details[1]", word)
    assert [e["failure"] for e in logs if e["event"] == "source.failed"] == [SOURCE_UNAVAILABLE]
    logged = json.dumps(logs)
    for secret in (*REFS, "BVH-99", CONTACT):
        assert secret not in logged
