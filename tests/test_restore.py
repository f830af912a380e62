"""Backup and restore without forking (docs/protocol.md §9.7), in a real federation.

A partner is backed up while it answers rounds, answers more (its peers keep signed heads
of that newer history), and is then restored from the backup. Started again, it asks its
peers which of its heads they hold, finds its log behind, and opens log epoch 1 with a
signed restore statement: its peers record ``restored``, not ``forked_log``, and go on
asking it. A real fork — a copy put back by hand, past the check — is still a fork.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import nacl.public
import pytest

from node.errors import RestorePending
from node.flows import admin, monitoring
from node.flows.audit import report
from node.flows.backups import make_backup, restore_backup
from node.flows.context import open_node
from node.flows.cross_check import cross_check
from node.flows.restore_check import HELD_HEAD_PATH
from node.protocol import jws
from node.protocol.held_head import HELD_HEAD_REQUEST_TYP, HELD_HEAD_RESPONSE_TYP, HeldHeadRequest
from node.protocol.tree_head import check_head
from node.store import log
from node.store.backup import Protection
from tests.federation import (
    Federation,
    log_entries,
    open_signed,
    outsider,
    partner_result,
    post_peer,
    restore,
    snapshot,
    statuses,
)

JAN = {"kind": "bsn", "bsn": "123456782"}
OM = "om-test"


@pytest.fixture
def backup_key() -> nacl.public.PrivateKey:
    return nacl.public.PrivateKey.generate()


def to_key(key: nacl.public.PrivateKey) -> Protection:
    return Protection("recipient", recipient=bytes(key.public_key))


def with_key(key: nacl.public.PrivateKey) -> Protection:
    return Protection("none", identity=bytes(key))


async def back_up_while_serving(fed: Federation, out: Path, key: nacl.public.PrivateKey) -> None:
    """Back up om-test on a thread while two requesters' rounds run through it."""
    node = fed.nodes[OM]
    made, first, second = await asyncio.gather(
        asyncio.to_thread(
            make_backup,
            node.home,
            out,
            with_keys=False,
            protection=to_key(key),
            now=node.clock.now(),
        ),
        fed.query("vh-test", [JAN], case_ref="CASUS-TIJDENS-1"),
        fed.query("politie-test", [JAN], case_ref="CASUS-TIJDENS-2"),
    )
    assert made["node_id"] == OM
    assert statuses(first)[OM] == statuses(second)[OM] == "no_hit"


async def restore_from(
    fed: Federation, archive: Path, key: nacl.public.PrivateKey, node_id: str = OM
) -> None:
    """Stop the node, restore the backup into its home with ``vhnode restore``'s flow, and
    start it: the start runs the restore check before the node listens."""
    node = fed.nodes[node_id]
    await fed.stop(node_id)
    node.ctx.close()
    restore_backup(archive, node.home, protection=with_key(key), force=True, now=node.clock.now())
    node.ctx = open_node(node.home, clock=node.clock)
    await fed.start(node_id)


async def verdicts(fed: Federation, asker: str = "vh-test") -> dict[str, str]:
    assert fed.session is not None
    return {r.peer: r.verdict for r in await cross_check(fed.nodes[asker].ctx, fed.session)}


def held_epochs(fed: Federation, holder: str) -> list[tuple[int, int]]:
    rows = fed.nodes[holder].ctx.conn.execute(
        "SELECT epoch, max(tree_size) FROM peer_tree_heads WHERE peer = ? GROUP BY epoch",
        (OM,),
    )
    return [(int(e), int(n)) for e, n in rows]


def conflicts(fed: Federation, holder: str) -> int:
    row = fed.nodes[holder].ctx.conn.execute(
        "SELECT COUNT(*) FROM peer_head_conflicts WHERE peer = ?", (OM,)
    )
    return int(row.fetchone()[0])


