"""OPRF key epochs (docs/protocol.md §6.1.1): the key of a partner's tag set changes on
schedule, so a tag learned before the change tests nothing after it.

Real nodes on loopback; time moves by the nodes' own clocks. A partner's schedule is
checked by its running node's background pass (the retention task), which wakes when
its clock is advanced past the pass interval.
"""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import nacl.public
import nacl.signing

from node.config import OprfConfig
from node.flows import publishing
from node.flows.publishing import apply_changes
from node.keys import NodeKeys, oprf_key_info
from node.protocol import jws, oprf, tag_set
from node.protocol.identifiers import parse_identifier, subject_key
from node.protocol.models import rfc3339
from node.protocol.tag_set import tag_from_output
from node.store import key_pins, oprf_epochs, tag_sets
from node.store.db import tx
from tests.detail_fixtures import CONTACT, detail_federation, hit_round
from tests.federation import (
    CONVENANT_ID,
    EVALUATE_PATH,
    PURPOSE,
    Federation,
    interpose,
    log_entries,
    standard_federation,
    statuses,
)

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
POLITIE = "politie-test"
VH = "vh-test"


def _reg(ref: str, *identifiers: dict[str, Any]) -> dict[str, Any]:
    return {"ref": ref, "themes": ["veelplegers"], "identifiers": list(identifiers)}


def _tag(fed: Federation, partner: str, identifier: dict[str, Any], epoch: int) -> bytes:
    sk, _ = fed.nodes[partner].ctx.oprf_key(CONVENANT_ID, epoch)
    key = subject_key(parse_identifier(identifier)).encode()
    return tag_from_output(oprf.evaluate(sk, [key])[0])


async def _pass_time(fed: Federation, by: timedelta) -> None:
    """Every node's clock moves on together (requests stay fresh); each running node's
    background pass wakes, changes what is due, and sleeps again."""
    async with asyncio.timeout(60):  # a guard against a hang only; the clocks decide
        for node in fed.nodes.values():
            await node.clock.until_sleeping()
        for node in fed.nodes.values():
            node.clock.advance(by)
        for node in fed.nodes.values():
            await node.clock.until_sleeping()


async def test_after_an_epoch_change_an_old_tag_no_longer_tests_membership(
    federation: Federation,
) -> None:
    fed = federation
    fed.register(POLITIE, _reg("BPS-1", JAN_BSN))
    vh, politie = fed.nodes[VH].ctx, fed.nodes[POLITIE].ctx
    first = await fed.query(VH, [JAN_BSN])
    assert statuses(first)[POLITIE] == "hit"
    old_tag = _tag(fed, POLITIE, JAN_BSN, 0)
    # The requester holds the partner's set, and the tag it learned tests membership in it.
    assert tag_sets.peer_has(vh.conn, POLITIE, CONVENANT_ID, old_tag)
    old_head = tag_sets.peer_head(vh.conn, POLITIE, CONVENANT_ID)
    assert old_head is not None

    await _pass_time(fed, timedelta(days=politie.cfg.oprf.epoch_days))

    epoch = oprf_epochs.current(politie.conn, CONVENANT_ID)
    assert epoch.epoch == 1
    new_tag = _tag(fed, POLITIE, JAN_BSN, 1)
    assert new_tag != old_tag
    assert epoch.live_set != CONVENANT_ID  # epoch 1's set beside epoch 0's
    members = tag_sets.members(politie.conn, epoch.live_set)
    assert old_tag not in members
    assert new_tag in members
    assert len(members) == old_head.count  # the same subjects, under another key
    published = log_entries(fed.nodes[POLITIE], "tag_set.epoch_started")
    assert [e["data"]["epoch"] for e in published] == [1]

    # The next round is answered under the new key; the requester, holding the set of
    # the old one, fetches it whole, and finds the subject by its new tag only.
    second = await fed.query(VH, [JAN_BSN])
    assert statuses(second)[POLITIE] == "hit"
    held = tag_sets.peer_head(vh.conn, POLITIE, CONVENANT_ID)
    assert held is not None
    assert held.oprf_public_key != old_head.oprf_public_key
    assert held.version > old_head.version
    assert not tag_sets.peer_has(vh.conn, POLITIE, CONVENANT_ID, old_tag)
    assert tag_sets.peer_has(vh.conn, POLITIE, CONVENANT_ID, new_tag)
    served = log_entries(fed.nodes[POLITIE], "tag_set.served")
    assert served[-1]["data"]["base_version"] == 0  # no delta across a key change
    # The requester pinned the key of each epoch it was shown.
    pinned = {(p.partner, p.epoch) for p in key_pins.pins(vh.conn, [POLITIE])}
    assert pinned == {(POLITIE, 0), (POLITIE, 1)}
    # Past the overlap the previous epoch's set is gone from the partner's database.
    assert tag_sets.holds_rows(politie.conn, CONVENANT_ID)
    await _pass_time(fed, timedelta(hours=politie.cfg.oprf.overlap_hours))
    assert not tag_sets.holds_rows(politie.conn, CONVENANT_ID)
    # A subject registered after the change is found as well (the new key's tags).
    other = {"kind": "bsn", "bsn": "111222333"}
    fed.register(POLITIE, _reg("BPS-2", other))
    third = await fed.query(VH, [other, JAN_BSN])
    assert [p["subjects"] for p in third["partners"] if p["partner"] == POLITIE] == [["hit", "hit"]]


