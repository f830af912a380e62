"""Convenant: the data-sharing agreement, signed by every party (docs/protocol.md §5).

The document is a JWS whose payload is a ``Convenant``; it carries one signature per
party, each by the Ed25519 key whose fingerprint the convenant lists for that party (the
FSC contract shape: valid only when every named peer has signed). This module parses and
verifies; whether a convenant is *in force* for a request is decided in
``node.policy.convenant``, and which detail a partner may share in ``node.policy.detail``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, model_validator

from node.errors import InputError, MalformedMessage
from node.protocol import jws
from node.protocol.fields import (
    FINGERPRINT_PATTERN,
    ID_PATTERN,
    MAX_CATALOGUE,
    MAX_DETAIL_RULES,
    MAX_PARTIES,
    MAX_PURPOSES,
    MAX_THEMES,
    THEME_PATTERN,
    CategoryId,
    ConvenantId,
    Description,
    Fingerprint,
    LegalBasis,
    NodeId,
    Organisation,
    PurposeId,
    Theme,
    Title,
)
from node.protocol.models import (
    NODE_ID_PATTERN,
    OrgType,
    Timestamp,
    WireInt,
    WireModel,
    parse_model,
)

CONVENANT_TYP = "vhnode-convenant/v1"
jws.remember_verifications(CONVENANT_TYP)
__all__ = ["FINGERPRINT_PATTERN", "ID_PATTERN", "THEME_PATTERN"]

Role = Literal["requester", "provider"]
# Local API roles at a recipient that a detail rule may name (§5.6). Deliberately not every
# local role: ``admin`` runs the node and ``source`` feeds the registry; neither takes part
# in a case conference, so a convenant granting them detail is a mistake we reject.
RecipientRole = Literal["coordinator", "liaison", "privacy_officer"]
# "none": the provider's node decides alone; "liaison": a person at the provider approves.
Approval = Literal["none", "liaison"]
# Booleans on the wire are JSON true/false, never "true" or 1.
WireBool = Annotated[bool, Strict()]


class Purpose(WireModel):
    id: PurposeId
    description: Description


class ConvenantParty(WireModel):
    node_id: NodeId
    organisation: Organisation
    org_type: OrgType
    signing_key_fingerprint: Fingerprint
    encryption_key_fingerprint: Fingerprint
    roles: tuple[Role, ...] = Field(min_length=1, max_length=2)
    # Purposes for which this party may ask bekendheid (role requester).
    query_purposes: tuple[str, ...] = Field((), max_length=MAX_PURPOSES)
    # Themes of this party's registry in scope of the convenant (role provider).
    scope_themes: tuple[Theme, ...] = Field((), max_length=MAX_THEMES)

    @model_validator(mode="after")
    def _roles_match_rights(self) -> ConvenantParty:
        if ("requester" in self.roles) != bool(self.query_purposes):
            raise ValueError(f"{self.node_id}: role requester iff query_purposes is non-empty")
        if ("provider" in self.roles) != bool(self.scope_themes):
            raise ValueError(f"{self.node_id}: role provider iff scope_themes is non-empty")
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"{self.node_id}: duplicate role")
        return self


class Category(WireModel):
    """One entry of the convenant's catalogue of data categories (§5.6)."""

    id: CategoryId
    description: Description


class DetailRule(WireModel):
    """What one provider may share of one category, with whom, why and for how long (§5.6)."""

    provider: NodeId
    category: CategoryId
    recipients: tuple[str, ...] = Field(min_length=1, max_length=MAX_PARTIES)
    recipient_roles: tuple[RecipientRole, ...] = Field(min_length=1, max_length=3)
    purposes: tuple[str, ...] = Field(min_length=1, max_length=MAX_PURPOSES)
    approval: Approval
    max_retention_days: WireInt = Field(ge=1, le=3650)
    notify_hit: WireBool

    @model_validator(mode="after")
    def _no_duplicates(self) -> DetailRule:
        where = f"detail rule {self.provider}/{self.category}"
        for name, values in (
            ("recipient", self.recipients),
            ("recipient role", self.recipient_roles),
            ("purpose", self.purposes),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"{where}: a {name} is listed twice")
        for node_id in self.recipients:
            if not _matches(NODE_ID_PATTERN, node_id):
                raise ValueError(f"{where}: bad recipient {node_id!r}")
        return self


