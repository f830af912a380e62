"""Bekendheid messages: evaluation and tag-set exchange (docs/protocol.md §6).

Requests are signed by the requester, responses by the partner; a response names the
SHA-256 of the request payload it answers (``request_hash``), so it cannot be replayed
against another request.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from node.protocol.fields import (
    B64U_PATTERN,
    ELEMENT_PATTERN,
    MAX_ELEMENTS,
    NONCE_PATTERN,
    SHA256_PATTERN,
    CaseRef,
    ConvenantId,
    DleqProof,
    Element,
    NodeId,
    Nonce,
    PublicKey,
    PurposeId,
    ReasonCode,
    ReasonDetail,
    Sha256,
    TagBlob,
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


class TagSetHead(WireModel):
    """§6.4: what a partner commits to about one version of its tag set."""

    convenant_id: ConvenantId
    version: WireInt = Field(ge=0)
    count: WireInt = Field(ge=0)
    digest: Sha256
    oprf_public_key: PublicKey


class PartnerAnswer(WireModel):
    """What every signed answer of a partner carries (§6.3, §6.5, §9.4, §14): who answers
    whom, the SHA-256 of the request payload it answers, and the partner's newest signed
    tree head (§9.3, a JWS). The receiver checks all four the same way
    (``client.signed_exchange``)."""

    partner: NodeId
    requester: NodeId
    request_hash: Sha256
    tree_head: SignedTreeHead


class EvaluateResponse(PartnerAnswer):
    """§6.3: evaluated elements with a batched DLEQ proof, or a refusal."""

    trace_id: TraceId | None = None
    issued_at: Timestamp
    outcome: Literal["evaluated", "refused"]
    reason: ReasonCode | None = None
    reason_detail: ReasonDetail | None = None
    evaluated_elements: tuple[Element, ...] | None = Field(None, max_length=MAX_ELEMENTS)
    proof: DleqProof | None = None
    tag_set: TagSetHead | None = None

    @model_validator(mode="after")
    def _shape(self) -> EvaluateResponse:
        evaluated = (self.evaluated_elements, self.proof, self.tag_set)
        if self.outcome == "evaluated":
            if any(x is None for x in evaluated) or self.reason is not None:
                raise ValueError("an evaluated response needs elements, proof and tag_set")
        elif self.reason is None or any(x is not None for x in evaluated):
            raise ValueError("a refusal carries a reason and no evaluation")
        return self


class TagSetRequest(WireModel):
    """§6.5: ask for a partner's tag set, in full or as a delta since a known version."""

    requester: NodeId
    partner: NodeId
    convenant_id: ConvenantId
    convenant_version: WireInt = Field(ge=1)
    since_version: WireInt = Field(ge=0)
    nonce: Nonce
    issued_at: Timestamp


class TagSetResponse(PartnerAnswer):
    """§6.5: the tags, as one base64url blob of sorted 16-byte tags each for added/removed."""

    issued_at: Timestamp
    outcome: Literal["tag_set", "refused"]
    reason: ReasonCode | None = None
    reason_detail: ReasonDetail | None = None
    head: TagSetHead | None = None
    base_version: WireInt | None = Field(None, ge=0)
    added: TagBlob | None = None
    removed: TagBlob | None = None

    @model_validator(mode="after")
    def _shape(self) -> TagSetResponse:
        body = (self.head, self.base_version, self.added, self.removed)
        if self.outcome == "tag_set":
            if any(x is None for x in body) or self.reason is not None:
                raise ValueError("a tag_set response needs head, base_version, added, removed")
        elif self.reason is None or any(x is not None for x in body):
            raise ValueError("a refusal carries a reason and no tags")
        return self