async def test_the_head_announces_the_epoch_its_end_and_the_overlap(
    federation: Federation,
) -> None:
    # What the partner signs in its evaluate answer, as it crosses the network.
    fed = federation
    proxy = await interpose(fed, POLITIE)
    answers: list[bytes] = []

    def keep(path: str, body: bytes) -> bytes:
        if path == EVALUATE_PATH:
            answers.append(body)
        return body

    proxy.rewrite = keep
    politie = fed.nodes[POLITIE].ctx
    assert statuses(await fed.query(VH, [JAN_BSN]))[POLITIE] == "no_hit"
    head = json.loads(jws.b64u_decode(json.loads(answers[-1])["payload"]))["tag_set"]
    epoch = oprf_epochs.current(politie.conn, CONVENANT_ID)
    assert epoch.started_at is not None
    _, pk = politie.oprf_key(CONVENANT_ID, 0)
    assert head["oprf_epoch"] == 0
    assert head["oprf_public_key"] == jws.b64u_encode(pk)
    assert head["oprf_epoch_ends_at"] == rfc3339(epoch.started_at + timedelta(days=30))
    assert head["oprf_overlap_hours"] == 168
    # After the change the same answer names epoch 1, its key and its end.
    await _pass_time(fed, timedelta(days=30))
    assert statuses(await fed.query(VH, [JAN_BSN]))[POLITIE] == "no_hit"
    head = json.loads(jws.b64u_decode(json.loads(answers[-1])["payload"]))["tag_set"]
    _, pk1 = politie.oprf_key(CONVENANT_ID, 1)
    assert (head["oprf_epoch"], head["oprf_public_key"]) == (1, jws.b64u_encode(pk1))
    started = oprf_epochs.current(politie.conn, CONVENANT_ID).started_at
    assert started is not None
    assert head["oprf_epoch_ends_at"] == rfc3339(started + timedelta(days=30))


async def test_no_change_when_epochs_are_off(federation: Federation) -> None:
    fed = federation
    politie = fed.nodes[POLITIE]
    politie.ctx.cfg = politie.ctx.cfg.model_copy(update={"oprf": OprfConfig(epoch_days=0)})
    fed.register(POLITIE, _reg("BPS-1", JAN_BSN))
    await _pass_time(fed, timedelta(days=400))
    assert oprf_epochs.current(politie.ctx.conn, CONVENANT_ID).epoch == 0
    assert _tag(fed, POLITIE, JAN_BSN, 0) in tag_sets.members(politie.ctx.conn, CONVENANT_ID)


