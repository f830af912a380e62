"""Bekendheid messages: evaluation and tag-set exchange (docs/protocol.md §6).

Requests are signed by the requester, responses by the partner; a response names the
SHA-256 of the request payload it answers (``request_hash``), so it cannot be replayed
against another request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from node.protocol.convenant import ID_PATTERN
from node.protocol.models import NODE_ID_PATTERN, Timestamp, WireInt, WireModel

EVALUATE_REQUEST_TYP = "vhnode-evaluate-request/v1"
EVALUATE_RESPONSE_TYP = "vhnode-evaluate-response/v1"
TAG_SET_REQUEST_TYP = "vhnode-tag-set-request/v1"
TAG_SET_RESPONSE_TYP = "vhnode-tag-set-response/v1"

B64U = r"^[A-Za-z0-9_-]*$"
ELEMENT = r"^[A-Za-z0-9_-]{43}$"  # 32-byte group element
NONCE = r"^[A-Za-z0-9_-]{22,64}$"  # at least 16 random bytes
HASH = r"^[A-Za-z0-9_-]{43}$"  # 32-byte SHA-256

Status = Literal["hit", "no_hit", "refused", "unreachable", "timeout", "invalid"]
STATUSES: tuple[Status, ...] = ("hit", "no_hit", "refused", "unreachable", "timeout", "invalid")


class EvaluateRequest(WireModel):
    """§6.2: the requester's blinded elements for one partner."""

    requester: str = Field(pattern=NODE_ID_PATTERN)
    partner: str = Field(pattern=NODE_ID_PATTERN)
    convenant_id: str = Field(pattern=ID_PATTERN)
    convenant_version: WireInt = Field(ge=1)
    purpose: str = Field(pattern=ID_PATTERN)
    case_ref: str = Field(min_length=1, max_length=128)
    requesting_user: str = Field(min_length=1, max_length=128)
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    nonce: str = Field(pattern=NONCE)
    issued_at: Timestamp
    blinded_elements: tuple[str, ...] = Field(min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _elements(self) -> EvaluateRequest:
        for e in self.blinded_elements:
            if len(e) != 43:
                raise ValueError("blinded element must be 32 bytes base64url")
        return self


class TagSetHead(WireModel):
    """§6.4: what a partner commits to about one version of its tag set."""

    convenant_id: str = Field(pattern=ID_PATTERN)
    version: WireInt = Field(ge=0)
    count: WireInt = Field(ge=0)
    digest: str = Field(pattern=HASH)
    oprf_public_key: str = Field(pattern=ELEMENT)


class PartnerAnswer(WireModel):
    """What every signed answer of a partner carries (§6.3, §6.5, §9.4, §14): who answers
    whom, the SHA-256 of the request payload it answers, and the partner's newest signed
    tree head (§9.3, a JWS). The receiver checks all four the same way
    (``client.signed_exchange``)."""

    partner: str = Field(pattern=NODE_ID_PATTERN)
    requester: str = Field(pattern=NODE_ID_PATTERN)
    request_hash: str = Field(pattern=HASH)
    tree_head: dict[str, Any]


class EvaluateResponse(PartnerAnswer):
    """§6.3: evaluated elements with a batched DLEQ proof, or a refusal."""

    trace_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    issued_at: Timestamp
    outcome: Literal["evaluated", "refused"]
    reason: str | None = None
    reason_detail: str | None = Field(None, max_length=500)
    evaluated_elements: tuple[str, ...] | None = None
    proof: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{86}$")
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

    requester: str = Field(pattern=NODE_ID_PATTERN)
    partner: str = Field(pattern=NODE_ID_PATTERN)
    convenant_id: str = Field(pattern=ID_PATTERN)
    convenant_version: WireInt = Field(ge=1)
    since_version: WireInt = Field(ge=0)
    nonce: str = Field(pattern=NONCE)
    issued_at: Timestamp


class TagSetResponse(PartnerAnswer):
    """§6.5: the tags, as one base64url blob of sorted 16-byte tags each for added/removed."""

    issued_at: Timestamp
    outcome: Literal["tag_set", "refused"]
    reason: str | None = None
    reason_detail: str | None = Field(None, max_length=500)
    head: TagSetHead | None = None
    base_version: WireInt | None = Field(None, ge=0)
    added: str | None = Field(None, pattern=B64U)
    removed: str | None = Field(None, pattern=B64U)

    @model_validator(mode="after")
    def _shape(self) -> TagSetResponse:
        body = (self.head, self.base_version, self.added, self.removed)
        if self.outcome == "tag_set":
            if any(x is None for x in body) or self.reason is not None:
                raise ValueError("a tag_set response needs head, base_version, added, removed")
        elif self.reason is None or any(x is not None for x in body):
            raise ValueError("a refusal carries a reason and no tags")
        return self
