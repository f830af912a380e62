"""A running node sees admin changes made by another process (the CLI) at once.

The node keeps parsed peers and convenants in memory (node/flows/trust.py); a revocation or an
installation through a second connection to the same database must not be missed.
"""

from __future__ import annotations

from node.flows import admin
from node.flows.context import open_node
from tests.federation import Federation, statuses

JAN = {"kind": "bsn", "bsn": "123456782"}


async def test_revocation_by_another_process_is_seen_by_the_running_node(
    federation: Federation,
) -> None:
    assert statuses(await federation.query("vh-test", [JAN]))["politie-test"] == "no_hit"
    # As `vhnode peer revoke vh-test --home <politie>` would: its own connection.
    cli = open_node(federation.nodes["politie-test"].home)
    try:
        admin.revoke_peer(cli, "vh-test")
    finally:
        cli.close()
    result = await federation.query("vh-test", [JAN])
    politie = next(p for p in result["partners"] if p["partner"] == "politie-test")
    assert politie["status"] == "refused"
    assert politie["reason"] == "revoked_requester"


async def test_trust_snapshot_is_reused_until_something_changes(federation: Federation) -> None:
    ctx = federation.nodes["om-test"].ctx
    first = ctx.trust()
    assert ctx.trust() is first
    admin.revoke_peer(ctx, "ggz-test")
    second = ctx.trust()
    assert second is not first
    assert second.peers_by_id["ggz-test"].revoked_at is not None
