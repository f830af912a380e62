"""Bekendheid messages: evaluation and tag-set exchange (docs/protocol.md §6).

Requests are signed by the requester, responses by the partner; a response names the
SHA-256 of the request payload it answers (``request_hash``), so it cannot be replayed
against another request.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, TypeAdapter, model_validator

from node.errors import UNAUTHENTICATED_CODES
from node.protocol.fields import (
    B64U_PATTERN,
    ELEMENT_PATTERN,
    MAX_ELEMENTS,
    NONCE_PATTERN,
    SHA256_PATTERN,
    Bytes32,
    Bytes64,
    CaseRef,
    ConvenantId,
    Element,
    NodeId,
    Nonce,
    PurposeId,
    ReasonCode,
    ReasonDetail,
    TagBytes,
    TraceId,
    UserName,
)
from node.protocol.models import Timestamp, WireInt, WireModel
from node.protocol.tree_head import SignedTreeHead

EVALUATE_REQUEST_TYP = "vhnode-evaluate-request/v1"
EVALUATE_RESPONSE_TYP = "vhnode-evaluate-response/v1"
TAG_SET_REQUEST_TYP = "vhnode-tag-set-request/v1"
TAG_SET_RESPONSE_TYP = "vhnode-tag-set-response/v1"

# Kept for the modules that name the patterns; the bounds live in node.protocol.fields.
B64U = B64U_PATTERN
ELEMENT = ELEMENT_PATTERN
NONCE = NONCE_PATTERN
HASH = SHA256_PATTERN

RequesterHead = SignedTreeHead | None
"""§9.5: the requester's signed tree head, carried by a request so that every partner it
asks is a witness of its log. Optional: a request without it (from a node of an earlier
revision) is answered as before, and the partner keeps nothing."""

Status = Literal["hit", "no_hit", "refused", "unreachable", "timeout", "invalid"]
STATUSES: tuple[Status, ...] = ("hit", "no_hit", "refused", "unreachable", "timeout", "invalid")


class EvaluateRequest(WireModel):
    """§6.2: the requester's blinded elements for one partner."""

    requester: NodeId
    partner: NodeId
    convenant_id: ConvenantId
    convenant_version: WireInt = Field(ge=1)
    purpose: PurposeId
    case_ref: CaseRef
    requesting_user: UserName
    trace_id: TraceId
    nonce: Nonce
    issued_at: Timestamp
    blinded_elements: tuple[Element, ...] = Field(min_length=1, max_length=MAX_ELEMENTS)
    tree_head: RequesterHead = None


class TagSetHead(WireModel):
    """§6.4: what a partner commits to about one version of its tag set, and the OPRF key
    epoch it is published under (§6.1.1): its number, its key, when the schedule ends it
    and how long after that hit proofs made under it are still honoured."""

    convenant_id: ConvenantId
    version: WireInt = Field(ge=0)
    count: WireInt = Field(ge=0)
    digest: Bytes32
    oprf_public_key: Bytes32
    oprf_epoch: WireInt = Field(ge=0)
    oprf_epoch_ends_at: Timestamp | None
    oprf_overlap_hours: WireInt = Field(ge=0)


class PartnerAnswer(WireModel):
    """What every signed answer of a partner carries (§6.3, §6.5, §9.4, §14): who answers
    whom, the SHA-256 of the request payload it answers, and the partner's newest signed
    tree head (§9.3, a JWS). The receiver checks all four the same way
    (``protocol/answers.py`` ``verify_answer``).

    The head is null in a refusal at §6.6 steps 3–6 only: its sender has not shown it is
    the peer it names, and a head tells how busy this node is (§9.3)."""

    partner: NodeId
    requester: NodeId
    request_hash: Bytes32
    tree_head: SignedTreeHead | None

    @model_validator(mode="after")
    def _head_unless_unauthenticated(self) -> Self:
        if self.tree_head is None and not (
            getattr(self, "outcome", None) == "refused"
            and getattr(self, "reason", None) in UNAUTHENTICATED_CODES
        ):
            raise ValueError(
                "tree_head may be null only in a refusal of an unauthenticated request"
            )
        return self


class _EvaluateAnswer(PartnerAnswer):
    trace_id: TraceId | None = None
    issued_at: Timestamp
    reason_detail: ReasonDetail | None = None


class Evaluated(_EvaluateAnswer):
    """§6.3, ``outcome`` ``"evaluated"``: the evaluated elements, one batched DLEQ proof
    and the tag-set head they belong to. The refusal's members are present and null."""

    outcome: Literal["evaluated"] = "evaluated"
    reason: None = None
    evaluated_elements: tuple[Bytes32, ...] = Field(max_length=MAX_ELEMENTS)
    proof: Bytes64
    tag_set: TagSetHead


class EvaluateRefused(_EvaluateAnswer):
    """§6.3, ``outcome`` ``"refused"``: a reason code (§8.2); no evaluation."""

    outcome: Literal["refused"] = "refused"
    reason: ReasonCode
    evaluated_elements: None = None
    proof: None = None
    tag_set: None = None


EvaluateResponse = Annotated[Evaluated | EvaluateRefused, Field(discriminator="outcome")]
"""§6.3: an evaluation or a refusal, told apart by ``outcome``."""
EVALUATE_RESPONSE: TypeAdapter[Evaluated | EvaluateRefused] = TypeAdapter(EvaluateResponse)


class TagSetRequest(WireModel):
    """§6.5: ask for a partner's tag set, in full or as a delta since a known version."""

    requester: NodeId
    partner: NodeId
    convenant_id: ConvenantId
    convenant_version: WireInt = Field(ge=1)
    since_version: WireInt = Field(ge=0)
    nonce: Nonce
    issued_at: Timestamp
    tree_head: RequesterHead = None


class _TagSetAnswer(PartnerAnswer):
    issued_at: Timestamp
    reason_detail: ReasonDetail | None = None


class TagSetServed(_TagSetAnswer):
    """§6.5, ``outcome`` ``"tag_set"``: the tags, as one base64url blob of sorted 16-byte
    tags each for added and removed, from ``base_version`` to ``head``."""

    outcome: Literal["tag_set"] = "tag_set"
    reason: None = None
    head: TagSetHead
    base_version: WireInt = Field(ge=0)
    added: TagBytes
    removed: TagBytes


class TagSetRefused(_TagSetAnswer):
    """§6.5, ``outcome`` ``"refused"``: a reason code; no tags."""

    outcome: Literal["refused"] = "refused"
    reason: ReasonCode
    head: None = None
    base_version: None = None
    added: None = None
    removed: None = None


TagSetResponse = Annotated[TagSetServed | TagSetRefused, Field(discriminator="outcome")]
"""§6.5: a tag set (full or delta) or a refusal, told apart by ``outcome``."""
TAG_SET_RESPONSE: TypeAdapter[TagSetServed | TagSetRefused] = TypeAdapter(TagSetResponse)
