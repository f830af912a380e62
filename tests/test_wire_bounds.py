"""Every text field on the wire has one bound, and every answer a size limit.

The bounds live in ``node/protocol/fields.py``; each is checked here at its edge (the
bound is accepted, one more character is refused), then through the messages that use
it. Answers are bounded per message type before they are parsed
(``protocol/answer_size.py``): an answer over its bound makes the partner ``invalid``
while the requester has read no more than the bound — also when the partner never ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import nacl.signing
import pytest
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from node.errors import MalformedMessage
from node.flows.peer_client import PartnerFailure, post_signed
from node.protocol import answer_size, fields, jws
from node.protocol.bekendheid import (
    EVALUATE_RESPONSE,
    EVALUATE_RESPONSE_TYP,
    TAG_SET_RESPONSE,
    Evaluated,
    EvaluateRefused,
    TagSetRefused,
    TagSetServed,
)
from node.protocol.consistency import ConsistencyRefused
from node.protocol.detail import DetailRefused, HitNoticeRefused
from node.protocol.models import parse_model
from tests.federation import (
    EVALUATE_PATH,
    Federation,
    bound_socket,
    interpose,
    partner_result,
    statuses,
)

# (field type, longest accepted text, a character it accepts)
TEXT_BOUNDS: list[tuple[str, Any, int, str]] = [
    ("CaseRef", fields.CaseRef, fields.MAX_CASE_REF, "x"),
    ("UserName", fields.UserName, fields.MAX_USER_NAME, "x"),
    ("Organisation", fields.Organisation, fields.MAX_ORGANISATION, "x"),
    ("Title", fields.Title, fields.MAX_TITLE, "x"),
    ("Description", fields.Description, fields.MAX_DESCRIPTION, "x"),
    ("LegalBasis", fields.LegalBasis, fields.MAX_LEGAL_BASIS, "x"),
    ("ReasonCode", fields.ReasonCode, fields.MAX_REASON, "x"),
    ("ReasonDetail", fields.ReasonDetail, fields.MAX_REASON_DETAIL, "x"),
    ("RuleName", fields.RuleName, fields.MAX_RULE, "x"),
    ("WithdrawalReason", fields.WithdrawalReason, fields.MAX_WITHDRAWAL_REASON, "x"),
    ("DetailText", fields.DetailText, fields.MAX_DETAIL_TEXT, "x"),
    ("NodeId", fields.NodeId, 63, "a"),
    ("ConvenantId", fields.ConvenantId, 128, "a"),
    ("PurposeId", fields.PurposeId, 128, "a"),
    ("CategoryId", fields.CategoryId, 128, "a"),
    ("Theme", fields.Theme, 64, "a"),
    ("Nonce", fields.Nonce, 64, "A"),
    ("Element", fields.Element, 43, "A"),
    ("TagBlob", fields.TagBlob, fields.MAX_TAG_BLOB, "A"),
    ("Sealed", fields.Sealed, fields.MAX_SEALED, "A"),
]


@pytest.mark.parametrize(
    ("name", "kind", "bound", "char"), TEXT_BOUNDS, ids=[t[0] for t in TEXT_BOUNDS]
)
def test_a_field_takes_its_bound_and_not_one_character_more(
    name: str, kind: Any, bound: int, char: str
) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(kind)
    assert adapter.validate_python(char * bound) == char * bound
    with pytest.raises(ValidationError):
        adapter.validate_python(char * (bound + 1))


@pytest.mark.parametrize(
    ("name", "kind", "length"),
    [
        ("TraceId", fields.TraceId, 32),
        ("Sha256", fields.Sha256, 43),
        ("PublicKey", fields.PublicKey, 43),
        ("DleqProof", fields.DleqProof, 86),
        ("HitProof", fields.HitProof, 86),
        ("Fingerprint", fields.Fingerprint, 64),
    ],
    ids=["TraceId", "Sha256", "PublicKey", "DleqProof", "HitProof", "Fingerprint"],
)
def test_a_fixed_length_field_takes_exactly_its_length(name: str, kind: Any, length: int) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(kind)
    # "A": canonical base64url at any length (zero bits), and not hex, so "a" for hex.
    char = "a" if name in ("TraceId", "Fingerprint") else "A"
    adapter.validate_python(char * length)
    for wrong in (length - 1, length + 1):
        with pytest.raises(ValidationError):
            adapter.validate_python(char * wrong)


@pytest.mark.parametrize(
    ("name", "kind", "length"),
    [
        ("Element", fields.Element, 43),
        ("Sha256", fields.Sha256, 43),
        ("PublicKey", fields.PublicKey, 43),
        ("DleqProof", fields.DleqProof, 86),
        ("HitProof", fields.HitProof, 86),
    ],
    ids=["Element", "Sha256", "PublicKey", "DleqProof", "HitProof"],
)
def test_a_fixed_size_base64url_field_is_strict(name: str, kind: Any, length: int) -> None:
    # §2.4: strict B64U (§2.1) is syntax, checked when the message is parsed: unused
    # trailing bits that are not zero make the text no encoding of any bytes.
    adapter: TypeAdapter[str] = TypeAdapter(kind)
    with pytest.raises(ValidationError, match="non-canonical"):
        adapter.validate_python("A" * (length - 1) + "B")


def _refusal(model: type[Any], reason: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "partner": "politie-test",
        "requester": "vh-test",
        "request_hash": "A" * 43,
        "tree_head": {"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}]},
        "issued_at": "2026-03-02T10:00:00Z",
        "outcome": "refused",
        "reason": reason,
        "reason_detail": detail,
        **extra,
    }


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        (EvaluateRefused, {"trace_id": "0" * 32}),
        (TagSetRefused, {}),
        (ConsistencyRefused, {"from_size": 1}),
        (DetailRefused, {"trace_id": "0" * 32}),
        (HitNoticeRefused, {}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_every_answer_bounds_the_reason_the_requester_logs(
    model: type[Any], extra: dict[str, Any]
) -> None:
    """A partner's reason goes into the asking node's permanent log: 64 characters at most
    (once 5,000,000 were accepted in evaluate and tag-set answers)."""
    parse_model(model, _refusal(model, "r" * 64, "d" * 500, **extra))
    with pytest.raises(MalformedMessage):
        parse_model(model, _refusal(model, "r" * 65, "d", **extra))
    with pytest.raises(MalformedMessage):
        parse_model(model, _refusal(model, "r" * 5_000_000, "d", **extra))
    with pytest.raises(MalformedMessage):
        parse_model(model, _refusal(model, "r", "d" * 501, **extra))


def test_a_tree_head_is_a_bounded_jws_object() -> None:
    """The head every answer carries is a model, not any JSON object: one signature,
    bounded base64url members, nothing else."""
    good = _refusal(TagSetRefused, "r", "d")
    parse_model(TagSetRefused, good)
    for head in (
        {"payload": "e30" * 1400, "signatures": [{"protected": "e30", "signature": "AA"}]},
        {"payload": "e30", "signatures": []},
        {"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}] * 2},
        {"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}], "x": 1},
        {"payload": "e 0", "signatures": [{"protected": "e30", "signature": "AA"}]},
    ):
        with pytest.raises(MalformedMessage):
            parse_model(TagSetRefused, {**good, "tree_head": head})


HEAD = {"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}]}
TAG_SET_HEAD = {
    "convenant_id": "vh-test",
    "version": 1,
    "count": 0,
    "digest": "A" * 43,
    "oprf_public_key": "A" * 43,
    "oprf_epoch": 0,
    "oprf_epoch_ends_at": None,
    "oprf_overlap_hours": 168,
}


def test_an_answer_is_its_outcome_s_type_and_nothing_in_between() -> None:
    """Answers are discriminated unions: ``outcome`` picks the model, and each model
    admits only its own members (the other outcome's are present and null)."""
    evaluated = {
        **_refusal(EvaluateRefused, "x", "d", trace_id="0" * 32),
        "outcome": "evaluated",
        "reason": None,
        "evaluated_elements": ["A" * 43],
        "proof": "A" * 86,
        "tag_set": TAG_SET_HEAD,
    }
    assert type(EVALUATE_RESPONSE.validate_python(evaluated)) is Evaluated
    refused = _refusal(EvaluateRefused, "no_query_right", "d", trace_id="0" * 32)
    assert type(EVALUATE_RESPONSE.validate_python(refused)) is EvaluateRefused
    for bad in (
        {**evaluated, "reason": "no_query_right"},  # evaluated with a reason
        {**evaluated, "proof": None},  # evaluated without its proof
        {**refused, "reason": None},  # a refusal without a reason
        {**refused, "evaluated_elements": ["A" * 43]},  # a refusal with elements
        {**refused, "outcome": "maybe"},
    ):
        with pytest.raises(ValidationError):
            EVALUATE_RESPONSE.validate_python(bad)
    served = {
        **_refusal(TagSetRefused, "x", "d"),
        "outcome": "tag_set",
        "reason": None,
        "head": TAG_SET_HEAD,
        "base_version": 0,
        "added": "",
        "removed": "",
    }
    assert type(TAG_SET_RESPONSE.validate_python(served)) is TagSetServed
    with pytest.raises(ValidationError):
        TAG_SET_RESPONSE.validate_python({**served, "added": None})


def test_both_outcomes_carry_every_member_on_the_wire() -> None:
    """The wire form is unchanged by the split: a refusal still sends the evaluation's
    members as null, an evaluation the refusal's."""
    refused = EVALUATE_RESPONSE.validate_python(
        _refusal(EvaluateRefused, "no_query_right", "d", trace_id="0" * 32)
    )
    members = {
        "partner", "requester", "request_hash", "tree_head", "trace_id", "issued_at",
        "outcome", "reason", "reason_detail", "evaluated_elements", "proof", "tag_set",
    }  # fmt: skip
    assert set(refused.wire()) == members
    assert refused.wire()["tag_set"] is None


def test_answer_bounds_follow_what_was_asked() -> None:
    assert answer_size.evaluate_answer(1) < answer_size.evaluate_answer(64) < 1 << 20
    assert answer_size.tag_set_answer(1_000_000) < 64 * 1024 * 1024
    assert answer_size.HIT_NOTICE_ANSWER < answer_size.DETAIL_ANSWER < 16 * 1024 * 1024


# --- oversized answers -------------------------------------------------------------------------


class EndlessPartner:
    """A partner on 127.0.0.1 that answers with a body that never ends (chunked), or one
    that announces its large size; it counts what it managed to send."""

    def __init__(self, announce: int | None) -> None:
        self.announce = announce
        self.sent = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "application/jose+json"})
        if self.announce is not None:
            resp.content_length = self.announce
        await resp.prepare(request)
        chunk = b"A" * 65536
        with contextlib.suppress(ConnectionError, RuntimeError):
            while self.sent < 64 * 1024 * 1024:
                await resp.write(chunk)
                self.sent += len(chunk)
        return resp

    async def __aenter__(self) -> EndlessPartner:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = bound_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self.runner, sock).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.mark.parametrize("announce", [None, 512 * 1024 * 1024], ids=["chunked", "announced"])