async def test_a_restored_partner_is_restored_at_its_peers_not_forked(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    fed = federation
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    archive = tmp_path / "om-test.vhbackup"
    await back_up_while_serving(fed, archive, backup_key)
    # om-test works on: both requesters now hold heads of a history the backup lacks.
    for i in range(2):
        await fed.query("vh-test", [JAN], case_ref=f"CASUS-NA-{i}")
        await fed.query("politie-test", [JAN], case_ref=f"CASUS-NA-P{i}")
    lost_at_vh = held_epochs(fed, "vh-test")
    assert [e for e, _ in lost_at_vh] == [0]

    await restore_from(fed, archive, backup_key)

    # om-test found its log behind and opened epoch 1 with a signed statement.
    om = fed.nodes[OM].ctx
    restored = log_entries(fed.nodes[OM], "log.restored")
    assert len(restored) == 1
    data = restored[0]["data"]
    assert data["epoch"] == 1
    assert data["restored_epoch"] == 0
    assert data["held_epoch"] == 0
    assert data["held_size"] > data["restored_size"]  # it admits the entries it lost
    # The newest head any peer held: at least what vh-test held of the lost history.
    assert data["held_size"] >= lost_at_vh[0][1]
    assert data["peers_asked"] == data["peers_answered"] == 3
    assert log.current_epoch(om.conn)[0] == 1
    assert not log.restore_pending(om.conn)
    # Its own log still verifies: the new epoch builds on the restored entries.
    assert (await om.verify_log()).ok

    # A cross-check right away: the peer opened a new epoch, and says why.
    assert (await verdicts(fed))[OM] == "restored"
    # Rounds work; the other requester meets the new epoch in an answer and records it.
    after = await fed.query("politie-test", [JAN], case_ref="CASUS-HERSTELD")
    assert statuses(after)[OM] == "no_hit"
    again = await fed.query("vh-test", [JAN], case_ref="CASUS-HERSTELD-2")
    assert statuses(again)[OM] == "no_hit"
    for holder in ("vh-test", "politie-test"):
        entries = [
            e
            for e in log_entries(fed.nodes[holder], "peer.log_restored")
            if e["counterparty"] == OM
        ]
        assert len(entries) == 1, holder
        assert entries[0]["outcome"] == "restored"
        assert entries[0]["data"]["epoch"] == 1
        assert entries[0]["data"]["admitted_size"] == data["held_size"]
        assert not [
            e for e in log_entries(fed.nodes[holder], "peer.log_forked") if e["counterparty"] == OM
        ]
        assert conflicts(fed, holder) == 0
        assert [e for e, _ in held_epochs(fed, holder)] == [0, 1]
        # The statement is kept as evidence, signed by om-test's key.
        (text,) = (
            fed.nodes[holder]
            .ctx.conn.execute(
                "SELECT statement FROM peer_log_restores WHERE peer = ? AND epoch = 1", (OM,)
            )
            .fetchone()
        )
        jws.parse(json.loads(text), "vhnode-restore-statement/v1").verify(
            om.keys.signing_fingerprint, om.keys.signing_public
        )
    # Thereafter the new epoch is checked like any log.
    assert (await verdicts(fed))[OM] == "consistent"
    assert (await verdicts(fed, "politie-test"))[OM] == "consistent"


async def test_a_real_fork_within_an_epoch_is_still_forked_log(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    fed = federation
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    archive = tmp_path / "om-test.vhbackup"
    await back_up_while_serving(fed, archive, backup_key)
    await fed.query("vh-test", [JAN], case_ref="CASUS-2")
    await restore_from(fed, archive, backup_key)
    assert statuses(await fed.query("vh-test", [JAN], case_ref="CASUS-3"))[OM] == "no_hit"

    # Within epoch 1: a raw copy of the database, put back by hand past the check.
    by_hand = snapshot(fed, OM)
    await fed.query("vh-test", [JAN], case_ref="CASUS-4")
    await restore(fed, OM, by_hand)
    result = await fed.query("vh-test", [JAN], case_ref="CASUS-5")
    om = next(p for p in result["partners"] if p["partner"] == OM)
    assert (om["status"], om["reason"]) == ("invalid", "forked_log")
    forked = list(log_entries(fed.nodes["vh-test"], "peer.log_forked"))
    assert [e["counterparty"] for e in forked] == [OM]
    assert (await verdicts(fed))[OM] == "forked"


async def test_the_closed_epoch_signing_on_is_a_fork(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    """The old copy keeps running beside the restored one: a head of epoch 0 signed after
    the statement that closed epoch 0 is a second history."""
    fed = federation
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    archive = tmp_path / "om-test.vhbackup"
    await back_up_while_serving(fed, archive, backup_key)
    old_machine = snapshot(fed, OM)  # the copy that was meant to be retired
    await restore_from(fed, archive, backup_key)
    assert statuses(await fed.query("vh-test", [JAN], case_ref="CASUS-2"))[OM] == "no_hit"
    fed.nodes[OM].clock.advance(5)
    await restore(fed, OM, old_machine)  # epoch 0 again, signing on
    result = await fed.query("vh-test", [JAN], case_ref="CASUS-3")
    om = next(p for p in result["partners"] if p["partner"] == OM)
    assert (om["status"], om["reason"]) == ("invalid", "forked_log")


async def test_nothing_lost_and_every_peer_answering_needs_no_epoch(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    fed = federation
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    archive = tmp_path / "om-test.vhbackup"
    make_backup(
        fed.nodes[OM].home,
        archive,
        with_keys=False,
        protection=to_key(backup_key),
        now=fed.nodes[OM].clock.now(),
    )
    await restore_from(fed, archive, backup_key)
    om = fed.nodes[OM]
    assert log.current_epoch(om.ctx.conn)[0] == 0
    (checked,) = log_entries(om, "log.restore_checked")
    assert checked["data"]["peers_answered"] == 3
    assert not log_entries(om, "log.restored")
    assert statuses(await fed.query("vh-test", [JAN], case_ref="CASUS-2"))[OM] == "no_hit"
    assert (await verdicts(fed))[OM] == "consistent"


async def test_a_peer_that_cannot_answer_means_a_new_epoch(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    """Fail closed: a silent peer may hold a head the restored log lacks, so the node
    opens an epoch rather than sign sizes that peer might hold."""
    fed = federation
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    archive = tmp_path / "om-test.vhbackup"
    make_backup(
        fed.nodes[OM].home,
        archive,
        with_keys=False,
        protection=to_key(backup_key),
        now=fed.nodes[OM].clock.now(),
    )
    await fed.stop("ggz-test")
    await restore_from(fed, archive, backup_key)
    (opened,) = log_entries(fed.nodes[OM], "log.restored")
    assert opened["data"]["peers_asked"] == 3
    assert opened["data"]["peers_answered"] == 2
    assert opened["data"]["held_size"] == opened["data"]["restored_size"]  # nothing admitted
    result = await fed.query("vh-test", [JAN], case_ref="CASUS-2")
    assert statuses(result)[OM] == "no_hit"
    assert (await verdicts(fed))[OM] == "consistent"  # vh-test met epoch 1 in that answer


async def test_a_restored_copy_signs_nothing_before_its_check(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    fed = federation
    archive = tmp_path / "om-test.vhbackup"
    node = fed.nodes[OM]
    make_backup(
        node.home, archive, with_keys=False, protection=to_key(backup_key), now=node.clock.now()
    )
    await fed.stop(OM)
    node.ctx.close()
    restore_backup(
        archive, node.home, protection=with_key(backup_key), force=True, now=node.clock.now()
    )
    node.ctx = open_node(node.home, clock=node.clock)
    before = log.latest_head(node.ctx.conn)
    with pytest.raises(RestorePending):
        admin.create_user(node.ctx, "nieuw-beheer", "admin")
    assert log.latest_head(node.ctx.conn) == before
    await fed.start(OM)  # the check runs; then the node signs again
    admin.create_user(node.ctx, "nieuw-beheer", "admin")
    assert log.latest_head(node.ctx.conn) != before


def held_head_request(fed: Federation, requester: str, partner: str) -> jws.SignedDocument:
    req = HeldHeadRequest(
        requester=requester,
        partner=partner,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=fed.nodes[requester].clock.now(),
    )
    return jws.sign(HELD_HEAD_REQUEST_TYP, req.wire(), fed.nodes[requester].ctx.keys.signing)


async def test_held_head_tells_a_peer_its_own_newest_head_and_a_stranger_nothing(
    federation: Federation,
) -> None:
    fed = federation
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    reply = await post_peer(fed, "vh-test", HELD_HEAD_PATH, held_head_request(fed, OM, "vh-test"))
    assert reply.status == 200
    answer = open_signed(fed, "vh-test", reply.body, HELD_HEAD_RESPONSE_TYP)
    assert answer["outcome"] == "held"
    held = check_head(answer["held"], OM, fed.nodes[OM].ctx.keys.signing_public)
    newest_at_vh = (
        fed.nodes["vh-test"]
        .ctx.conn.execute("SELECT max(tree_size) FROM peer_tree_heads WHERE peer = ?", (OM,))
        .fetchone()[0]
    )
    assert held.tree_size == newest_at_vh
    assert answer["tree_head"] is not None  # vh-test's own head travels too (§9.3)
    served = log_entries(fed.nodes["vh-test"], "log.held_head_served")
    assert [(e["counterparty"], e["data"]["tree_size"]) for e in served] == [(OM, newest_at_vh)]

    stranger = outsider(fed)  # known to nobody
    reply = await post_peer(
        fed, "vh-test", HELD_HEAD_PATH, held_head_request(fed, stranger.node_id, "vh-test")
    )
    assert reply.status == 403
    refused = open_signed(fed, "vh-test", reply.body, HELD_HEAD_RESPONSE_TYP)
    assert refused["reason"] == "unknown_requester"
    assert refused["held"] is None
    assert refused["tree_head"] is None  # a stranger learns nothing of vh-test's activity


async def test_an_epoch_head_fits_the_bounds_heads_travel_in(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    fed = federation
    archive = tmp_path / "om-test.vhbackup"
    make_backup(
        fed.nodes[OM].home,
        archive,
        with_keys=False,
        protection=to_key(backup_key),
        now=fed.nodes[OM].clock.now(),
    )
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    await restore_from(fed, archive, backup_key)
    head = log.latest_head(fed.nodes[OM].ctx.conn)
    assert head is not None
    document = json.loads(head.jws)
    assert len(document["payload"]) < 4096  # tree_head.SignedTreeHead's payload bound
    parsed = check_head(document, OM, fed.nodes[OM].ctx.keys.signing_public)
    assert parsed.epoch == 1
    assert parsed.restore is not None
    assert parsed.restore.lost_entries > 0


async def test_a_restored_partner_answers_from_its_restored_registry(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    """A registration added after the backup is gone with the restore: the requester's
    copy of the newer tag set must not keep finding it, and the partner's next
    publication must not clash with a version the requester holds."""
    fed = federation
    piet = {"kind": "bsn", "bsn": "111222333"}
    fed.register(OM, {"ref": "OM-1", "themes": ["veelplegers"], "identifiers": [JAN]})
    assert statuses(await fed.query("vh-test", [JAN, piet], case_ref="CASUS-1"))[OM] == "hit"
    archive = tmp_path / "om-test.vhbackup"
    make_backup(
        fed.nodes[OM].home,
        archive,
        with_keys=False,
        protection=to_key(backup_key),
        now=fed.nodes[OM].clock.now(),
    )
    fed.register(OM, {"ref": "OM-2", "themes": ["veelplegers"], "identifiers": [piet]})
    before = await fed.query("vh-test", [JAN, piet], case_ref="CASUS-2")
    assert partner_result(before, OM)["subjects"] == ["hit", "hit"]

    await restore_from(fed, archive, backup_key)
    after = await fed.query("vh-test", [JAN, piet], case_ref="CASUS-3")
    assert partner_result(after, OM)["subjects"] == ["hit", "no_hit"]  # OM-2 is gone
    assert partner_result(after, OM)["tag_set_version"] > 1 << 20
    # The partner publishes on; the requester follows without a clash of versions.
    fed.register(OM, {"ref": "OM-3", "themes": ["veelplegers"], "identifiers": [piet]})
    later = await fed.query("vh-test", [JAN, piet], case_ref="CASUS-4")
    assert partner_result(later, OM)["subjects"] == ["hit", "hit"]


async def test_a_restored_requester_is_restored_at_the_partners_it_asks(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    """Requests carry the requester's head (§9.5): partners witness the asking node, so a
    restored Veiligheidshuis must not look forked to them either."""
    fed = federation
    vh = fed.nodes["vh-test"]
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    archive = tmp_path / "vh-test.vhbackup"
    make_backup(
        vh.home, archive, with_keys=False, protection=to_key(backup_key), now=vh.clock.now()
    )
    await fed.query("vh-test", [JAN], case_ref="CASUS-2")  # partners hold newer heads of vh
    await restore_from(fed, archive, backup_key, "vh-test")
    assert log_entries(vh, "log.restored")
    result = await fed.query("vh-test", [JAN], case_ref="CASUS-3")
    assert set(statuses(result).values()) == {"no_hit"}
    for partner in ("om-test", "politie-test", "ggz-test"):
        seen = [
            e
            for e in log_entries(fed.nodes[partner], "peer.log_restored")
            if e["counterparty"] == "vh-test"
        ]
        assert len(seen) == 1, partner
        assert not [
            e
            for e in log_entries(fed.nodes[partner], "peer.log_forked")
            if e["counterparty"] == "vh-test"
        ]


async def test_the_privacy_officer_and_the_monitor_see_each_restore(
    federation: Federation, tmp_path: Path, backup_key: nacl.public.PrivateKey
) -> None:
    fed = federation
    archive = tmp_path / "om-test.vhbackup"
    make_backup(
        fed.nodes[OM].home,
        archive,
        with_keys=False,
        protection=to_key(backup_key),
        now=fed.nodes[OM].clock.now(),
    )
    await fed.query("vh-test", [JAN], case_ref="CASUS-1")
    await restore_from(fed, archive, backup_key)
    await fed.query("vh-test", [JAN], case_ref="CASUS-2")
    for holder, party in (("vh-test", OM), (OM, OM)):
        ctx = fed.nodes[holder].ctx
        found = report.report_for(ctx.conn, holder, ctx.clock.now()).anomalies
        assert [(a.rule, a.party, a.count) for a in found if a.rule == "restored_log"] == [
            ("restored_log", party, 1)
        ], holder
    at_vh = (await monitoring.scrape(fed.nodes["vh-test"].ctx)).decode()
    assert 'vhnode_peer_log_restores{partner="om-test"} 1.0' in at_vh
    assert "vhnode_log_epoch 0.0" in at_vh
    at_om = (await monitoring.scrape(fed.nodes[OM].ctx)).decode()
    assert "vhnode_log_epoch 1.0" in at_om
