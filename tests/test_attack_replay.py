"""Replay: captured requests and responses sent again.

A network attacker (or a curious partner) records real traffic with an Interposer and
plays it back. A captured request must never be evaluated twice, nor redirected to
another partner; a captured response must never answer another request, because each
response is bound to the SHA-256 of the request it answers (``request_hash``).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from node.flows import unauthenticated
from node.protocol import jws
from node.protocol.bekendheid import EVALUATE_RESPONSE_TYP, TAG_SET_RESPONSE_TYP
from tests.federation import (
    EVALUATE_PATH,
    OTHER_PURPOSE,
    TAG_SET_PATH,
    Federation,
    Interposer,
    Rewrite,
    interpose,
    log_entries,
    open_signed,
    partner_result,
    post_peer,
    statuses,
)

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
PIET_BSN = {"kind": "bsn", "bsn": "111222333"}
TARGET = "politie-test"


def _register(fed: Federation, ref: str, subject: dict[str, str]) -> None:
    fed.register(TARGET, {"ref": ref, "themes": ["veelplegers"], "identifiers": [subject]})


def _captured(proxy: Interposer, path: str) -> bytes:
    bodies = [b for p, b in proxy.requests if p == path]
    assert bodies, f"no {path} request captured"
    return bodies[-1]


def _recording(path: str, into: list[bytes]) -> Rewrite:
    def rewrite(p: str, body: bytes) -> bytes:
        if p == path:
            into.append(body)
        return body

    return rewrite


def _replaying(path: str, recorded: bytes) -> Rewrite:
    return lambda p, body: recorded if p == path else body


def _assert_refused(
    fed: Federation,
    partner: str,
    request: bytes,
    reply_body: bytes,
    status: int,
    reason: str,
    tag_set: bool = False,
) -> None:
    assert status == 403
    typ = TAG_SET_RESPONSE_TYP if tag_set else EVALUATE_RESPONSE_TYP
    payload = open_signed(fed, partner, reply_body, typ)
    assert (payload["outcome"], payload["reason"]) == ("refused", reason)
    assert payload["request_hash"] == jws.b64u_encode(jws.parse_bytes(request).digest())
    # A replayed, stale or redirected request is not the requester asking us now (§6.6
    # steps 3–6): counted, never logged on its own.
    node = fed.nodes[partner]
    refused = ("tag_set.refused", "bekendheid.refused")
    assert not [e for e in log_entries(node) if e["kind"] in refused]
    assert node.ctx.unauthenticated.pending() == 1
    unauthenticated.flush(node.ctx, everything=True)
    last = log_entries(node)[-1]
    assert (last["kind"], last["data"]["reasons"]) == ("peer.unauthenticated", {reason: 1})


# --- captured requests ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [EVALUATE_PATH, TAG_SET_PATH])
async def test_captured_request_resent_verbatim_is_refused_as_replayed(
    federation: Federation, path: str
) -> None:
    _register(federation, "BPS-1", JAN_BSN)
    proxy = await interpose(federation, TARGET)
    assert statuses(await federation.query("vh-test", [JAN_BSN]))[TARGET] == "hit"
    captured = _captured(proxy, path)
    evaluated_before = len(log_entries(federation.nodes[TARGET], "bekendheid.evaluated"))
    served_before = len(log_entries(federation.nodes[TARGET], "tag_set.served"))

    reply = await post_peer(federation, TARGET, path, captured)

    _assert_refused(
        federation,
        TARGET,
        captured,
        reply.body,
        reply.status,
        "replayed_request",
        tag_set=path == TAG_SET_PATH,
    )
    assert len(log_entries(federation.nodes[TARGET], "bekendheid.evaluated")) == evaluated_before
    assert len(log_entries(federation.nodes[TARGET], "tag_set.served")) == served_before


async def test_captured_request_replayed_later_is_refused_as_stale(
    federation: Federation,
) -> None:
    """After the skew window the nonce may be forgotten; the timestamp still refuses."""
    proxy = await interpose(federation, TARGET)
    await federation.query("vh-test", [JAN_BSN])
    captured = _captured(proxy, EVALUATE_PATH)
    federation.nodes[TARGET].clock.set(federation.started_at + timedelta(hours=1))
    reply = await post_peer(federation, TARGET, EVALUATE_PATH, captured)
    _assert_refused(federation, TARGET, captured, reply.body, reply.status, "stale_request")


async def test_captured_request_redirected_to_another_partner_is_misaddressed(
    federation: Federation,
) -> None:
    proxy = await interpose(federation, TARGET)
    await federation.query("vh-test", [JAN_BSN])
    captured = _captured(proxy, EVALUATE_PATH)
    reply = await post_peer(federation, "om-test", EVALUATE_PATH, captured)
    _assert_refused(federation, "om-test", captured, reply.body, reply.status, "misaddressed")


async def test_captured_request_with_a_fresh_nonce_fails_its_signature(
    federation: Federation,
) -> None:
    proxy = await interpose(federation, TARGET)
    await federation.query("vh-test", [JAN_BSN])
    obj = json.loads(_captured(proxy, EVALUATE_PATH))
    payload = json.loads(jws.b64u_decode(obj["payload"]))
    payload["nonce"] = jws.b64u_encode(b"\x01" * 16)
    obj["payload"] = jws.b64u_encode(jws.canonical(payload))
    forged = json.dumps(obj).encode()
    reply = await post_peer(federation, TARGET, EVALUATE_PATH, forged)
    _assert_refused(federation, TARGET, forged, reply.body, reply.status, "bad_signature")


# --- captured responses --------------------------------------------------------------------


async def test_captured_evaluation_replayed_to_a_later_request_is_invalid(
    federation: Federation,
) -> None:
    _register(federation, "BPS-1", JAN_BSN)
    proxy = await interpose(federation, TARGET)
    recorded: list[bytes] = []
    proxy.rewrite = _recording(EVALUATE_PATH, recorded)
    assert statuses(await federation.query("vh-test", [JAN_BSN]))[TARGET] == "hit"

    proxy.rewrite = _replaying(EVALUATE_PATH, recorded[0])
    politie = partner_result(await federation.query("vh-test", [JAN_BSN]), TARGET)
    assert (politie["status"], politie["reason"]) == ("invalid", "bad_binding")


async def test_captured_refusal_cannot_suppress_a_later_answer(federation: Federation) -> None:
    """A real, signed refusal from an earlier round does not make the partner look like
    it refused now."""
    _register(federation, "BPS-1", JAN_BSN)
    proxy = await interpose(federation, TARGET)
    recorded: list[bytes] = []
    proxy.rewrite = _recording(EVALUATE_PATH, recorded)
    refused = await federation.query("vh-test", [JAN_BSN], purpose=OTHER_PURPOSE)
    assert statuses(refused)[TARGET] == "refused"

    proxy.rewrite = _replaying(EVALUATE_PATH, recorded[0])
    politie = partner_result(await federation.query("vh-test", [JAN_BSN]), TARGET)
    assert (politie["status"], politie["reason"]) == ("invalid", "bad_binding")


async def test_old_tag_set_replayed_to_a_later_request_is_invalid(
    federation: Federation,
) -> None:
    """The freeze attack: PIET is added at politie-test after the first round; the old
    tag set (without him) played back would turn his hit into a no-hit."""
    _register(federation, "BPS-1", JAN_BSN)
    proxy = await interpose(federation, TARGET)
    recorded: list[bytes] = []
    proxy.rewrite = _recording(TAG_SET_PATH, recorded)
    assert statuses(await federation.query("vh-test", [JAN_BSN]))[TARGET] == "hit"
    assert len(recorded) == 1

    _register(federation, "BPS-2", PIET_BSN)  # a new tag-set version: the requester syncs
    proxy.rewrite = _replaying(TAG_SET_PATH, recorded[0])
    politie = partner_result(await federation.query("vh-test", [PIET_BSN]), TARGET)
    assert (politie["status"], politie["reason"]) == ("invalid", "bad_binding")

    proxy.rewrite = None
    assert statuses(await federation.query("vh-test", [PIET_BSN]))[TARGET] == "hit"


@pytest.mark.parametrize(
    "replay_to", ["politie-test", "vh-test"], ids=["other-requester", "same-requester"]
)
async def test_evaluation_for_one_request_cannot_answer_another(
    federation: Federation, replay_to: str
) -> None:
    """om-test's answer to vh-test is played back to the next requester's round."""
    federation.register(
        "om-test", {"ref": "C-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN]}
    )
    proxy = await interpose(federation, "om-test")
    recorded: list[bytes] = []
    proxy.rewrite = _recording(EVALUATE_PATH, recorded)
    assert statuses(await federation.query("vh-test", [JAN_BSN]))["om-test"] == "hit"

    proxy.rewrite = _replaying(EVALUATE_PATH, recorded[0])
    om = partner_result(await federation.query(replay_to, [JAN_BSN]), "om-test")
    assert (om["status"], om["reason"]) == ("invalid", "bad_binding")
