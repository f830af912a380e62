"""Cross-checking a peer's log: consistency proofs between signed tree heads (§9.4).

A node keeps the signed tree heads its peers send with every answer (§9.3). To check
that a peer has not rewritten, truncated or forked its log since, it asks for an RFC 9162
consistency proof from the largest head it holds to the peer's current head.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from node.protocol.bekendheid import PartnerAnswer, RequesterHead
from node.protocol.fields import (
    MAX_PROOF_HASHES,
    Bytes32,
    NodeId,
    Nonce,
    ReasonCode,
    ReasonDetail,
)
from node.protocol.models import Timestamp, WireInt, WireModel

CONSISTENCY_REQUEST_TYP = "vhnode-consistency-request/v1"
CONSISTENCY_RESPONSE_TYP = "vhnode-consistency-response/v1"

Verdict = Literal[
    "consistent",
    "inconsistent",
    "truncated",
    "forked",
    "restored",
    "no_heads",
    "refused",
    "unreachable",
    "timeout",
    "invalid",
]


class ConsistencyRequest(WireModel):
    requester: NodeId
    partner: NodeId
    from_size: WireInt = Field(ge=1)
    nonce: Nonce
    issued_at: Timestamp
    tree_head: RequesterHead = None  # §9.5: the checker's own head, for the checked peer


class _ConsistencyAnswer(PartnerAnswer):
    issued_at: Timestamp
    reason_detail: ReasonDetail | None = None
    from_size: WireInt = Field(ge=1)


class ConsistencyProof(_ConsistencyAnswer):
    """``outcome`` ``"proof"``: the proof from ``from_size`` to the tree head's size;
    null when ``from_size`` exceeds it (the requester then sees the cut)."""

    outcome: Literal["proof"] = "proof"
    reason: None = None
    proof: tuple[Bytes32, ...] | None = Field(None, max_length=MAX_PROOF_HASHES)


class ConsistencyRefused(_ConsistencyAnswer):
    outcome: Literal["refused"] = "refused"
    reason: ReasonCode
    proof: None = None


ConsistencyResponse = Annotated[
    ConsistencyProof | ConsistencyRefused, Field(discriminator="outcome")
]
CONSISTENCY_RESPONSE: TypeAdapter[ConsistencyProof | ConsistencyRefused] = TypeAdapter(
    ConsistencyResponse
)
