"""Cross-checking a peer's log: consistency proofs between signed tree heads (§9.4).

A node keeps the signed tree heads its peers send with every answer (§9.3). To check
that a peer has not rewritten, truncated or forked its log since, it asks for an RFC 9162
consistency proof from the largest head it holds to the peer's current head.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from node.protocol.bekendheid import NONCE, PartnerAnswer
from node.protocol.models import NODE_ID_PATTERN, Timestamp, WireInt, WireModel

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
    requester: str = Field(pattern=NODE_ID_PATTERN)
    partner: str = Field(pattern=NODE_ID_PATTERN)
    from_size: WireInt = Field(ge=1)
    nonce: str = Field(pattern=NONCE)
    issued_at: Timestamp


class ConsistencyResponse(PartnerAnswer):
    issued_at: Timestamp
    outcome: Literal["proof", "refused"]
    reason: str | None = None
    reason_detail: str | None = Field(None, max_length=500)
    from_size: WireInt = Field(ge=1)
    # Consistency proof from from_size to tree_head's size; null when from_size exceeds it.
    proof: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ConsistencyResponse:
        if self.outcome == "refused" and (self.reason is None or self.proof is not None):
            raise ValueError("a refusal carries a reason and no proof")
        if self.outcome == "proof" and self.reason is not None:
            raise ValueError("a proof carries no reason")
        for p in self.proof or ():
            if len(p) != 43:
                raise ValueError("proof hashes are 32 bytes base64url")
        return self
