"""Convenant withdrawal: a party's signed statement that it leaves a convenant (§5.7).

A party cannot take its signature off a convenant others hold, so leaving is a separate
document, signed by the key the convenant version lists for that party. It applies to
the named convenant id, to every version up to and including the named one, from
``withdrawn_at`` (to the second) on. A later version is a new text that every party
signs again, so a party that signs a new version after withdrawing is a party again
under that version: the withdrawal never reaches forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import nacl.signing
from pydantic import Field

from node.errors import BadSignature, NotAParty
from node.protocol import jws
from node.protocol.convenant import Convenant
from node.protocol.fields import ConvenantId, NodeId, WithdrawalReason
from node.protocol.models import Timestamp, WireInt, WireModel, parse_model

WITHDRAWAL_TYP = "vhnode-convenant-withdrawal/v1"
# Installed withdrawals are re-checked whenever the trust snapshot reloads, like convenants.
jws.remember_verifications(WITHDRAWAL_TYP)


class Withdrawal(WireModel):
    type: Literal["vhnode.convenant-withdrawal"] = "vhnode.convenant-withdrawal"
    convenant_id: ConvenantId
    convenant_version: WireInt = Field(ge=1)
    party: NodeId
    withdrawn_at: Timestamp
    reason: WithdrawalReason

    def covers(self, conv: Convenant) -> bool:
        """Does this withdrawal apply to ``conv`` at all (whatever the time)?"""
        return conv.id == self.convenant_id and conv.version <= self.convenant_version

    def in_effect(self, conv: Convenant, party: str, now: datetime) -> bool:
        """Is ``party`` withdrawn from ``conv`` at ``now``? From ``withdrawn_at`` on."""
        return self.party == party and self.covers(conv) and now >= self.withdrawn_at


def parse_withdrawal(obj: Any) -> tuple[Withdrawal, jws.SignedDocument]:
    doc = jws.parse(obj, WITHDRAWAL_TYP)
    return parse_model(Withdrawal, doc.payload), doc


def verify_withdrawal(
    w: Withdrawal, doc: jws.SignedDocument, conv: Convenant, keys: Mapping[str, bytes]
) -> None:
    """Raise unless ``doc`` is signed by exactly the key ``conv`` lists for ``w.party``.

    ``conv`` is the version the withdrawal names; ``keys`` maps fingerprints to public
    keys (the peer cards held and our own). One signature only: a second one, by anyone,
    would make it unclear whose statement this is.
    """
    if conv.id != w.convenant_id or conv.version != w.convenant_version:
        raise NotAParty(f"withdrawal names {w.convenant_id} v{w.convenant_version}")
    party = conv.party(w.party)
    if party is None:
        raise NotAParty(f"{w.party} is not a party to {conv.id} v{conv.version}")
    if len(doc.signatures) != 1:
        raise BadSignature("a withdrawal carries exactly one signature")
    fp = party.signing_key_fingerprint
    if doc.kids() != (fp,):
        raise BadSignature(f"withdrawal is not signed by the key {conv.id} lists for {w.party}")
    if fp not in keys:
        raise BadSignature(f"no key held for {w.party}'s fingerprint {fp[:16]}…")
    doc.verify(fp, keys[fp])


def withdrawn(
    withdrawals: Iterable[Withdrawal], conv: Convenant, party: str, now: datetime
) -> Withdrawal | None:
    """The earliest withdrawal of ``party`` from ``conv`` in effect at ``now``, if any."""
    hits = [w for w in withdrawals if w.in_effect(conv, party, now)]
    return min(hits, key=lambda w: w.withdrawn_at) if hits else None


def sign_withdrawal(w: Withdrawal, key: nacl.signing.SigningKey) -> jws.SignedDocument:
    return jws.sign(WITHDRAWAL_TYP, w.wire(), key)