async def test_a_hit_proof_from_before_the_change_holds_through_the_overlap_only(
    tmp_path: Path,
) -> None:
    fed = await detail_federation(tmp_path)
    try:
        politie = fed.nodes[POLITIE].ctx
        politie.cfg = politie.cfg.model_copy(
            update={"oprf": OprfConfig(epoch_days=2, overlap_hours=24)}
        )
        round_ = await hit_round(fed)
        assert statuses(round_)[POLITIE] == "hit"
        await _pass_time(fed, timedelta(days=2))
        assert oprf_epochs.current(politie.conn, CONVENANT_ID).epoch == 1

        async def ask() -> dict[str, Any]:
            status, body = await fed.api(
                VH,
                "POST",
                "/api/v1/details",
                json={
                    "round_trace_id": round_["trace_id"],
                    "partner": POLITIE,
                    "categories": [CONTACT],
                    "purpose": PURPOSE,
                },
            )
            assert status == 200, body
            return dict(body)

        # The round's proof is of the previous key; within the overlap it still resolves.
        within = await ask()
        assert [(c["category"], c["status"]) for c in within["categories"]] == [
            (CONTACT, "delivered")
        ]
        # Past the overlap (and still within the round's hit validity) it does not.
        await _pass_time(fed, timedelta(hours=25))
        after = await ask()
        assert (after["outcome"], after["reason"]) == ("refused", "unknown_subject")
    finally:
        await fed.close()


async def test_a_partner_that_shows_another_key_for_an_epoch_is_caught(
    federation: Federation,
) -> None:
    fed = federation
    fed.register(POLITIE, _reg("BPS-1", JAN_BSN))
    first = await fed.query(VH, [JAN_BSN])
    assert statuses(first)[POLITIE] == "hit"
    # The partner now evaluates epoch 0 with another key (a second seed): its answers
    # are signed and its proofs verify — under a key the requester was not shown before.
    politie = fed.nodes[POLITIE].ctx
    politie._oprf_keys[CONVENANT_ID, 0] = oprf.derive_key_pair(bytes(range(32)), b"another")
    second = await fed.query(VH, [JAN_BSN])
    partner = next(p for p in second["partners"] if p["partner"] == POLITIE)
    assert (partner["status"], partner["reason"]) == ("invalid", "oprf_key_conflict")
    conflicts = log_entries(fed.nodes[VH], "peer.oprf_key_conflict")
    assert [(e["counterparty"], e["data"]["epoch"]) for e in conflicts] == [(POLITIE, 0)]
    # It stays caught: the honest key again does not clear the epoch's conflict.
    del politie._oprf_keys[CONVENANT_ID, 0]
    third = await fed.query(VH, [JAN_BSN])
    assert statuses(third)[POLITIE] == "invalid"


async def _cross_check(fed: Federation, node_id: str) -> dict[str, str | None]:
    status, body = await fed.api(
        node_id, "POST", "/api/v1/audit/cross-check", role="privacy_officer"
    )
    assert status == 200, body
    return {p["peer"]: p["oprf_keys"] for p in body["peers"]}


async def test_requesters_that_compare_pins_catch_a_partner_showing_them_different_keys(
    federation: Federation,
) -> None:
    # om-test shows vh-test one key for epoch 0 and politie-test another. Neither
    # requester can tell from its own answers; comparing their pins, both can.
    fed = federation
    fed.register("om-test", _reg("OM-1", JAN_BSN))
    assert statuses(await fed.query(VH, [JAN_BSN]))["om-test"] == "hit"
    om = fed.nodes["om-test"].ctx
    om._oprf_keys[CONVENANT_ID, 0] = oprf.derive_key_pair(bytes(range(32)), b"for politie")
    # Signed, with a proof that verifies: politie-test has nothing to object to (its
    # set stays under the first key, so the tag finds no hit there).
    politie_view = await fed.query(POLITIE, [JAN_BSN])
    assert statuses(politie_view)["om-test"] in ("hit", "no_hit")
    assert not log_entries(fed.nodes[VH], "peer.oprf_key_conflict")
    assert not log_entries(fed.nodes[POLITIE], "peer.oprf_key_conflict")

    verdicts = await _cross_check(fed, VH)
    assert verdicts[POLITIE] == "conflict"
    for node_id, told_by in ((VH, POLITIE), (POLITIE, VH)):
        found = log_entries(fed.nodes[node_id], "peer.oprf_key_conflict")
        assert [(e["counterparty"], e["data"]["epoch"], e["data"]["source"]) for e in found] == [
            ("om-test", 0, told_by)
        ]
    # From then on neither trusts om-test's answers under that epoch.
    for requester in (VH, POLITIE):
        result = await fed.query(requester, [JAN_BSN])
        partner = next(p for p in result["partners"] if p["partner"] == "om-test")
        assert (partner["status"], partner["reason"]) == ("invalid", "oprf_key_conflict")


