"""One signing key, one node: also a rotation cannot give a peer another peer's key."""

from __future__ import annotations

import pytest

from node.errors import KeyMismatch
from node.flows import admin
from node.flows.admin import issue_card
from node.store import peers
from tests.federation import Federation


async def test_rotation_to_a_key_held_by_another_peer_is_refused(federation: Federation) -> None:
    politie = federation.nodes["politie-test"]
    vh = federation.nodes["vh-test"].ctx
    # A card for om-test, signed with politie-test's key (as if om-test copied it).
    cfg = politie.ctx.cfg.model_copy(update={"node_id": "om-test", "org_type": "om"})
    forged = issue_card(cfg, politie.ctx.keys, politie.clock.now())
    before = peers.by_id(vh.conn, "om-test")
    assert before is not None
    with pytest.raises(KeyMismatch, match="already belongs to peer politie-test"):
        admin.add_peer(vh, forged.to_json(), rotate=True)
    after = peers.by_id(vh.conn, "om-test")
    assert after is not None
    assert after.card.signing_fingerprint == before.card.signing_fingerprint
