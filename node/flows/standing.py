"""Which convenant governs a round this node asks: the newest installed version in force,
this node a party to it and not withdrawn (docs/protocol.md §5, §6.8)."""

from __future__ import annotations

from node.errors import ConvenantNotInForce, NotAParty, PartyWithdrawn, UnknownConvenant
from node.flows.context import NodeContext
from node.policy.convenant import in_force
from node.protocol.convenant import Convenant
from node.protocol.models import rfc3339
from node.protocol.withdrawal import withdrawn


def current_convenant(ctx: NodeContext, convenant_id: str) -> Convenant:
    """The newest installed version in force now (a renewal may be installed early)."""
    trusted = ctx.trust()
    versions = trusted.versions(convenant_id)
    if not versions:
        raise UnknownConvenant(f"convenant {convenant_id} is not installed here")
    keys = trusted.party_keys
    now = ctx.clock.now()
    refusals = [in_force(v.convenant, v.document, keys, now) for v in versions]
    inst = next((v for v, r in zip(versions, refusals, strict=True) if r is None), None)
    if inst is None:
        first = refusals[0]
        raise ConvenantNotInForce(first.detail if first else f"{convenant_id} is not in force")
    if inst.convenant.party(ctx.node_id) is None:
        raise NotAParty(f"this node is not a party to {convenant_id}")
    gone = withdrawn(trusted.withdrawals_of(convenant_id), inst.convenant, ctx.node_id, now)
    if gone is not None:
        # Every provider would refuse us; we signed that we left, so we do not ask.
        raise PartyWithdrawn(
            f"this node withdrew from {convenant_id} at {rfc3339(gone.withdrawn_at)}"
        )
    return inst.convenant


def askable(ctx: NodeContext) -> list[tuple[Convenant, tuple[str, ...]]]:
    """Every convenant this node may ask bekendheid under now, with the purposes its
    party entry lists (the coordinator's choice on the web application's form). A
    convenant not in force, withdrawn from or naming this node no requester is left out."""
    out: list[tuple[Convenant, tuple[str, ...]]] = []
    for convenant_id in sorted(ctx.trust().convenants):
        try:
            conv = current_convenant(ctx, convenant_id)
        except (ConvenantNotInForce, NotAParty, PartyWithdrawn, UnknownConvenant):
            continue
        party = conv.party(ctx.node_id)
        if party is not None and "requester" in party.roles and party.query_purposes:
            out.append((conv, party.query_purposes))
    return out
