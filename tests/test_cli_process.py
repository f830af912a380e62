"""`vhnode` as a coordinator runs it: a separate process against a real federation.

The subjects of a round keep the order typed and are shown masked beside their numbers,
which `details request --subject N` takes; the local API (with its bearer token) goes to
the node's own listener, never to the public endpoint; and the errors a coordinator
meets first are one line that says what to do.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from node.config import CONFIG_FILE
from tests.detail_fixtures import CONTACT, JAN_BSN, JAN_CONTACT, NOBODY_BSN, detail_federation
from tests.federation import PURPOSE, Federation, bound_socket, free_port

VH = "vh-test"
POLITIE = "politie-test"
ADDRESS = {"kind": "address", "postcode": "4811AB", "house_number": 12, "addition": "A"}
# The same four subjects as typed on the command line: an address, an unknown BSN, a
# person nobody registered, and Jan's BSN.
TYPED = [
    "--address", "4811 AB|12|a",
    "--bsn", NOBODY_BSN["bsn"],
    "--person", "Berg|van der|Jan Pieter|1990-01-31",
    "--bsn", JAN_BSN["bsn"],
]  # fmt: skip


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = await detail_federation(tmp_path)
    federation.register(
        POLITIE, {"ref": "BVH-3", "themes": ["veelplegers"], "identifiers": [ADDRESS]}
    )
    try:
        yield federation
    finally:
        await federation.close()


async def vhnode(*args: str, cwd: Path | None = None, token: str = "") -> tuple[int, str, str]:
    """Run ``python -m node ARGS`` as its own process; (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VHNODE_")}
    if token:
        env["VHNODE_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def query_args(fed: Federation, *extra: str) -> list[str]:
    return [
        "query", "--home", str(fed.nodes[VH].home), "--convenant", "vh-test-veelplegers",
        "--purpose", PURPOSE, "--case", "CASUS-FAMILIE", *extra,
    ]  # fmt: skip


def one_error_line(code: int, err: str) -> str:
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


async def test_subjects_keep_the_order_typed_masked_and_details_take_that_number(
    fed: Federation,
) -> None:
    token = fed.nodes[VH].tokens["coordinator"]
    code, out, err = await vhnode(*query_args(fed, *TYPED, "--json"), token=token)
    assert code == 0, err
    result = json.loads(out)
    politie = next(p for p in result["partners"] if p["partner"] == POLITIE)
    assert politie["subjects"] == ["hit", "no_hit", "no_hit", "hit"]
    assert result["subjects"] == [
        {"number": 1, "kind": "address", "masked": "4811AB 12A"},
        {"number": 2, "kind": "bsn", "masked": "BSN ***9990"},
        {"number": 3, "kind": "person", "masked": "J.P.B. 1990"},
        {"number": 4, "kind": "bsn", "masked": "BSN ***6782"},
    ]
    for identifier in (NOBODY_BSN["bsn"], JAN_BSN["bsn"], "Pieter", "1990-01-31"):
        assert identifier not in out

    code, table, err = await vhnode(*query_args(fed, *TYPED), token=token)
    assert code == 0, err
    assert "subject 1: 4811AB 12A\n" in table
    assert "subject 4: BSN ***6782\n" in table
    politie_row = next(line for line in table.splitlines() if line.startswith(POLITIE))
    assert politie_row.endswith("1:hit 2:no_hit 3:no_hit 4:hit")

    # Number 4 is Jan's BSN, as shown: his contact person arrives.
    base = ["details", "request", "--home", str(fed.nodes[VH].home), "--round",
            result["trace_id"], "--partner", POLITIE, "--purpose", PURPOSE,
            "--category", CONTACT]  # fmt: skip
    code, out, err = await vhnode(*base, "--subject", "4", "--json", token=token)
    assert code == 0, err
    ask = json.loads(out)
    assert ask["subject"] == 3  # the API's index, from 0 (docs/api.md)
    assert [c["status"] for c in ask["categories"]] == ["delivered"]
    code, shown, err = await vhnode(
        "details", "show", "--home", str(fed.nodes[VH].home), ask["trace_id"], token=token
    )
    assert code == 0, err
    assert JAN_CONTACT in shown
    assert "subject 4," in shown
    # Number 2 was no hit at politie: refused, one line.
    code, _, err = await vhnode(*base, "--subject", "2", token=token)
    assert "no hit" in one_error_line(code, err)


class PublicEndpoint:
    """What a reverse proxy in front of the node would receive: every request, recorded."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []
        self.runner: web.AppRunner | None = None
        self.sock = bound_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    async def start(self) -> None:
        async def record(request: web.Request) -> web.Response:
            has_token = "Authorization" in request.headers
            self.seen.append((request.method, request.path, has_token))
            return web.Response(status=502, text="not the node")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_local_api_goes_to_the_listener_never_to_the_public_endpoint(
    fed: Federation,
) -> None:
    public = PublicEndpoint()
    await public.start()
    try:
        # A real deployment: the card's endpoint is the proxy's public address, the node
        # listens on loopback ([http] host and port).
        toml = fed.nodes[VH].home / CONFIG_FILE
        text = toml.read_text()
        toml.write_text(
            text.replace(f'endpoint = "{fed.nodes[VH].url}"', f'endpoint = "{public.url}"')
        )
        assert public.url in toml.read_text()
        token = fed.nodes[VH].tokens["coordinator"]
        code, out, err = await vhnode(*query_args(fed, "--bsn", JAN_BSN["bsn"]), token=token)
        assert code == 0, err
        assert "summary:" in out
        code, out, err = await vhnode(
            "details", "list", "--home", str(fed.nodes[VH].home), token=token
        )
        assert code == 0, err
        assert public.seen == []
    finally:
        await public.close()


async def test_without_home_or_url_the_coordinator_is_told_to_pass_url(tmp_path: Path) -> None:
    code, _, err = await vhnode(
        "query", "--convenant", "c", "--purpose", "p", "--case", "X", "--bsn", JAN_BSN["bsn"],
        cwd=tmp_path, token="vhn_x",
    )  # fmt: skip
    line = one_error_line(code, err)
    assert "--url" in line
    assert "vhnode init" not in line


async def test_an_unreachable_url_is_one_line_without_ssl_talk(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    code, _, err = await vhnode(
        "query", "--url", closed, "--convenant", "c", "--purpose", "p", "--case", "X",
        "--bsn", JAN_BSN["bsn"], cwd=tmp_path, token="vhn_x",
    )  # fmt: skip
    line = one_error_line(code, err)
    assert f"cannot reach the node at {closed}" in line
    assert "ssl" not in line.lower()
    code, _, err = await vhnode("details", "list", "--url", closed, cwd=tmp_path, token="vhn_x")
    assert "ssl" not in one_error_line(code, err).lower()