class Convenant(WireModel):
    type: Literal["vhnode.convenant"] = "vhnode.convenant"
    id: ConvenantId
    version: WireInt = Field(ge=1)
    title: Title
    legal_basis: LegalBasis
    valid_from: Timestamp
    valid_until: Timestamp
    purposes: tuple[Purpose, ...] = Field(min_length=1, max_length=MAX_PURPOSES)
    parties: tuple[ConvenantParty, ...] = Field(min_length=2, max_length=MAX_PARTIES)
    # Stage 2 (§5.6). Empty by default: a convenant without detail rules allows no detail.
    categories: tuple[Category, ...] = Field((), max_length=MAX_CATALOGUE)
    detail_rules: tuple[DetailRule, ...] = Field((), max_length=MAX_DETAIL_RULES)

    @model_validator(mode="after")
    def _consistent(self) -> Convenant:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        ids = [p.node_id for p in self.parties]
        if len(set(ids)) != len(ids):
            raise ValueError("a party is listed twice")
        purpose_ids = {p.id for p in self.purposes}
        if len(purpose_ids) != len(self.purposes):
            raise ValueError("a purpose is listed twice")
        for party in self.parties:
            unknown = set(party.query_purposes) - purpose_ids
            if unknown:
                raise ValueError(f"{party.node_id}: unknown purpose {sorted(unknown)[0]!r}")
        self._detail_rules_consistent(purpose_ids)
        return self

    def _detail_rules_consistent(self, purpose_ids: set[str]) -> None:
        category_ids = {c.id for c in self.categories}
        if len(category_ids) != len(self.categories):
            raise ValueError("a category is listed twice")
        providers = {p.node_id for p in self.providers()}
        parties = {p.node_id for p in self.parties}
        seen: set[tuple[str, str]] = set()
        for rule in self.detail_rules:
            where = f"detail rule {rule.provider}/{rule.category}"
            if rule.provider not in providers:
                raise ValueError(f"{where}: {rule.provider} is not a party with role provider")
            if rule.category not in category_ids:
                raise ValueError(f"{where}: category {rule.category!r} is not in the catalogue")
            strangers = sorted(set(rule.recipients) - parties)
            if strangers:
                raise ValueError(f"{where}: recipient {strangers[0]} is not a party")
            unknown = sorted(set(rule.purposes) - purpose_ids)
            if unknown:
                raise ValueError(f"{where}: unknown purpose {unknown[0]!r}")
            # One rule per (provider, category), so a decision never depends on rule order.
            if (rule.provider, rule.category) in seen:
                raise ValueError(f"{where}: a second rule for the same provider and category")
            seen.add((rule.provider, rule.category))

    def wire(self) -> dict[str, Any]:
        # A convenant without detail sharing keeps exactly the payload it had before §5.6
        # existed, so documents drafted and signed earlier stay byte-identical and nodes
        # that predate stage 2 still accept new drafts that do not use it.
        out = super().wire()
        for key in ("categories", "detail_rules"):
            if not out[key]:
                del out[key]
        return out

    def category(self, category_id: str) -> Category | None:
        for c in self.categories:
            if c.id == category_id:
                return c
        return None

    def detail_rule(self, provider: str, category: str) -> DetailRule | None:
        for r in self.detail_rules:
            if r.provider == provider and r.category == category:
                return r
        return None

    def party(self, node_id: str) -> ConvenantParty | None:
        for p in self.parties:
            if p.node_id == node_id:
                return p
        return None

    def providers(self) -> tuple[ConvenantParty, ...]:
        return tuple(p for p in self.parties if "provider" in p.roles)


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


