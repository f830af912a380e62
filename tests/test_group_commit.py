"""Group commit (issue 8 item 3, docs/protocol.md §9.1): answers that arrive together share
one commit and one signed tree head, and every answer still carries a head that covers
its own log entry, signed before it was sent and committed with it."""

from __future__ import annotations

import asyncio

from node.protocol import merkle
from node.protocol.bekendheid import EVALUATE_RESPONSE_TYP
from node.store import log
from node.store.log_verify import verify
from tests.federation import (
    EVALUATE_PATH,
    Federation,
    evaluate_request,
    log_entries,
    open_signed,
    post_peer,
)

PARTNER = "politie-test"
ASKERS = ("vh-test", "politie-test")


def _heads(fed: Federation) -> int:
    row = fed.nodes[PARTNER].ctx.conn.execute("SELECT COUNT(*) FROM tree_heads").fetchone()
    return int(row[0])


async def test_concurrent_answers_share_heads_and_each_head_covers_its_entry(
    federation: Federation,
) -> None:
    heads_before = _heads(federation)
    requests = [evaluate_request(federation, ASKERS[i % 2], PARTNER) for i in range(60)]
    replies = await asyncio.gather(
        *(post_peer(federation, PARTNER, EVALUATE_PATH, r) for r in requests)
    )
    assert all(r.status == 200 for r in replies)

    node = federation.nodes[PARTNER]
    conn = node.ctx.conn
    evaluated = {e["trace_id"]: e for e in log_entries(node, "bekendheid.evaluated")}
    for req, reply in zip(requests, replies, strict=True):
        payload = open_signed(federation, PARTNER, reply.body, EVALUATE_RESPONSE_TYP)
        head = log.check_head(payload["tree_head"], PARTNER, node.ctx.keys.signing_public)
        entry = evaluated[req.payload["trace_id"]]
        # The head sent covers the answer's own entry: an inclusion proof from the
        # partner's log against the root it signed.
        assert head.tree_size > entry["seq"]
        leaf = conn.execute(
            "SELECT leaf_hash FROM log_entries WHERE seq = ?", (entry["seq"],)
        ).fetchone()[0]
        proof = log.inclusion_proof(conn, entry["seq"], head.tree_size)
        assert merkle.verify_inclusion(leaf, entry["seq"], head.tree_size, proof, head.root_hash)
        # And that head is stored: it was signed and committed before the answer left.
        assert log.head_at(conn, head.tree_size) is not None

    new_heads = _heads(federation) - heads_before
    assert 1 <= new_heads < len(requests)  # fewer signatures than answers
    assert (
        len(
            {
                open_signed(federation, PARTNER, r.body, EVALUATE_RESPONSE_TYP)["tree_head"][
                    "payload"
                ]
                for r in replies
            }
        )
        == new_heads
    )
    assert verify(conn, PARTNER, node.ctx.keys.signing_public).ok
