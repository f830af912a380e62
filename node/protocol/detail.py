"""Detail exchange messages and payload sealing (docs/protocol.md §14).

Requests, polls and notices are signed by their sender; responses name the SHA-256 of
the payload they answer (``request_hash``). The detail texts themselves never appear in
a signed payload in the clear: they travel in ``sealed``, a libsodium sealed box to the
requester's X25519 key (§14.4), so only the requester can read them.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import nacl.exceptions
import nacl.public
import rfc8785
from pydantic import Field, TypeAdapter, model_validator

from node.errors import MalformedMessage
from node.protocol import jws
from node.protocol.bekendheid import PartnerAnswer
from node.protocol.convenant import RecipientRole
from node.protocol.fields import (
    MAX_CATEGORIES,
    MAX_DETAIL_TEXT,
    MAX_ENTRIES_PER_CATEGORY,
    MAX_HIT_PROOFS,
    PROOF_PATTERN,
    SHA256_PATTERN,
    TRACE_ID_PATTERN,
    CaseRef,
    CategoryId,
    ConvenantId,
    DetailText,
    HitProof,
    NodeId,
    Nonce,
    PurposeId,
    ReasonCode,
    ReasonDetail,
    RuleName,
    SealedBytes,
    TraceId,
    UserName,
)
from node.protocol.models import Timestamp, WireInt, WireModel, parse_model

DETAIL_REQUEST_TYP = "vhnode-detail-request/v1"
DETAIL_RESPONSE_TYP = "vhnode-detail-response/v1"
DETAIL_POLL_TYP = "vhnode-detail-poll/v1"
DETAIL_NOTICE_TYP = "vhnode-detail-notice/v1"
HIT_NOTICE_TYP = "vhnode-hit-notice/v1"
HIT_NOTICE_RESPONSE_TYP = "vhnode-hit-notice-response/v1"

DETAIL_PATH = "/peer/v1/detail"
DETAIL_POLL_PATH = "/peer/v1/detail/poll"
DETAIL_NOTICE_PATH = "/peer/v1/detail/notice"
HIT_NOTICE_PATH = "/peer/v1/hit-notice"

TRACE_ID = TRACE_ID_PATTERN
HASH = SHA256_PATTERN
HIT_PROOF = PROOF_PATTERN  # the 64-byte OPRF output (§14.1)
HIT_PROOF_BYTES = 64
MAX_ENTRY_CHARS = MAX_DETAIL_TEXT
__all__ = ["MAX_CATEGORIES", "MAX_HIT_PROOFS"]
PAYLOAD_TYPE: Literal["vhnode.detail-payload"] = "vhnode.detail-payload"

CategoryStatus = Literal["delivered", "denied", "pending", "unavailable"]
CATEGORY_STATUSES: tuple[CategoryStatus, ...] = ("delivered", "denied", "pending", "unavailable")
# Rules a liaison's decision names (§14.7), beside the §7.4 rule names.
LIAISON_APPROVED = "liaison-approved"
LIAISON_DENIED = "liaison-denied"
DENIED_BY_LIAISON = "denied_by_liaison"
# Reasons of ``unavailable`` (§14.3 step 8).
NO_DETAIL_ON_RECORD = "no_detail_on_record"
SOURCE_UNAVAILABLE = "source_unavailable"
SOURCE_TOO_LARGE = "source_too_large"


def _unique(values: tuple[str, ...], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"a {what} is listed twice")


class DetailRequest(WireModel):
    """§14.2: detail of one subject a bekendheid round found at ``partner``."""

    requester: NodeId
    partner: NodeId
    convenant_id: ConvenantId
    convenant_version: WireInt = Field(ge=1)
    purpose: PurposeId
    case_ref: CaseRef
    requesting_user: UserName
    requesting_role: RecipientRole
    trace_id: TraceId
    round_trace_id: TraceId
    hit_proof: HitProof
    categories: tuple[CategoryId, ...] = Field(min_length=1, max_length=MAX_CATEGORIES)
    nonce: Nonce
    issued_at: Timestamp

    @model_validator(mode="after")
    def _categories(self) -> DetailRequest:
        _unique(self.categories, "category")
        return self


class CategoryAnswer(WireModel):
    """§14.3.1: the state of one category asked."""

    category: CategoryId
    status: CategoryStatus
    rule: RuleName
    reason: ReasonCode | None = None
    reason_detail: ReasonDetail | None = None
    retain_until: Timestamp | None = None
    recipient_roles: tuple[RecipientRole, ...] | None = None

    @model_validator(mode="after")
    def _shape(self) -> CategoryAnswer:
        delivered = self.status == "delivered"
        if delivered != (self.retain_until is not None and bool(self.recipient_roles)):
            raise ValueError("retain_until and recipient_roles go with status delivered only")
        if (self.status in ("denied", "unavailable")) != (self.reason is not None):
            raise ValueError("a reason goes with status denied or unavailable only")
        return self


class _DetailAnswer(PartnerAnswer):
    trace_id: TraceId
    issued_at: Timestamp
    reason_detail: ReasonDetail | None = None


class DetailAnswered(_DetailAnswer):
    """§14.3.1, ``outcome`` ``"answered"``: every category's state, and ``sealed`` iff a
    category is delivered and still to be retained."""

    outcome: Literal["answered"] = "answered"
    reason: None = None
    categories: tuple[CategoryAnswer, ...] = Field(max_length=MAX_CATEGORIES)
    sealed: SealedBytes | None = None

    @model_validator(mode="after")
    def _shape(self) -> DetailAnswered:
        _unique(tuple(c.category for c in self.categories), "category")
        if bool(self.delivered()) != (self.sealed is not None):
            raise ValueError("sealed is present iff a category is delivered and retained")
        return self

    def delivered(self) -> tuple[str, ...]:
        """The categories ``sealed`` carries: delivered and still to be retained (§14.5).

        A category delivered earlier whose ``retain_until`` has passed is reported
        ``delivered`` without its text: the recipient has deleted it by then.
        """
        return tuple(
            c.category
            for c in self.categories
            if c.status == "delivered"
            and c.retain_until is not None
            and c.retain_until > self.issued_at
        )


class DetailRefused(_DetailAnswer):
    """§14.3.1, ``outcome`` ``"refused"``: the whole request or poll, with a reason."""

    outcome: Literal["refused"] = "refused"
    reason: ReasonCode
    categories: None = None
    sealed: None = None


DetailResponse = Annotated[DetailAnswered | DetailRefused, Field(discriminator="outcome")]
"""§14.3.1: the answer to a detail request or a poll, or its refusal."""
DETAIL_RESPONSE: TypeAdapter[DetailAnswered | DetailRefused] = TypeAdapter(DetailResponse)


class DetailPoll(WireModel):
    """§14.5: the requester asks for the current state of its detail request."""

    requester: NodeId
    partner: NodeId
    trace_id: TraceId
    nonce: Nonce
    issued_at: Timestamp


class DetailNotice(WireModel):
    """§14.6: the partner tells the requester a liaison decided; it carries no data."""

    partner: NodeId
    requester: NodeId
    trace_id: TraceId
    nonce: Nonce
    issued_at: Timestamp


class HitNotice(WireModel):
    """§14.9: the requester tells a partner whose rules ask for it that it had hits."""

    requester: NodeId
    partner: NodeId
    convenant_id: ConvenantId
    convenant_version: WireInt = Field(ge=1)
    purpose: PurposeId
    case_ref: CaseRef
    requesting_user: UserName
    round_trace_id: TraceId
    hit_proofs: tuple[HitProof, ...] = Field(min_length=1, max_length=MAX_HIT_PROOFS)
    nonce: Nonce
    issued_at: Timestamp

    @model_validator(mode="after")
    def _proofs(self) -> HitNotice:
        _unique(self.hit_proofs, "hit proof")
        return self


class _HitNoticeAnswer(PartnerAnswer):
    issued_at: Timestamp
    reason_detail: ReasonDetail | None = None


class HitNoticeAccepted(_HitNoticeAnswer):
    """§14.9, ``outcome`` ``"accepted"``: how many subjects went into the inbox."""

    outcome: Literal["accepted"] = "accepted"
    reason: None = None
    noticed: WireInt = Field(ge=0)


class HitNoticeRefused(_HitNoticeAnswer):
    outcome: Literal["refused"] = "refused"
    reason: ReasonCode
    noticed: None = None


HitNoticeResponse = Annotated[HitNoticeAccepted | HitNoticeRefused, Field(discriminator="outcome")]
"""§14.9: the partner's signed acknowledgement of a hit notice, or its refusal."""
HIT_NOTICE_RESPONSE: TypeAdapter[HitNoticeAccepted | HitNoticeRefused] = TypeAdapter(
    HitNoticeResponse
)


