"""Peer card: a node's self-signed identity document (docs/protocol.md §4)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import nacl.signing
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import AnyHttpUrl, StringConstraints, model_validator

from node.errors import CardNotYetValid, ExpiredDocument, MalformedMessage
from node.protocol import jws
from node.protocol.fields import ELEMENT_PATTERN, EndpointUrl, NodeId, Organisation, PublicKey
from node.protocol.models import OrgType, Timestamp, WireModel, parse_model, rfc3339

PEER_CARD_TYP = "vhnode-peer-card/v1"
PEER_CARD_TLS_TYP = "vhnode-peer-card/v2"
"""A card that carries its node's TLS certificate (§4.1): v1 is the same card without it."""
PEER_CARD_TYPS = (PEER_CARD_TYP, PEER_CARD_TLS_TYP)
jws.remember_verifications(PEER_CARD_TYP)
jws.remember_verifications(PEER_CARD_TLS_TYP)
MAX_TLS_CERTIFICATE_BYTES = 4096
"""A self-signed Ed25519 or P-256 certificate is ~400 bytes, a PKIoverheid leaf ~2 KiB."""
TlsCertificate = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9_-]+$", max_length=(MAX_TLS_CERTIFICATE_BYTES * 4 + 2) // 3
    ),
]
KEY_PATTERN = ELEMENT_PATTERN  # 32 bytes, unpadded base64url
CARD_CLOCK_SKEW = timedelta(minutes=5)
"""How far a card's ``valid_from`` and ``issued_at`` may lie ahead of a receiver's clock
(§4.1): a card is issued valid from the issuer's "now", and a partner whose clock is a
little slow must not take a fresh card for a revoked one. Not applied to ``valid_until``:
a card ends to the second on the receiver's clock."""


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
    # v2 only (§4.1): B64U of the node's TLS certificate, DER. Its key is what peers pin.
    tls_certificate: TlsCertificate | None = None
    # A rotation card (§4.1.1) names the key it succeeds, which cross-signs it.
    previous_signing_key: PublicKey | None = None

    @property
    def tls_certificate_der(self) -> bytes | None:
        return None if self.tls_certificate is None else jws.b64u_decode(self.tls_certificate)

    @property
    def tls_key_fingerprint(self) -> str | None:
        """The pin of §4.1: lowercase hex SHA-256 of the certificate's SubjectPublicKeyInfo
        (DER), so a certificate re-issued for the same key keeps it."""
        der = self.tls_certificate_der
        return None if der is None else tls_key_fingerprint(der)

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
    def previous_key_bytes(self) -> bytes | None:
        key = self.previous_signing_key
        return None if key is None else jws.b64u_decode(key)

    @property
    def previous_fingerprint(self) -> str | None:
        key = self.previous_key_bytes
        return None if key is None else jws.fingerprint(key)

    @property
    def endpoint_url(self) -> str:
        return str(self.endpoint).rstrip("/")

    @model_validator(mode="after")
    def _window(self) -> PeerCard:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.tls_certificate is not None:
            # Strict base64url of one DER certificate (MalformedMessage or ValueError).
            tls_key_fingerprint(jws.b64u_decode(self.tls_certificate))
            if self.endpoint.scheme != "https":
                # A card that names a TLS key is reached over TLS only: an http endpoint
                # would send the request in clear past the pin (§4.1).
                raise ValueError("a card with tls_certificate needs an https endpoint")
        if self.previous_signing_key == self.signing_key:
            raise ValueError("previous_signing_key must differ from signing_key")
        return self

    @property
    def typ(self) -> str:
        """The ``typ`` this card is signed under: v2 exactly when it names a TLS key."""
        return PEER_CARD_TYP if self.tls_certificate is None else PEER_CARD_TLS_TYP

    def valid_at(self, now: datetime) -> bool:
        """Usable at ``now`` (§4.1): from ``valid_from`` less the card skew, to
        ``valid_until`` exactly."""
        return self.valid_from - CARD_CLOCK_SKEW <= now < self.valid_until

    def wire(self) -> dict[str, Any]:
        out = super().wire()
        out["endpoint"] = self.endpoint_url
        if self.tls_certificate is None:
            del out["tls_certificate"]  # a v1 card has no such member at all
        if out["previous_signing_key"] is None:  # absent from every card but a rotation card
            del out["previous_signing_key"]
        return out