async def test_honest_partners_pins_agree(federation: Federation) -> None:
    fed = federation
    fed.register("om-test", _reg("OM-1", JAN_BSN))
    await fed.query(VH, [JAN_BSN])
    await fed.query(POLITIE, [JAN_BSN])
    verdicts = await _cross_check(fed, VH)
    assert verdicts[POLITIE] == "agree"
    compared = log_entries(fed.nodes[POLITIE], "key_pins.compared")
    # vh-test's pins of om-test and ggz-test (not of politie-test itself) were compared.
    assert compared[-1]["data"]["compared"] == 2
    assert compared[-1]["data"]["conflicts"] == 0
    assert statuses(await fed.query(VH, [JAN_BSN]))["om-test"] == "hit"


async def test_the_admin_changes_the_key_now_with_the_cli(federation: Federation) -> None:
    # After a leak the admin does not wait for the schedule: `vhnode registry next-epoch`
    # (its own process, beside the running node) publishes the set under the next key.
    from tests.test_cli_process import one_error_line, vhnode  # noqa: PLC0415

    fed = federation
    fed.register(POLITIE, _reg("BPS-1", JAN_BSN))
    await fed.query(VH, [JAN_BSN])
    home = str(fed.nodes[POLITIE].home)
    code, out, err = await vhnode("registry", "next-epoch", CONVENANT_ID, "--home", home, "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "convenant_id": CONVENANT_ID,
        "oprf_epoch": 1,
        "tag_set_version": 3,  # 1: the install's empty set, 2: BPS-1
        "tags": 1,
    }
    old_tag = _tag(fed, POLITIE, JAN_BSN, 0)
    result = await fed.query(VH, [JAN_BSN])
    assert statuses(result)[POLITIE] == "hit"
    assert not tag_sets.peer_has(fed.nodes[VH].ctx.conn, POLITIE, CONVENANT_ID, old_tag)
    # A convenant the node provides nothing under: one line, no traceback.
    code, _, err = await vhnode("registry", "next-epoch", "vh-elders", "--home", home)
    assert one_error_line(code, err).endswith("this node provides no tag set under vh-elders")


def test_epoch_keys_are_appendix_b() -> None:
    """docs/protocol.md Appendix B: epoch 0 is the key of the versions before epochs."""
    keys = NodeKeys(
        signing=nacl.signing.SigningKey(bytes(32)),
        encryption=nacl.public.PrivateKey(bytes(32)),
        oprf_seed=bytes(range(32)),
    )
    sk0, pk0 = keys.oprf_key("vh-test-veelplegers", 0)
    assert sk0.hex() == "02b5f29c494ad751dbd675a4458fd87ed95c9743051e62d02e8215ed52fe0b03"
    assert pk0.hex() == "a407ad05407cbc0ec234a85212d590659f6e51f462879b6a0445ce51be5c2f6f"
    sk1, pk1 = keys.oprf_key("vh-test-veelplegers", 1)
    assert sk1.hex() == "8519bde246b7af058ebadccf5acb379a93dfd80f8120f873f61c59fc04440304"
    assert pk1.hex() == "58ba02136c198b3263786eac4f69e2a0c04bbcd105e3e20850923ace30803137"
    tag = tag_from_output(oprf.evaluate(sk1, [b"bsn:123456782"])[0])
    assert tag.hex() == "fd36b24dcf180e1ea19f45eb9c95a4a0"
    assert oprf_key_info("c", 12) == b"vhnode/v1 convenant c epoch 12"


