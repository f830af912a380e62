"""Cross-checking a peer's log: consistency proofs between signed tree heads (§9.4).

A node keeps the signed tree heads its peers send with every answer (§9.3). To check
that a peer has not rewritten, truncated or forked its log since, it asks for an RFC 9162
consistency proof from the largest head it holds to the peer's current head.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from node.protocol.bekendheid import PartnerAnswer
from node.protocol.fields import MAX_PROOF_HASHES, NodeId, Nonce, ReasonCode, ReasonDetail, Sha256
from node.protocol.models import Timestamp, WireInt, WireModel

CONSISTENCY_REQUEST_TYP = "vhnode-consistency-request/v1"
CONSISTENCY_RESPONSE_TYP = "vhnode-consistency-response/v1"

Verdict = Literal[
    "consistent",
    "inconsistent",
    "truncated",
    "forked",
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


class ConsistencyResponse(PartnerAnswer):
    issued_at: Timestamp
    outcome: Literal["proof", "refused"]
    reason: ReasonCode | None = None
    reason_detail: ReasonDetail | None = None
    from_size: WireInt = Field(ge=1)
    # Consistency proof from from_size to tree_head's size; null when from_size exceeds it.
    proof: tuple[Sha256, ...] | None = Field(None, max_length=MAX_PROOF_HASHES)

    @model_validator(mode="after")
    def _shape(self) -> ConsistencyResponse:
        if self.outcome == "refused" and (self.reason is None or self.proof is not None):
            raise ValueError("a refusal carries a reason and no proof")
        if self.outcome == "proof" and self.reason is not None:
            raise ValueError("a proof carries no reason")
        return self