# --- the sealed payload (§14.4) ---------------------------------------------------------


class DetailEntries(WireModel):
    category: CategoryId
    entries: tuple[DetailText, ...] = Field(min_length=1, max_length=MAX_ENTRIES_PER_CATEGORY)


class DetailPayload(WireModel):
    type: Literal["vhnode.detail-payload"] = PAYLOAD_TYPE
    trace_id: TraceId
    partner: NodeId
    requester: NodeId
    details: tuple[DetailEntries, ...] = Field(min_length=1, max_length=MAX_CATEGORIES)


def seal(payload: DetailPayload, recipient_public_key: bytes) -> str:
    """``crypto_box_seal`` of the payload's canonical JSON, B64U (§14.4)."""
    box = nacl.public.SealedBox(nacl.public.PublicKey(recipient_public_key))
    return jws.b64u_encode(box.encrypt(rfc8785.dumps(payload.wire())))


def open_sealed(
    sealed: bytes, private_key: nacl.public.PrivateKey, resp: DetailAnswered
) -> DetailPayload:
    """Open ``sealed`` and check it belongs to ``resp`` (§14.4); MalformedMessage if not."""
    try:
        plain = nacl.public.SealedBox(private_key).decrypt(sealed)
    except (nacl.exceptions.CryptoError, ValueError) as e:
        raise MalformedMessage("sealed payload does not open with this node's key") from e
    try:
        data = json.loads(plain)
    except ValueError as e:
        raise MalformedMessage("sealed payload is not JSON") from e
    payload = parse_model(DetailPayload, data)
    if (payload.trace_id, payload.partner, payload.requester) != (
        resp.trace_id,
        resp.partner,
        resp.requester,
    ):
        raise MalformedMessage("sealed payload belongs to another exchange")
    if tuple(d.category for d in payload.details) != resp.delivered():
        raise MalformedMessage("sealed payload's categories are not the delivered ones")
    return payload
