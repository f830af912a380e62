"""A partner that rewrites its log is caught by the heads its peers hold (§9.3).

The partner answers, its signed tree head travels with the answer and the requester
keeps it. The partner then restores an old copy of its database (forgetting what it
answered) and goes on: its next head for the same tree size has another root. That
second signed head is proof of the fork; the answer carrying it is not trusted.
"""

from __future__ import annotations

from tests.federation import Federation, restore, snapshot, statuses

JAN = {"kind": "bsn", "bsn": "123456782"}


async def test_partner_that_restores_an_old_log_is_reported_forked(
    federation: Federation,
) -> None:
    before = snapshot(federation, "om-test")
    first = await federation.query("vh-test", [JAN], case_ref="CASUS-A")
    assert statuses(first)["om-test"] == "no_hit"

    await restore(federation, "om-test", before)  # om-test forgets it answered
    second = await federation.query("vh-test", [JAN], case_ref="CASUS-B")
    om = next(p for p in second["partners"] if p["partner"] == "om-test")
    assert om["status"] == "invalid"
    assert om["reason"] == "forked_log"
    # The others are unaffected, and the evidence is kept and logged at the requester.
    assert statuses(second)["politie-test"] == "no_hit"
    conn = federation.nodes["vh-test"].ctx.conn
    assert (
        conn.execute("SELECT COUNT(*) FROM peer_head_conflicts WHERE peer = 'om-test'").fetchone()[
            0
        ]
        == 1
    )
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM log_entries"
            " WHERE kind = 'peer.log_forked' AND counterparty = 'om-test'"
        ).fetchone()[0]
        == 1
    )


async def test_heads_of_every_partner_are_kept(federation: Federation) -> None:
    await federation.query("vh-test", [JAN])
    conn = federation.nodes["vh-test"].ctx.conn
    peers_with_heads = {r[0] for r in conn.execute("SELECT DISTINCT peer FROM peer_tree_heads")}
    assert {"politie-test", "om-test", "ggz-test"} <= peers_with_heads