async def test_registry_changes_during_the_build_reach_the_new_set(
    federation: Federation,
) -> None:
    # The next epoch's set is built in chunks while the registry changes: a change to a
    # registration the build holds already is made in it too, one past its cursor is read
    # when the build gets there, and the switch adds what was registered at the end.
    fed = federation
    politie = fed.nodes[POLITIE].ctx
    conv = politie.trust().convenants[CONVENANT_ID][0].convenant
    other = {"kind": "bsn", "bsn": "111222333"}
    third = {"kind": "bsn", "bsn": "999999990"}
    fed.register(POLITIE, _reg("BPS-1", JAN_BSN), _reg("BPS-5", other))
    assert await politie.write(lambda: publishing.begin_epoch(politie, conv, 1)) == "started"
    first = functools.partial(
        publishing.stage_chunk, politie, conv, 1, "", "BPS-1", publishing.EpochTags(1)
    )
    assert await politie.write(first)
    fed.register(POLITIE, _reg("BPS-1", third), _reg("BPS-0", other))  # behind the cursor
    fed.register(POLITIE, _reg("BPS-9", JAN_BSN))  # past it
    apply_changes(politie, [], removals=["BPS-5"])  # past it, and gone before it got there
    head = await politie.write(lambda: publishing.finish_epoch(politie, conv, 1))
    assert head is not None
    live = oprf_epochs.live_set(politie.conn, CONVENANT_ID)
    members = set(tag_sets.members(politie.conn, live))
    expected = {_tag(fed, POLITIE, i, 1) for i in (third, other, JAN_BSN)}
    assert members == expected
    assert head.count == 3
    assert head.digest == tag_set.digest(expected)
    # The refs agree with the registry too: removing the two that hold `other` empties it.
    fed.register(POLITIE, _reg("BPS-0", third))
    assert _tag(fed, POLITIE, other, 1) not in tag_sets.members(politie.conn, live)


async def test_a_round_across_the_change_evaluates_again_under_the_new_key(
    federation: Federation,
) -> None:
    # The partner changes its key after answering the evaluation and before the
    # requester fetches its set: the set comes under the new key, so the requester keeps
    # it and evaluates once more (§6.8 step 5) instead of calling the partner invalid.
    fed = federation
    fed.register(POLITIE, _reg("BPS-1", JAN_BSN))
    politie = fed.nodes[POLITIE].ctx
    conv = politie.trust().convenants[CONVENANT_ID][0].convenant
    proxy = await interpose(fed, POLITIE)

    def change_after_first_evaluation(path: str, body: bytes) -> bytes:
        if path == EVALUATE_PATH and oprf_epochs.current(politie.conn, CONVENANT_ID).epoch == 0:
            # Not on the partner's own loop (this is the proxy): its direct connection.
            with tx(politie.conn):
                assert publishing.begin_epoch(politie, conv, 1) == "started"
            with tx(politie.conn):
                everything = publishing.stage_chunk(
                    politie, conv, 1, "", "\uffff", publishing.EpochTags(1)
                )
                assert everything
            with tx(politie.conn):
                assert publishing.finish_epoch(politie, conv, 1) is not None
        return body

    proxy.rewrite = change_after_first_evaluation
    result = await fed.query(VH, [JAN_BSN])
    partner = next(p for p in result["partners"] if p["partner"] == POLITIE)
    assert (partner["status"], partner["tries"]) == ("hit", 2)
    pinned = {p.epoch for p in key_pins.pins(fed.nodes[VH].ctx.conn, [POLITIE])}
    assert pinned == {0, 1}
    evaluated = [
        e for e in log_entries(fed.nodes[POLITIE], "bekendheid.evaluated")
        if e["trace_id"] == result["trace_id"]
    ]  # fmt: skip
    assert len(evaluated) == 2


async def test_pins_are_compared_over_mutual_tls(tmp_path: Path) -> None:
    # The key-pins exchange goes where the consistency request goes: over the peer's
    # pinned TLS session (§12.3), which is how nodes talk by default.
    fed = await standard_federation(tmp_path, tls=True)
    try:
        fed.register("om-test", _reg("OM-1", JAN_BSN))
        assert statuses(await fed.query(VH, [JAN_BSN]))["om-test"] == "hit"
        assert statuses(await fed.query(POLITIE, [JAN_BSN]))["om-test"] == "hit"
        assert (await _cross_check(fed, VH))[POLITIE] == "agree"
        compared = log_entries(fed.nodes[POLITIE], "key_pins.compared")
        assert compared[-1]["data"]["compared"] == 2
    finally:
        await fed.close()
