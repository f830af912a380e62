"""The held-head exchange (docs/protocol.md §9.7): "which is the newest head of mine you
hold?", asked by a node whose database was restored, before it signs anything new."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from node.protocol.bekendheid import PartnerAnswer
from node.protocol.fields import NodeId, Nonce, ReasonCode, ReasonDetail
from node.protocol.models import Timestamp, WireModel
from node.protocol.tree_head import SignedTreeHead

HELD_HEAD_REQUEST_TYP = "vhnode-held-head-request/v1"
HELD_HEAD_RESPONSE_TYP = "vhnode-held-head-response/v1"


class HeldHeadRequest(WireModel):
    requester: NodeId
    partner: NodeId
    nonce: Nonce
    issued_at: Timestamp


class _HeldHeadAnswer(PartnerAnswer):
    issued_at: Timestamp
    reason_detail: ReasonDetail | None = None


class HeldHeadAnswer(_HeldHeadAnswer):
    """``outcome`` ``"held"``: ``held`` is the requester's own signed tree head as the
    partner holds it — the newest (highest epoch, then largest size) — or null when it
    holds none. The requester verifies it under its own key."""

    outcome: Literal["held"] = "held"
    reason: None = None
    held: SignedTreeHead | None


class HeldHeadRefused(_HeldHeadAnswer):
    outcome: Literal["refused"] = "refused"
    reason: ReasonCode
    held: None = None


HeldHeadResponse = Annotated[HeldHeadAnswer | HeldHeadRefused, Field(discriminator="outcome")]
HELD_HEAD_RESPONSE: TypeAdapter[HeldHeadAnswer | HeldHeadRefused] = TypeAdapter(HeldHeadResponse)