@dataclass(frozen=True)
class SignatureStatus:
    node_id: str
    # signed: valid signature with the key the convenant names; missing: no signature
    # with that key; bad: one that does not verify; no_card: we hold no peer card with
    # that key, so a signature cannot be checked (every party needs every other's card).
    state: Literal["signed", "missing", "bad", "no_card"]


def party_signatures(
    conv: Convenant, doc: jws.SignedDocument, keys: Mapping[str, bytes]
) -> list[SignatureStatus]:
    """Signature state per party: has it signed with the key the convenant names for it?

    The convenant lists fingerprints only, so ``keys`` (fingerprint → public key, from the
    peer cards we hold) supplies the keys; a party whose key we do not hold is ``no_card``
    whether it signed or not — saying "not signed" of a party that did sign sends its
    admin hunting for a signature that is there.
    """
    out = []
    for party in conv.parties:
        fp = party.signing_key_fingerprint
        if fp not in keys:
            out.append(SignatureStatus(party.node_id, "no_card"))
        elif fp not in doc.kids():
            out.append(SignatureStatus(party.node_id, "missing"))
        elif doc.has_valid_signature(fp, keys[fp]):
            out.append(SignatureStatus(party.node_id, "signed"))
        else:
            out.append(SignatureStatus(party.node_id, "bad"))
    return out


def fully_signed(conv: Convenant, doc: jws.SignedDocument, keys: Mapping[str, bytes]) -> bool:
    return all(s.state == "signed" for s in party_signatures(conv, doc, keys))


def parse_convenant(obj: Any) -> tuple[Convenant, jws.SignedDocument]:
    doc = jws.parse(obj, CONVENANT_TYP)
    return parse_model(Convenant, doc.payload), doc


def draft_from_toml(text: str, cards: Mapping[str, Mapping[str, Any]]) -> jws.SignedDocument:
    """Build an unsigned convenant from its TOML source (config/convenant.example.toml).

    A party's organisation, org_type and key fingerprints are taken from the TOML if given,
    otherwise from the peer card of that node id in ``cards`` (node id → card fields
    ``organisation``, ``org_type``, ``signing_fingerprint``, ``encryption_fingerprint``).
    ``[[categories]]`` and ``[[detail_rules]]`` tables (§5.6) are taken as they are: they
    name node ids only, so nothing in them comes from a card.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"convenant TOML: {e}") from e
    parties = []
    for raw in data.get("parties", []):
        if not isinstance(raw, dict) or "node_id" not in raw:
            raise InputError("convenant TOML: every [[parties]] entry needs node_id")
        card = cards.get(raw["node_id"], {})
        party = {
            "node_id": raw["node_id"],
            "organisation": raw.get("organisation", card.get("organisation")),
            "org_type": raw.get("org_type", card.get("org_type")),
            "signing_key_fingerprint": raw.get(
                "signing_key_fingerprint", card.get("signing_fingerprint")
            ),
            "encryption_key_fingerprint": raw.get(
                "encryption_key_fingerprint", card.get("encryption_fingerprint")
            ),
            "roles": raw.get("roles", []),
            "query_purposes": raw.get("query_purposes", []),
            "scope_themes": raw.get("scope_themes", []),
        }
        missing = [k for k, v in party.items() if v is None]
        if missing:
            raise InputError(
                f"convenant TOML: party {raw['node_id']}: no {missing[0]} and no peer card for it"
            )
        parties.append(party)
    body = {k: v for k, v in data.items() if k != "parties"}
    body["parties"] = parties
    body.setdefault("type", "vhnode.convenant")
    try:
        conv = parse_model(Convenant, body)
    except MalformedMessage as e:
        raise InputError(f"convenant TOML: {e.detail}") from e
    return jws.unsigned(CONVENANT_TYP, conv.wire())
