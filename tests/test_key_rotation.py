"""Signing-key rotation (issue 11, item 4; docs/protocol.md §4.1.1, §4.2 step 5, §4.4):
a node takes a new key, its card is cross-signed by the old one, and partners' nodes take
it without an admin; convenants naming the old key stop until a next version names the
new one. And the compromise case: a revoked card's key vouches for nothing. Real nodes on
127.0.0.1, real keys, real SQLite, the ``vhnode`` command as a real process."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.clock import SYSTEM_CLOCK
from node.errors import BadSignature, KeyMismatch, MalformedMessage
from node.flows import admin
from node.protocol import jws
from node.protocol.bekendheid import EVALUATE_RESPONSE_TYP
from node.protocol.peer_card import PEER_CARD_TYP, issue_card, verify_card
from node.store import peers
from tests.federation import (
    CONVENANT_ID,
    PURPOSE,
    Federation,
    evaluate_request,
    jws_bytes,
    log_entries,
    post_peer,
    standard_federation,
    statuses,
)

JAN = {"kind": "bsn", "bsn": "123456782"}
JAN_AT_POLITIE = {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [JAN]}
CARD_PATH = "/peer/v1/card"
EVALUATE_PATH = "/peer/v1/evaluate"
OTHERS = ("vh-test", "om-test", "ggz-test")


async def _until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait (real time) until ``check()`` holds: the announcement runs in the background."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def _held_key(fed: Federation, at: str, of: str) -> str:
    peer = peers.by_id(fed.nodes[at].ctx.conn, of)
    assert peer is not None
    return peer.card.signing_fingerprint


def _forged_rotation(fed: Federation, node_id: str, stolen: nacl.signing.SigningKey) -> object:
    """What a thief holding ``node_id``'s old key can make: a card for a key of its own,
    cross-signed by the stolen one."""
    held = admin.own_card(fed.nodes[node_id].ctx)[0]
    return issue_card(
        node_id=node_id,
        organisation=held.organisation,
        org_type=held.org_type,
        endpoint=held.endpoint,
        signing_key=nacl.signing.SigningKey.generate(),
        encryption_public=held.encryption_key_bytes,
        validity=timedelta(days=30),
        now=fed.nodes[node_id].clock.now() + timedelta(seconds=5),
        previous_key=stolen,
    ).to_json()


# --- the card ------------------------------------------------------------------------------


def _card_fields() -> dict[str, Any]:
    return {
        "node_id": "politie-test",
        "organisation": "Politie",
        "org_type": "politie",
        "endpoint": "http://127.0.0.1:1",
        "encryption_public": bytes(range(32)),
        "validity": timedelta(days=1),
        "now": SYSTEM_CLOCK.now(),
    }


def test_a_rotation_card_carries_its_own_signature_and_its_previous_keys() -> None:
    old, new = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    doc = issue_card(signing_key=new, previous_key=old, **_card_fields())
    card, _ = verify_card(doc.to_json())
    assert card.previous_fingerprint == jws.fingerprint(bytes(old.verify_key))
    assert set(doc.kids()) == {card.signing_fingerprint, card.previous_fingerprint}

    # Without the cross-signature, or with it by another key, the card is refused.
    alone = replace(doc, signatures=doc.signatures[:1])
    with pytest.raises(MalformedMessage, match="exactly two signatures"):
        verify_card(alone.to_json())
    stranger = replace(doc, signatures=doc.signatures[:1]).with_signature(
        nacl.signing.SigningKey.generate()
    )
    with pytest.raises(BadSignature):
        verify_card(stranger.to_json())
    # A card that names no previous key still carries exactly one signature.
    plain = issue_card(signing_key=new, **_card_fields())
    assert "previous_signing_key" not in plain.payload
    with pytest.raises(MalformedMessage, match="exactly one signature"):
        verify_card(plain.with_signature(old).to_json())
    # previous_signing_key is absent or a key, never null (one encoding per card).
    nulled = jws.sign(PEER_CARD_TYP, {**plain.payload, "previous_signing_key": None}, new)
    with pytest.raises(MalformedMessage, match="never null"):
        verify_card(nulled.to_json())


# --- a rotation on a real federation -----------------------------------------------------


async def test_a_rotation_is_taken_by_every_partner_without_an_admin(
    federation: Federation,
) -> None:
    fed = federation
    fed.register("politie-test", JAN_AT_POLITIE)
    politie = fed.nodes["politie-test"]
    before = await fed.query("vh-test", [JAN])
    assert statuses(before)["politie-test"] == "hit"
    old_key = politie.ctx.keys.signing
    old_fp = politie.ctx.keys.signing_fingerprint

    # om-test is down while politie rotates and restarts: it gets the card later.
    await fed.stop("om-test")
    await fed.stop("politie-test")
    card_doc, naming_old = admin.rotate_signing_key(politie.ctx)
    assert naming_old == [CONVENANT_ID]
    new_fp = politie.ctx.keys.signing_fingerprint
    assert new_fp != old_fp
    assert verify_card(card_doc.to_json())[0].previous_fingerprint == old_fp
    await fed.start("politie-test")

    # No admin anywhere: the running partners take the announced card.
    await _until(lambda: all(_held_key(fed, n, "politie-test") == new_fp for n in OTHERS[::2]))
    assert _held_key(fed, "om-test", "politie-test") == old_fp
    await fed.start("om-test")  # the announcement is retried until om-test answers
    await _until(lambda: _held_key(fed, "om-test", "politie-test") == new_fp)
    for node_id in OTHERS:
        rotated = log_entries(fed.nodes[node_id], "peer.rotated")
        assert len(rotated) == 1, node_id
        assert rotated[0]["counterparty"] == "politie-test"
        assert rotated[0]["data"] == {
            "signing_key_fingerprint": new_fp,
            "previous_signing_key_fingerprint": old_fp,
            "via": "cross-signature",
        }
    own = log_entries(politie, "key.rotated")
    assert [e["data"] for e in own] == [
        {
            "signing_key_fingerprint": new_fp,
            "previous_signing_key_fingerprint": old_fp,
            "cross_signed": True,
        }
    ]

    # A request signed by the old key is refused: the partners no longer hold it.
    stale = evaluate_request(fed, "politie-test", "om-test", signer=old_key)
    reply = await post_peer(fed, "om-test", EVALUATE_PATH, stale)
    assert reply.status == 403
    refused = jws.parse_bytes(reply.body, EVALUATE_RESPONSE_TYP).payload
    assert refused["reason"] == "unknown_requester"

    # The convenant names the old key: fail closed until its next version names the new.
    status, body = await fed.api(
        "vh-test",
        "POST",
        "/api/v1/bekendheid",
        json={
            "convenant_id": CONVENANT_ID,
            "purpose": PURPOSE,
            "case_ref": "CASUS-ROT-1",
            "subjects": [JAN],
        },
    )
    assert status == 403, body
    assert body["type"].endswith("/convenant_not_in_force"), body
    draft = admin.next_convenant_version(fed.nodes["vh-test"].ctx, CONVENANT_ID)
    assert draft.payload["version"] == 2
    named = {p["node_id"]: p["signing_key_fingerprint"] for p in draft.payload["parties"]}
    assert named["politie-test"] == new_fp
    doc = draft
    for node in fed.nodes.values():
        doc = admin.sign_convenant(node.ctx, doc.to_json())
    for node in fed.nodes.values():
        admin.install_convenant(node.ctx, doc.to_json())

    after = await fed.query("vh-test", [JAN], case_ref="CASUS-ROT-2")
    assert after["convenant_version"] == 2
    assert statuses(after) == {
        "vh-test": "no_hit",
        "politie-test": "hit",
        "om-test": "no_hit",
        "ggz-test": "no_hit",
    }
    asked = await fed.query("politie-test", [JAN], case_ref="CASUS-ROT-3")
    assert set(statuses(asked).values()) <= {"hit", "no_hit"}, asked

    # politie's own log spans both keys and still verifies; partners' cross-checks of the
    # heads they held from before the rotation still prove consistent.
    status, report = await fed.api(
        "politie-test", "GET", "/api/v1/audit/verify", role="privacy_officer"
    )
    assert status == 200, report
    assert report["ok"], report
    status, checked = await fed.api(
        "vh-test", "POST", "/api/v1/audit/cross-check", role="privacy_officer"
    )
    assert status == 200, checked
    verdicts = {p["peer"]: p["verdict"] for p in checked["peers"]}
    assert verdicts["politie-test"] == "consistent", checked


async def test_a_rotation_over_mutual_tls_keeps_the_tls_pin(tmp_path: Path) -> None:
    # The signing key changes, the TLS key does not: the rotation card is a v2 card with
    # the same certificate, announced over mutual TLS and taken there without an admin.
    fed = await standard_federation(tmp_path, tls=True)
    try:
        fed.register("politie-test", JAN_AT_POLITIE)
        politie = fed.nodes["politie-test"]
        before, _ = verify_card(politie.card_json())
        await fed.stop("politie-test")
        card_doc, _ = admin.rotate_signing_key(politie.ctx)
        card, doc = verify_card(card_doc.to_json())
        assert doc.typ == "vhnode-peer-card/v2"
        assert card.tls_key_fingerprint == before.tls_key_fingerprint
        assert card.previous_fingerprint == before.signing_fingerprint
        await fed.start("politie-test")
        await _until(
            lambda: all(
                _held_key(fed, n, "politie-test") == card.signing_fingerprint for n in OTHERS
            )
        )
        draft = admin.next_convenant_version(fed.nodes["vh-test"].ctx, CONVENANT_ID)
        for node in fed.nodes.values():
            draft = admin.sign_convenant(node.ctx, draft.to_json())
        for node in fed.nodes.values():
            admin.install_convenant(node.ctx, draft.to_json())
        result = await fed.query("vh-test", [JAN], case_ref="CASUS-ROT-TLS")
        assert statuses(result)["politie-test"] == "hit"
    finally:
        await fed.close()


async def test_a_stolen_key_cannot_move_a_revoked_partner_to_a_key_of_its_own(
    federation: Federation,
) -> None:
    fed = federation
    politie = fed.nodes["politie-test"]
    stolen = politie.ctx.keys.signing
    # politie reports its key stolen; vh-test's admin revokes the card at once.
    admin.revoke_peer(fed.nodes["vh-test"].ctx, "politie-test")
    forged = _forged_rotation(fed, "politie-test", stolen)

    reply = await post_peer(fed, "vh-test", CARD_PATH, json.dumps(forged).encode())
    assert reply.status == 403, reply.body
    assert reply.json()["type"].endswith("/revoked_requester")
    held = peers.by_id(fed.nodes["vh-test"].ctx.conn, "politie-test")
    assert held is not None
    assert held.revoked_at is not None
    assert held.card.signing_fingerprint == politie.ctx.keys.signing_fingerprint
    # Nor through an admin's plain 'peer add': the revoked card's key vouches for nothing.
    with pytest.raises(KeyMismatch, match="revoked"):
        admin.add_peer(fed.nodes["vh-test"].ctx, forged)
    assert log_entries(fed.nodes["vh-test"], "peer.rotated") == []

    # The compromise procedure: a new key the old one does not vouch for.
    await fed.stop("politie-test")
    card_doc, _ = admin.rotate_signing_key(politie.ctx, compromised=True)
    card = verify_card(card_doc.to_json())[0]
    assert card.previous_signing_key is None
    await fed.start("politie-test")
    # ggz-test has not revoked yet: it does not take a card without the cross-signature.
    reply = await post_peer(fed, "ggz-test", CARD_PATH, jws_bytes(card_doc))
    assert reply.status == 409
    assert reply.json()["type"].endswith("/key_mismatch")
    # vh-test's admin compares the fingerprint out of band and accepts it by hand.
    _, outcome = admin.add_peer(fed.nodes["vh-test"].ctx, card_doc.to_json(), rotate=True)
    assert outcome == "rotated"
    entry = log_entries(fed.nodes["vh-test"], "peer.rotated")[-1]
    assert "via" not in entry["data"]
    assert log_entries(politie, "key.rotated")[-1]["data"]["cross_signed"] is False


async def test_an_announced_card_of_a_node_nobody_added_is_not_taken(
    federation: Federation,
) -> None:
    fed = federation
    stranger = issue_card(
        signing_key=nacl.signing.SigningKey.generate(),
        **(_card_fields() | {"node_id": "gemeente-x", "org_type": "gemeente"}),
    )
    reply = await post_peer(fed, "vh-test", CARD_PATH, jws_bytes(stranger))
    assert reply.status == 403
    assert reply.json()["type"].endswith("/unknown_requester")
    assert peers.by_id(fed.nodes["vh-test"].ctx.conn, "gemeente-x") is None
    bad = await post_peer(fed, "vh-test", CARD_PATH, b"not json")
    assert bad.status == 400
    assert bad.json()["type"].endswith("/malformed_message")


# --- the commands ------------------------------------------------------------------------


def _vhnode(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    assert done.stderr.startswith("error: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def test_keys_rotate_command_makes_a_card_a_partner_takes_without_rotate(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("vh", "politie")}
    for name, org_type in (("vh", "veiligheidshuis"), ("politie", "politie")):
        done = _vhnode(
            "init", "--home", homes[name], "--node-id", f"{name}-zwb", "--organisation",
            f"Organisatie {name}", "--org-type", org_type, "--endpoint", "http://127.0.0.1:8401",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    first = tmp_path / "politie-1.json"
    assert _vhnode("card", "export", "--home", homes["politie"], "-o", first).returncode == 0
    assert _vhnode("peer", "add", "--home", homes["vh"], first).returncode == 0
    old_fp = verify_card(json.loads(first.read_text()))[0].signing_fingerprint

    rotate = _vhnode("keys", "rotate", "--home", homes["politie"])
    assert rotate.returncode == 0, rotate.stderr
    assert f"old signing key fingerprint: {old_fp}" in rotate.stdout
    assert "restart the node now" in rotate.stdout
    keys = homes["politie"] / "keys"
    assert stat.S_IMODE((keys / "signing.key").stat().st_mode) == 0o600
    retired = list((keys / "retired").iterdir())
    assert [p.name for p in retired] == [f"signing-{old_fp}.pub"]
    assert stat.S_IMODE(retired[0].stat().st_mode) == 0o600
    assert not (keys / "signing.key.tmp").exists()

    second = tmp_path / "politie-2.json"
    assert _vhnode("card", "export", "--home", homes["politie"], "-o", second).returncode == 0
    new_fp = verify_card(json.loads(second.read_text()))[0].signing_fingerprint
    assert f"new signing key fingerprint: {new_fp}" in rotate.stdout
    added = _vhnode("peer", "add", "--home", homes["vh"], second)  # no --rotate
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("rotated: politie-zwb")
    # The log spans both keys: heads before the rotation verify under the retired key.
    verified = _vhnode("audit", "verify", "--home", homes["politie"])
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # A compromised key vouches for nothing: the partner's admin decides by hand.
    third = tmp_path / "politie-3.json"
    assert _vhnode("keys", "rotate", "--compromised", "--home", homes["politie"]).returncode == 0
    assert _vhnode("card", "export", "--home", homes["politie"], "-o", third).returncode == 0
    assert "--rotate" in _one_line_error(_vhnode("peer", "add", "--home", homes["vh"], third))
    forced = _vhnode("peer", "add", "--rotate", "--home", homes["vh"], third)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("rotated: politie-zwb")
    assert "not installed" in _one_line_error(
        _vhnode("convenant", "next", "vh-nope", "--home", homes["vh"])
    )
