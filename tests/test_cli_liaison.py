"""``vhnode liaison`` against real running nodes (docs/protocol.md §14.7).

vh-test asks politie-test for detail after a real bekendheid round; the antecedents wait
for politie's liaison, who decides with the CLI. The CLI runs in a worker thread (it has
its own event loop) while the nodes keep serving in the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from structlog.testing import capture_logs

from node.cli import main
from node.flows import admin
from node.protocol import jws, oprf
from node.protocol.detail import (
    DETAIL_PATH,
    DETAIL_REQUEST_TYP,
    DetailRequest,
)
from node.protocol.identifiers import parse_identifier, subject_key
from tests.detail_fixtures import (
    ANTECEDENTS,
    CONTACT,
    JAN_BSN,
    detail_federation,
    hit_round,
)
from tests.federation import CONVENANT_ID, PURPOSE, Federation, post_peer

RUNNER = CliRunner()
POLITIE = "politie-test"
CASE = "CASUS-LIAISON-7"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    # The nodes' own log lines would land in the CLI's captured stdout (the runner swaps
    # sys.stdout for the whole process): keep them out of what the tests parse.
    with capture_logs():
        f = await detail_federation(tmp_path)
        yield f
        await f.close()


@pytest.fixture
def liaison_token(fed: Federation) -> str:
    return admin.create_user(fed.nodes[POLITIE].ctx, "lia-cli", "liaison")


async def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    # A thread: the command runs asyncio.run, and the nodes serve in this loop meanwhile.
    return await asyncio.to_thread(RUNNER.invoke, main, list(args), env=env)


async def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = await cli(*args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


async def error(*args: str, code: int = 1) -> str:
    """One ``error:`` line on stderr, exit ``code``, no traceback."""
    result = await cli(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def proof(fed: Federation, partner: str, identifier: dict[str, Any]) -> str:
    """The hit proof vh-test's client derives in a round: the full OPRF output (§14.1)."""
    sk, _ = fed.nodes[partner].ctx.oprf_key(CONVENANT_ID)
    return jws.b64u_encode(
        oprf.evaluate(sk, [subject_key(parse_identifier(identifier)).encode()])[0]
    )


async def ask_detail(fed: Federation, categories: tuple[str, ...]) -> str:
    """vh-test asks politie-test for Jan's detail after a round; returns the trace id."""
    round_ = await hit_round(fed)
    trace_id = secrets.token_hex(16)
    request = DetailRequest(
        requester="vh-test",
        partner=POLITIE,
        convenant_id=CONVENANT_ID,
        convenant_version=1,
        purpose=PURPOSE,
        case_ref=CASE,
        requesting_user="anna",
        requesting_role="coordinator",
        trace_id=trace_id,
        round_trace_id=round_["trace_id"],
        hit_proof=proof(fed, POLITIE, JAN_BSN),
        categories=categories,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=fed.nodes["vh-test"].clock.now(),
    )
    doc = jws.sign(DETAIL_REQUEST_TYP, request.wire(), fed.nodes["vh-test"].ctx.keys.signing)
    reply = await post_peer(fed, POLITIE, DETAIL_PATH, doc)
    assert reply.status == 200, reply.body
    return trace_id


def home(fed: Federation) -> tuple[str, str]:
    return ("--home", str(fed.nodes[POLITIE].home))


async def test_inbox_shows_pending_requests_and_hit_notices(
    fed: Federation, liaison_token: str
) -> None:
    trace_id = await ask_detail(fed, (CONTACT, ANTECEDENTS))
    # A round of its own: vh-test's client tells politie of the hit (one notice per
    # registration per round, so a second notice of an earlier round would add none).
    await fed.query("vh-test", [JAN_BSN], case_ref="CASUS-NOTICE-3")

    inbox = json.loads(await ok("liaison", "inbox", *home(fed), "--token", liaison_token, "--json"))
    [request] = [r for r in inbox["requests"] if r["trace_id"] == trace_id]
    assert request["case_ref"] == CASE
    assert request["refs"] == ["BVH-1"]
    pending = [c["category"] for c in request["categories"] if c["status"] == "pending"]
    assert pending == [ANTECEDENTS]
    assert "CASUS-NOTICE-3" in {n["case_ref"] for n in inbox["hit_notices"]}

    table = await ok("liaison", "inbox", *home(fed), env={"VHNODE_TOKEN": liaison_token})
    line = next(ln for ln in table.splitlines() if trace_id in ln)
    for column in ("vh-test", CASE, PURPOSE, "anna (coordinator)", ANTECEDENTS, "BVH-1"):
        assert column in line
    assert CONTACT not in line  # delivered already: not pending
    notice_line = next(ln for ln in table.splitlines() if "CASUS-NOTICE-3" in ln)
    assert "BVH-1" in notice_line