def tls_key_fingerprint(certificate_der: bytes) -> str:
    """Lowercase hex SHA-256 of a DER certificate's SubjectPublicKeyInfo; ValueError when
    ``certificate_der`` is not one certificate."""
    try:
        cert = x509.load_der_x509_certificate(certificate_der)
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError) as e:
        raise ValueError(f"tls_certificate is not a DER X.509 certificate: {e}") from e
    return hashlib.sha256(spki).hexdigest()


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
    tls_certificate: bytes | None = None,
    previous_key: nacl.signing.SigningKey | None = None,
) -> jws.SignedDocument:
    """A self-signed peer card (§3) valid from ``now`` for ``validity``; a v2 card when
    it carries the node's TLS certificate (DER); with ``previous_key``, a rotation card
    (§4.1.1) that key cross-signs."""
    previous = None if previous_key is None else bytes(previous_key.verify_key)
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
        tls_certificate=None if tls_certificate is None else jws.b64u_encode(tls_certificate),
        previous_signing_key=None if previous is None else jws.b64u_encode(previous),
    )
    doc = jws.sign(card.typ, card.wire(), signing_key)
    return doc if previous_key is None else doc.with_signature(previous_key)


def not_yet_valid(card: PeerCard, now: datetime, *, issued: bool = False) -> CardNotYetValid | None:
    """The refusal of a card whose ``valid_from`` (and, with ``issued``, ``issued_at``)
    lies more than the card skew ahead of ``now`` (§4.1, §4.2 step 1): it names both
    clocks, since a slow receiver or a fast issuer is the usual cause."""
    for member, at in (("valid_from", card.valid_from), ("issued_at", card.issued_at)):
        if member == "issued_at" and not issued:
            continue
        if at - CARD_CLOCK_SKEW > now:
            ahead = round((at - now).total_seconds())
            return CardNotYetValid(
                f"peer card of {card.node_id} has {member} {rfc3339(at)}, {ahead} s ahead of "
                f"this node's clock ({rfc3339(now)}; at most {int(CARD_CLOCK_SKEW.total_seconds())}"
                " s allowed): check the clocks of both nodes"
            )
    return None


def verify_card(obj: Any, now: datetime | None = None) -> tuple[PeerCard, jws.SignedDocument]:
    """Parse a peer card JWS and check its self-signature (§4.1); with ``now``, also the
    receiver rules of §4.2 step 1: usable now, not issued in the future."""
    doc = jws.parse(obj)
    if doc.typ not in PEER_CARD_TYPS:
        raise MalformedMessage(f"expected a {' or '.join(PEER_CARD_TYPS)} document, got {doc.typ}")
    if doc.payload.get("previous_signing_key", "") is None:
        raise MalformedMessage("previous_signing_key is absent or a key, never null")
    card = parse_model(PeerCard, doc.payload)
    previous = card.previous_key_bytes
    if previous is None and len(doc.signatures) != 1:
        # Only the card's own key vouches for it; another signature proves nothing and
        # would travel on with the card (§4.1).
        raise MalformedMessage("a peer card carries exactly one signature, its own")
    if previous is not None and len(doc.signatures) != 2:
        # §4.1.1: its own and the cross-signature of the key it names, nothing else.
        raise MalformedMessage(
            "a rotation card carries exactly two signatures: its own and its previous key's"
        )
    if card.typ != doc.typ:
        # v1 never carries the member and v2 always does: a card cannot be read as the
        # other version by a node that knows only one of them.
        raise MalformedMessage(
            f"a {doc.typ} card {'must' if doc.typ == PEER_CARD_TLS_TYP else 'must not'} "
            "carry tls_certificate"
        )
    doc.verify(card.signing_fingerprint, card.signing_key_bytes)
    if previous is not None:
        doc.verify(jws.fingerprint(previous), previous)
    if now is not None:
        early = not_yet_valid(card, now, issued=True)
        if early is not None:
            raise early
        if not card.valid_at(now):
            raise ExpiredDocument(
                f"peer card of {card.node_id} expired at {rfc3339(card.valid_until)}"
            )
    return card, doc
