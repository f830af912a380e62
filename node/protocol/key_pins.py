"""Comparing pinned OPRF keys between requesters (docs/protocol.md §9.6).

A partner has one OPRF key per convenant and key epoch (§6.1.1). A requester pins the
key each partner evaluated with, per epoch (§6.8 step 4a); two requesters that compare
their pins find a partner that showed them different keys — which would let it give
each requester a set of its own, or recognise whose tags a leaked output is.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from node.protocol.bekendheid import PartnerAnswer
from node.protocol.fields import Bytes32, ConvenantId, NodeId, Nonce, ReasonCode, ReasonDetail
from node.protocol.models import Timestamp, WireInt, WireModel

KEY_PINS_REQUEST_TYP = "vhnode-key-pins-request/v1"
KEY_PINS_RESPONSE_TYP = "vhnode-key-pins-response/v1"
MAX_PINS = 1024
"""Pins per message: a federation has tens of partners, each a key per convenant for
the epochs a requester has seen."""


class KeyPin(WireModel):
    """The OPRF public key ``node`` showed for ``convenant_id`` in key epoch ``epoch``."""

    node: NodeId
    convenant_id: ConvenantId
    epoch: WireInt = Field(ge=0)
    oprf_public_key: Bytes32


class KeyPinsRequest(WireModel):
    requester: NodeId
    partner: NodeId
    nonce: Nonce
    issued_at: Timestamp
    pins: tuple[KeyPin, ...] = Field(max_length=MAX_PINS)


class _KeyPinsAnswer(PartnerAnswer):
    issued_at: Timestamp
    reason_detail: ReasonDetail | None = None


class KeyPinsCompared(_KeyPinsAnswer):
    """``outcome`` ``"pins"``: the answerer's own pins for the (node, convenant, epoch)
    the request named, where it holds one."""

    outcome: Literal["pins"] = "pins"
    reason: None = None
    pins: tuple[KeyPin, ...] = Field(max_length=MAX_PINS)


class KeyPinsRefused(_KeyPinsAnswer):
    outcome: Literal["refused"] = "refused"
    reason: ReasonCode
    pins: None = None


KeyPinsResponse = Annotated[KeyPinsCompared | KeyPinsRefused, Field(discriminator="outcome")]
KEY_PINS_RESPONSE: TypeAdapter[KeyPinsCompared | KeyPinsRefused] = TypeAdapter(KeyPinsResponse)