async def test_an_oversized_answer_is_invalid_before_it_is_read_whole(
    announce: int | None,
) -> None:
    doc = jws.sign("vhnode-evaluate-request/v1", {"x": 1}, nacl.signing.SigningKey.generate())
    bound = answer_size.evaluate_answer(1)
    async with EndlessPartner(announce) as partner, aiohttp.ClientSession() as session:
        with pytest.raises(PartnerFailure) as failed:
            await asyncio.wait_for(
                post_signed(
                    session,
                    partner.url + EVALUATE_PATH,
                    doc,
                    EVALUATE_RESPONSE_TYP,
                    max_bytes=bound,
                ),
                10,
            )
        await asyncio.sleep(0.1)
        sent = partner.sent
    assert failed.value.status == "invalid"
    assert "larger than" in failed.value.detail
    # The requester stopped reading: the partner got far less than it tried to send
    # through (socket buffers hold a few MiB at most).
    assert sent < 16 * 1024 * 1024


async def test_a_partner_padding_its_evaluate_answer_is_invalid(federation: Federation) -> None:
    """A real round: politie-test's answer grows past the evaluate bound for one subject."""
    jan = {"kind": "bsn", "bsn": "123456782"}
    reg = {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [jan]}
    federation.register("politie-test", reg)
    proxy = await interpose(federation, "politie-test")

    def pad(path: str, body: bytes) -> bytes:
        return body + b" " * answer_size.evaluate_answer(1) if path == EVALUATE_PATH else body

    proxy.rewrite = pad
    result = await federation.query("vh-test", [jan])
    assert statuses(result)["politie-test"] == "invalid"
    assert "larger than" in partner_result(result, "politie-test")["detail"]
    assert statuses(result)["om-test"] == "no_hit"


def test_byte_fields_are_bytes_after_parsing_and_the_same_text_on_the_wire() -> None:
    """Base64url members of answers parse strictly into bytes (no padding, canonical, the
    right length) and are written back as the very text they came from."""
    adapter: TypeAdapter[bytes] = TypeAdapter(fields.Bytes32)
    text = jws.b64u_encode(bytes(range(32)))
    assert adapter.validate_python(text) == bytes(range(32))
    assert adapter.dump_python(bytes(range(32))) == text
    for bad in (text + "=", text[:-1] + "B", text[:-1], "!" * 43, 32):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)
    served = {
        **_refusal(TagSetRefused, "x", "d"),
        "outcome": "tag_set",
        "reason": None,
        "head": TAG_SET_HEAD,
        "base_version": 0,
        "added": jws.b64u_encode(b"\x01" * 32),
        "removed": "",
    }
    resp = TAG_SET_RESPONSE.validate_python(served)
    assert isinstance(resp, TagSetServed)
    assert resp.added == b"\x01" * 32
    assert resp.head.digest == b"\x00" * 32
    assert resp.wire()["added"] == served["added"]
    assert resp.wire()["head"] == TAG_SET_HEAD