async def test_approve_releases_and_a_second_approval_is_an_error(
    fed: Federation, liaison_token: str
) -> None:
    trace_id = await ask_detail(fed, (ANTECEDENTS,))
    args = ("liaison", "approve", "vh-test", trace_id, *home(fed), "--token", liaison_token)
    out = await ok(*args)
    row = next(ln for ln in out.splitlines() if ln.startswith(ANTECEDENTS))
    # Released; the text goes out when vh-test polls after the decision notice.
    assert "approved, not sent yet" in row
    assert "liaison-approved" in row
    assert "lia-cli" in row
    err = await error(*args)
    assert "already_decided" in err
    assert "409" in err
    inbox = json.loads(await ok("liaison", "inbox", *home(fed), "--token", liaison_token, "--json"))
    assert trace_id not in {r["trace_id"] for r in inbox["requests"]}


async def test_deny_needs_a_reason_and_records_it(fed: Federation, liaison_token: str) -> None:
    trace_id = await ask_detail(fed, (ANTECEDENTS,))
    base = ("liaison", "deny", "vh-test", trace_id, *home(fed), "--token", liaison_token)
    err = await error(*base, code=2)
    assert "--reason" in err
    # The usage error changed nothing: the category still waits.
    inbox = json.loads(await ok("liaison", "inbox", *home(fed), "--token", liaison_token, "--json"))
    assert trace_id in {r["trace_id"] for r in inbox["requests"]}

    reason = "Niet noodzakelijk voor dit overleg"
    denied = json.loads(await ok(*base, "--reason", reason, "--category", ANTECEDENTS, "--json"))
    [category] = denied["categories"]
    assert (category["status"], category["rule"]) == ("denied", "liaison-denied")
    assert (category["reason"], category["reason_detail"]) == ("denied_by_liaison", reason)
    assert category["decided_by"] == "lia-cli"
    err = await error(
        "liaison", "approve", "vh-test", trace_id, *home(fed), "--token", liaison_token
    )
    assert "already_decided" in err


async def test_unknown_request_wrong_category_and_wrong_role_are_error_lines(
    fed: Federation, liaison_token: str
) -> None:
    trace_id = await ask_detail(fed, (CONTACT, ANTECEDENTS))
    token = ("--token", liaison_token)
    err = await error("liaison", "approve", "vh-test", "0" * 32, *home(fed), *token)
    assert "unknown_request" in err
    assert "404" in err
    err = await error("liaison", "approve", "om-test", trace_id, *home(fed), *token)
    assert "unknown_request" in err
    # Contactpersoon was delivered at once: naming it is naming a decided category.
    err = await error(
        "liaison", "approve", "vh-test", trace_id, "--category", CONTACT, *home(fed), *token
    )
    assert "already_decided" in err
    coordinator = fed.nodes[POLITIE].tokens["coordinator"]
    err = await error("liaison", "inbox", *home(fed), "--token", coordinator)
    assert "forbidden" in err
    assert "403" in err
    # None of it decided anything.
    inbox = json.loads(await ok("liaison", "inbox", *home(fed), *token, "--json"))
    [request] = [r for r in inbox["requests"] if r["trace_id"] == trace_id]
    assert [c["status"] for c in request["categories"]] == ["delivered", "pending"]


async def test_unreachable_node_is_an_error_line(fed: Federation, liaison_token: str) -> None:
    await fed.stop(POLITIE)
    err = await error("liaison", "inbox", *home(fed), "--token", liaison_token)
    assert "cannot reach the node" in err
