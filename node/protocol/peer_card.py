"""Peer card: a node's self-signed identity document (docs/protocol.md §4)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import nacl.signing
from pydantic import AnyHttpUrl, model_validator

from node.errors import ExpiredDocument
from node.protocol import jws
from node.protocol.fields import ELEMENT_PATTERN, EndpointUrl, NodeId, Organisation, PublicKey
from node.protocol.models import OrgType, Timestamp, WireModel, parse_model

PEER_CARD_TYP = "vhnode-peer-card/v1"
jws.remember_verifications(PEER_CARD_TYP)
KEY_PATTERN = ELEMENT_PATTERN  # 32 bytes, unpadded base64url


class PeerCard(WireModel):
    type: Literal["vhnode.peer-card"] = "vhnode.peer-card"
    node_id: NodeId
    organisation: Organisation
    org_type: OrgType
    endpoint: EndpointUrl
    signing_key: PublicKey
    encryption_key: PublicKey
    valid_from: Timestamp
    valid_until: Timestamp
    issued_at: Timestamp

    @property
    def signing_key_bytes(self) -> bytes:
        return jws.b64u_decode(self.signing_key)

    @property
    def encryption_key_bytes(self) -> bytes:
        return jws.b64u_decode(self.encryption_key)

    @property
    def signing_fingerprint(self) -> str:
        return jws.fingerprint(self.signing_key_bytes)

    @property
    def encryption_fingerprint(self) -> str:
        return jws.fingerprint(self.encryption_key_bytes)

    @property
    def endpoint_url(self) -> str:
        return str(self.endpoint).rstrip("/")

    @model_validator(mode="after")
    def _window(self) -> PeerCard:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now < self.valid_until

    def wire(self) -> dict[str, Any]:
        out = super().wire()
        out["endpoint"] = self.endpoint_url
        return out


def issue_card(
    *,
    node_id: str,
    organisation: str,
    org_type: OrgType,
    endpoint: AnyHttpUrl,
    signing_key: nacl.signing.SigningKey,
    encryption_public: bytes,
    validity: timedelta,
    now: datetime,
) -> jws.SignedDocument:
    """A self-signed peer card (§3) valid from ``now`` for ``validity``."""
    card = PeerCard(
        node_id=node_id,
        organisation=organisation,
        org_type=org_type,
        endpoint=endpoint,
        signing_key=jws.b64u_encode(bytes(signing_key.verify_key)),
        encryption_key=jws.b64u_encode(encryption_public),
        valid_from=now,
        valid_until=now + validity,
        issued_at=now,
    )
    return jws.sign(PEER_CARD_TYP, card.wire(), signing_key)


def verify_card(obj: Any, now: datetime | None = None) -> tuple[PeerCard, jws.SignedDocument]:
    """Parse a peer card JWS and check its self-signature (and validity, if ``now`` given)."""
    doc = jws.parse(obj, PEER_CARD_TYP)
    card = parse_model(PeerCard, doc.payload)
    doc.verify(card.signing_fingerprint, card.signing_key_bytes)
    if now is not None and not card.valid_at(now):
        raise ExpiredDocument(f"peer card of {card.node_id} is not valid at {now:%Y-%m-%d}")
    return card, doc
