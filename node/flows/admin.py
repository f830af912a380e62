"""Admin operations on a node home: init, peers, convenants, users, imports, status.

The CLI, the demo and the tests all go through these functions, so each operation has
one implementation. Each state change is written with its log entry in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import nacl.signing
from pydantic import ValidationError

from node import tls
from node.clock import SYSTEM_CLOCK
from node.config import (
    CARD_FILE,
    CONFIG_FILE,
    DB_FILE,
    KEYS_DIR,
    NodeConfig,
    load_config,
    make_private_dir,
    render_config,
    set_endpoint,
    write_private,
)
from node.errors import (
    ConfigError,
    ConvenantNotInForce,
    InputError,
    KeyMismatch,
    MalformedMessage,
    NotAParty,
    RevokedRequester,
    UnknownConvenant,
    UnknownRequester,
    VhnodeError,
)
from node.flows import log_entries
from node.flows.context import NodeContext
from node.flows.publishing import (
    EpochTags,
    apply_changes,
    precompute_rebuild,
    prepare_changes,
    rebuild,
)
from node.keys import NodeKeys
from node.policy.convenant import in_force
from node.protocol import jws, peer_card
from node.protocol.convenant import (
    CONVENANT_TYP,
    Convenant,
    draft_from_toml,
    parse_convenant,
    party_signatures,
)
from node.protocol.identifiers import amsterdam_date
from node.protocol.models import parse_model, rfc3339
from node.protocol.peer_card import PeerCard, verify_card
from node.protocol.registration import Registration, RowError, iter_file
from node.protocol.withdrawal import (
    Withdrawal,
    parse_withdrawal,
    sign_withdrawal,
    verify_withdrawal,
)
from node.store import (
    convenants,
    db,
    imports,
    log,
    oprf_epochs,
    peers,
    registry,
    tag_sets,
    users,
    web_sessions,
)
from node.store.db import tx
from node.store.log_kinds import LogKind

IMPORT_BATCH = 2_000
"""Rows per transaction: small enough that a server on the same home waits at most a
fraction of a second for the write lock."""


def init_node(home: Path, cfg: NodeConfig, now: datetime | None = None) -> jws.SignedDocument:
    """Create a node home: config, keys (0600), self-signed peer card, database."""
    now = now or SYSTEM_CLOCK.now()
    home = home.expanduser()
    if (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} already holds a node ({CONFIG_FILE} exists)")
    if cfg.tls is not None and cfg.endpoint.scheme != "https":
        raise InputError("a node with [tls] needs an https endpoint: peers reach it over TLS")
    brought = cfg.tls is not None and any(
        cfg.tls.path(home, f).exists() for f in (cfg.tls.cert_file, cfg.tls.key_file)
    )
    if brought:
        # A certificate brought along (a CA's, docs/operations.md "TLS"): checked before
        # anything is written, so a refused key file leaves no half-made home.
        tls.certificate_der(home, cfg)
    # A home that exists already (the README's /srv/vhnode) is closed to others too.
    make_private_dir(home)
    keys = NodeKeys.generate()
    keys.save(home / KEYS_DIR)
    if cfg.tls is not None and not brought:
        tls.write_self_signed(home, cfg, now)
    write_private(home / CONFIG_FILE, render_config(cfg))
    card = issue_card(cfg, keys, now, tls.certificate_der(home, cfg))
    write_private(home / CARD_FILE, json.dumps(card.to_json(), indent=2) + "\n")
    conn = db.connect(home / DB_FILE, keys)
    with tx(conn):
        log.append(
            conn,
            keys.signing,
            cfg.node_id,
            [
                log_entries.node_initialised(
                    signing_key_fingerprint=keys.signing_fingerprint, org_type=cfg.org_type
                )
            ],
            now,
        )
    conn.close()
    return card


def issue_card(
    cfg: NodeConfig, keys: NodeKeys, now: datetime, tls_certificate: bytes | None = None
) -> jws.SignedDocument:
    """This node's self-signed peer card, from its config and keys; v2 with the node's
    TLS certificate (DER) when it has one (§4.1)."""
    try:
        return _issue_card(cfg, keys, now, tls_certificate)
    except ValidationError as e:  # e.g. a TLS certificate with an http endpoint (§4.1)
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"peer card: {where + ': ' if where else ''}{first['msg']}") from e


def _issue_card(
    cfg: NodeConfig, keys: NodeKeys, now: datetime, tls_certificate: bytes | None
) -> jws.SignedDocument:
    return peer_card.issue_card(
        node_id=cfg.node_id,
        organisation=cfg.organisation,
        org_type=cfg.org_type,
        endpoint=cfg.endpoint,
        signing_key=keys.signing,
        encryption_public=keys.encryption_public,
        validity=timedelta(days=cfg.card_validity_days),
        now=now,
        tls_certificate=tls_certificate,
    )


def own_card(ctx: NodeContext) -> tuple[PeerCard, jws.SignedDocument]:
    return ctx.own_card()


@dataclass(frozen=True)
class Reloaded:
    """What a reload read (``read_for_reload``): the card and node.toml as they are now."""

    card: tuple[PeerCard, jws.SignedDocument]
    cfg: NodeConfig


def read_for_reload(ctx: NodeContext) -> Reloaded:
    """Read card.json and node.toml again for a running node (SIGHUP, ``systemctl
    reload``): after ``vhnode card renew`` the server serves the new card without a
    restart. Files only, no database: run off the event loop. Raises VhnodeError if
    the card does not verify, or is not this node's with its keys (a new key needs a
    restart, which loads it) — the node then keeps the card it serves."""
    cfg = load_config(ctx.home)
    try:
        card = verify_card(json.loads((ctx.home / CARD_FILE).read_text()))
    except (OSError, ValueError, VhnodeError) as e:  # unreadable, not JSON, not a card
        raise ConfigError(f"{CARD_FILE}: {e}") from e
    if card[0].node_id != ctx.node_id or card[0].signing_key_bytes != ctx.keys.signing_public:
        raise ConfigError(
            f"{CARD_FILE} is not this node's card with its loaded signing key; restart "
            "the node after a change of keys"
        )
    return Reloaded(card, cfg)


def apply_reload(ctx: NodeContext, new: Reloaded) -> list[str]:
    """Serve the card read, and take the endpoint that goes with it from node.toml (``card
    renew --endpoint`` writes both). Returns the other settings of node.toml that
    differ from the running ones: they take effect at the next restart only."""
    ctx.use_own_card(new.card)
    taken = {"endpoint": new.cfg.endpoint, "card_validity_days": new.cfg.card_validity_days}
    ctx.cfg = ctx.cfg.model_copy(update=taken)
    running = ctx.cfg.model_dump()
    return sorted(k for k, v in new.cfg.model_dump().items() if running.get(k) != v)


def renew_card(
    ctx: NodeContext, *, endpoint: str | None = None, days: int | None = None
) -> jws.SignedDocument:
    """Issue this node's card again (§4.1): valid from now for ``days`` (default
    ``card_validity_days``), at ``endpoint`` if given (also written to node.toml, so the
    next renewal keeps it). Same keys, so partners take it as an update (§4.2 step 4)."""
    held, _ = ctx.own_card()
    try:
        cfg = NodeConfig.model_validate(
            ctx.cfg.model_dump()
            | ({"endpoint": endpoint} if endpoint is not None else {})
            | ({"card_validity_days": days} if days is not None else {})
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{where}: {first['msg']}") from e
    # issued_at orders a node's cards (§4.2): a renewal within the second of the card
    # held (or after the clock was set back) still comes out later than it.
    now = max(ctx.clock.now(), held.issued_at + timedelta(seconds=1))
    # The certificate as the files hold it now: a renewed certificate (same key or a new
    # one) reaches the partners with this card.
    card = issue_card(cfg, ctx.keys, now, tls.certificate_der(ctx.home, cfg))
    renewed, _ = verify_card(card.to_json())
    if endpoint is not None:
        set_endpoint(ctx.home, renewed.endpoint_url)
        ctx.cfg = ctx.cfg.model_copy(update={"endpoint": cfg.endpoint})
    path = ctx.home / CARD_FILE
    tmp = path.with_name(path.name + ".tmp")
    write_private(tmp, json.dumps(card.to_json(), indent=2) + "\n")
    os.replace(tmp, path)  # a partner or a restart never reads half a card
    ctx.forget_own_card()
    with tx(ctx.conn):
        ctx.record(
            [
                log_entries.card_renewed(
                    signing_key_fingerprint=renewed.signing_fingerprint,
                    endpoint=renewed.endpoint_url,
                    valid_from=rfc3339(renewed.valid_from),
                    valid_until=rfc3339(renewed.valid_until),
                )
            ]
        )
    return card


def load_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise InputError(f"no such file: {path}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not JSON: {e}") from e


def add_peer(
    ctx: NodeContext, card_json: Any, rotate: bool = False, *, by: str | None = None
) -> tuple[PeerCard, peers.Outcome]:
    card, doc = verify_card(card_json, ctx.clock.now())
    if card.node_id == ctx.node_id:
        raise InputError("that is this node's own card")
    with tx(ctx.conn):
        outcome = hold_card(ctx, card, doc, rotate=rotate, by=by)
    return card, outcome


def hold_card(
    ctx: NodeContext,
    card: PeerCard,
    doc: jws.SignedDocument,
    *,
    rotate: bool = False,
    by: str | None = None,
) -> peers.Outcome:
    """§4.2 steps 3–5 for a verified card, with its log entry; in the caller's
    transaction. A rotation the held key cross-signed needs no ``rotate`` and says so
    in its entry (``via``)."""
    held = peers.by_id(ctx.conn, card.node_id)
    outcome = peers.add(ctx.conn, doc, ctx.clock.now(), rotate=rotate)
    if outcome == "unchanged":
        return outcome
    rotated_from = held.card.signing_fingerprint if held and outcome == "rotated" else None
    cross_signed = (
        held is not None and outcome == "rotated" and peers.cross_signed_by_held(card, held)
    )
    ctx.record(
        [
            log_entries.peer_card_held(
                outcome=outcome,
                node_id=card.node_id,
                signing_key_fingerprint=card.signing_fingerprint,
                by=by,
                via="cross-signature" if cross_signed else None,
                previous_signing_key_fingerprint=rotated_from,
            )
        ]
    )
    return outcome


def accept_announced_card(ctx: NodeContext, body: bytes) -> peers.Outcome:
    """A peer's own card, sent to ``POST /peer/v1/card`` (§4.4); one write job.

    Taken only where the key this node holds for that node id vouches for it: a card
    with that same key (§4.2 step 4), or a rotation card it cross-signed (step 5). A new
    node id, a revoked peer, or another key without that cross-signature stays for an
    admin to decide, after comparing fingerprints out of band."""
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MalformedMessage("the body is not JSON") from e
    now = ctx.clock.now()
    card, doc = verify_card(raw, now)
    if card.node_id == ctx.node_id:
        raise InputError("that is this node's own card")
    held = peers.by_id(ctx.conn, card.node_id)
    if held is None:
        raise UnknownRequester(
            f"no peer card held for {card.node_id}: an admin adds a new partner's card"
        )
    if held.revoked_at is not None:
        raise RevokedRequester(
            f"peer card of {card.node_id} is revoked: only an admin accepts a new card for it"
        )
    if held.card.signing_fingerprint != card.signing_fingerprint and not (
        peers.cross_signed_by_held(card, held)
    ):
        raise KeyMismatch(
            f"card of {card.node_id} has another signing key and no cross-signature by the "
            "key held: only an admin accepts it, after comparing fingerprints out of band"
        )
    return hold_card(ctx, card, doc)


def rotate_signing_key(
    ctx: NodeContext, *, compromised: bool = False
) -> tuple[jws.SignedDocument, list[str]]:
    """Give this node a new signing key (§4.1.1) and a card for it.

    The card is cross-signed by the old key, so partners holding the old card take it
    without an admin (§4.2 step 5) — unless ``compromised``: a key a thief may hold
    vouches for nothing, so the card is signed by the new key alone and every partner's
    admin revokes the old card and accepts the new one by hand (docs/operations.md).
    Returns the new card and the ids of the installed convenants that name the old key:
    they are not in force once partners hold the new card (§5.4) until a version naming
    the new key (``next_convenant_version``) is signed by every party.
    """
    held, _ = ctx.own_card()
    old = ctx.keys
    new_key = nacl.signing.SigningKey.generate()
    # issued_at orders a node's cards (§4.2): the new card comes out after the held one.
    now = max(ctx.clock.now(), held.issued_at + timedelta(seconds=1))
    card = peer_card.issue_card(
        node_id=held.node_id,
        organisation=held.organisation,
        org_type=held.org_type,
        endpoint=held.endpoint,
        signing_key=new_key,
        encryption_public=old.encryption_public,
        validity=timedelta(days=ctx.cfg.card_validity_days),
        now=now,
        # The TLS key is not rotated with the signing key: the card keeps its certificate.
        tls_certificate=tls.certificate_der(ctx.home, ctx.cfg),
        previous_key=None if compromised else old.signing,
    )
    verify_card(card.to_json())  # never hand out a card that does not verify
    naming_old = [
        inst.convenant.id
        for inst in convenants.latest_versions(ctx.conn)
        if (p := inst.convenant.party(ctx.node_id)) is not None
        and p.signing_key_fingerprint == old.signing_fingerprint
    ]
    ctx.keys = old.rotate_signing(ctx.home / KEYS_DIR, new_key)
    path = ctx.home / CARD_FILE
    tmp = path.with_name(path.name + ".tmp")
    write_private(tmp, json.dumps(card.to_json(), indent=2) + "\n")
    os.replace(tmp, path)
    ctx.forget_own_card()
    ctx.forget_trust()
    with tx(ctx.conn):  # sealed under a head the new key signs
        ctx.record(
            [
                log_entries.key_rotated(
                    signing_key_fingerprint=ctx.keys.signing_fingerprint,
                    previous_signing_key_fingerprint=old.signing_fingerprint,
                    compromised=compromised,
                )
            ]
        )
    return card, naming_old


def next_convenant_version(ctx: NodeContext, convenant_id: str) -> jws.SignedDocument:
    """The draft of the next version of an installed convenant (§5.4): the newest
    version's text with ``version + 1`` and every party's key fingerprints as on the card
    held now (this node's own included), unsigned. After a party's key rotation this is
    the version that names the new key; every party signs it as any new version."""
    inst = convenants.latest(ctx.conn, convenant_id)
    if inst is None:
        raise UnknownConvenant(f"convenant {convenant_id} is not installed here")
    conv = inst.convenant
    cards = {p.node_id: p.card for p in peers.all_peers(ctx.conn)}
    cards[ctx.node_id] = own_card(ctx)[0]
    parties = []
    for party in conv.parties:
        card = cards.get(party.node_id)
        if card is None:
            raise InputError(f"no card held for {party.node_id}: add it with 'vhnode peer add'")
        parties.append(
            party.model_copy(
                update={
                    "signing_key_fingerprint": card.signing_fingerprint,
                    "encryption_key_fingerprint": card.encryption_fingerprint,
                }
            )
        )
    update = {"version": conv.version + 1, "parties": tuple(parties)}
    payload = conv.model_copy(update=update).wire()
    return jws.unsigned(CONVENANT_TYP, parse_model(Convenant, payload).wire())


def revoke_peer(ctx: NodeContext, node_id: str, *, by: str | None = None) -> None:
    with tx(ctx.conn):
        if not peers.revoke(ctx.conn, node_id, ctx.clock.now()):
            return  # already revoked: nothing changes, nothing to log
        ctx.record([log_entries.peer_revoked(node_id=node_id, by=by)])


def _known_keys(ctx: NodeContext) -> dict[str, bytes]:
    keys = peers.signing_keys(ctx.conn)
    keys[ctx.keys.signing_fingerprint] = ctx.keys.signing_public
    return keys


def draft_convenant(ctx: NodeContext, toml_text: str) -> jws.SignedDocument:
    cards: dict[str, dict[str, Any]] = {}
    for p in [*peers.all_peers(ctx.conn), None]:
        card = p.card if p else own_card(ctx)[0]
        cards[card.node_id] = {
            "organisation": card.organisation,
            "org_type": card.org_type,
            "signing_fingerprint": card.signing_fingerprint,
            "encryption_fingerprint": card.encryption_fingerprint,
        }
    return draft_from_toml(toml_text, cards)


def sign_convenant(ctx: NodeContext, doc_json: Any) -> jws.SignedDocument:
    conv, doc = parse_convenant(doc_json)
    party = conv.party(ctx.node_id)
    if party is None:
        raise NotAParty(f"this node ({ctx.node_id}) is not a party to {conv.id}")
    if party.signing_key_fingerprint != ctx.keys.signing_fingerprint:
        raise InputError(f"the convenant names another signing key for {ctx.node_id}")
    return doc.with_signature(ctx.keys.signing)


@dataclass(frozen=True)
class PartyStatus:
    node_id: str
    organisation: str
    roles: tuple[str, ...]
    signature: str
    # RFC 3339 time from which an installed withdrawal of this party applies to this
    # version (§5.7), also when that time is still ahead; None: not withdrawn.
    withdrawn_at: str | None = None


def convenant_status(
    ctx: NodeContext, doc_json: Any
) -> tuple[Convenant, list[PartyStatus], str | None]:
    """Per party signature state, and why the convenant is not in force (None if it is)."""
    conv, doc = parse_convenant(doc_json)
    keys = _known_keys(ctx)
    sigs = {s.node_id: s.state for s in party_signatures(conv, doc, keys)}
    gone: dict[str, str] = {}
    for wd in convenants.withdrawals(ctx.conn, conv.id):  # oldest first: the first counts
        if wd.withdrawal.covers(conv):
            gone.setdefault(wd.withdrawal.party, rfc3339(wd.withdrawal.withdrawn_at))
    rows = [
        PartyStatus(p.node_id, p.organisation, p.roles, sigs[p.node_id], gone.get(p.node_id))
        for p in conv.parties
    ]
    refusal = in_force(conv, doc, keys, ctx.clock.now())
    return conv, rows, refusal.detail if refusal else None


@dataclass(frozen=True)
class InstallCheck:
    """What stands between a convenant document and its install here, per kind of
    problem, so the CLI and the web application each say it in their own words."""

    # Parties whose held card has another signing key than the convenant names.
    other_key: tuple[str, ...] = ()
    # Parties of whom no card is held: their signature cannot be checked.
    no_card: tuple[str, ...] = ()
    # Parties that have not signed, or whose signature does not verify.
    unsigned: tuple[str, ...] = ()
    # The convenant's valid_until has passed.
    expired: bool = False

    @property
    def ok(self) -> bool:
        return not (self.other_key or self.no_card or self.unsigned or self.expired)


def check_install(ctx: NodeContext, conv: Convenant, doc: jws.SignedDocument) -> InstallCheck:
    """Why ``conv`` cannot be installed here now (``ok`` when it can); reads only."""
    states = party_signatures(conv, doc, _known_keys(ctx))
    carded = {p.node_id for p in peers.all_peers(ctx.conn)}
    no_card = [s.node_id for s in states if s.state == "no_card"]
    return InstallCheck(
        other_key=tuple(n for n in no_card if n in carded),
        no_card=tuple(n for n in no_card if n not in carded),
        unsigned=tuple(s.node_id for s in states if s.state in ("missing", "bad")),
        expired=ctx.clock.now() >= conv.valid_until,
    )


def _refuse_install(conv: Convenant, check: InstallCheck) -> None:
    problems = []
    if check.other_key:
        problems.append(
            f"the card held for {', '.join(check.other_key)} has another signing key than the "
            "convenant names"
        )
    if check.no_card:
        # A signature is checked against the key on the party's peer card: without the
        # card there is nothing to check it with (README: every party holds every card).
        problems.append(
            f"no card held for {', '.join(check.no_card)} (add each party's peer card with "
            "'vhnode peer add' first: every party needs every other party's card)"
        )
    if check.unsigned:
        problems.append(f"not signed (validly) by: {', '.join(check.unsigned)}")
    if problems:
        raise ConvenantNotInForce("; ".join(problems))
    if check.expired:
        raise ConvenantNotInForce(f"convenant {conv.id} v{conv.version} has expired")


@dataclass(frozen=True)
class PreparedInstall:
    """A convenant checked for install, with the tags of the registry in its scope
    computed beforehand (``precompute_rebuild``), outside any write transaction."""

    convenant: Convenant
    document: jws.SignedDocument
    known: EpochTags


def prepare_install(ctx: NodeContext, doc_json: Any) -> PreparedInstall:
    """Parse and check a convenant for install, and compute its tags; reads only, so a
    server runs it on a reader thread and the writer is not held for the OPRF."""
    conv, doc = parse_convenant(doc_json)
    party = conv.party(ctx.node_id)
    if party is None:
        raise NotAParty(f"this node ({ctx.node_id}) is not a party to {conv.id}")
    _refuse_install(conv, check_install(ctx, conv, doc))
    # The tags of the registry in scope before the write transaction (the OPRF over the
    # whole registry takes seconds); inside it, only keys registered since are computed.
    known = precompute_rebuild(ctx, conv) if "provider" in party.roles else EpochTags(0)
    return PreparedInstall(conv, doc, known)


def install_convenant(ctx: NodeContext, doc_json: Any) -> Convenant:
    """Install a convenant signed by every party; then publish our tag set under it."""
    return apply_install(ctx, prepare_install(ctx, doc_json))


def apply_install(
    ctx: NodeContext, prepared: PreparedInstall, *, by: str | None = None
) -> Convenant:
    """The install itself, in one transaction with its log entry and our tag set."""
    conv, doc, known = prepared.convenant, prepared.document, prepared.known
    party = conv.party(ctx.node_id)
    with tx(ctx.conn):
        # Checked again inside the write: a peer card may have changed since the check.
        _refuse_install(conv, check_install(ctx, conv, doc))
        before = convenants.latest(ctx.conn, conv.id)
        new = convenants.install(ctx.conn, doc, ctx.clock.now())
        if new:
            ctx.record(
                [
                    log_entries.convenant_installed(
                        convenant_id=conv.id,
                        version=conv.version,
                        parties=[p.node_id for p in conv.parties],
                        by=by,
                    )
                ]
            )
        newest = convenants.latest(ctx.conn, conv.id)
        is_newest = newest is not None and newest.convenant.version == conv.version
        if party is not None and "provider" in party.roles and is_newest:
            # The OPRF key is per convenant id (and key epoch, which an install does not
            # change), so the same scope gives the same tags: a renewal that leaves our
            # scope alone needs no recomputation of the registry.
            held = before.convenant.party(ctx.node_id) if before else None
            same_scope = held is not None and set(held.scope_themes) == set(party.scope_themes)
            live = oprf_epochs.live_set(ctx.conn, conv.id)
            if not (same_scope and tag_sets.head(ctx.conn, live).version > 0):
                # Same transaction: never an installed convenant with a stale or empty set.
                rebuild(ctx, conv, known=known)
    return conv


def withdraw_from_convenant(
    ctx: NodeContext, convenant_id: str, reason: str, at: datetime | None = None
) -> jws.SignedDocument:
    """Sign our withdrawal from the newest installed version of ``convenant_id`` (§5.7).

    It takes effect at ``at`` (default now), to the second, and is installed here in the
    same transaction as its log entry, so this node stops asking and answering under the
    convenant at that moment. The returned document is what the other parties install.
    """
    inst = convenants.latest(ctx.conn, convenant_id)
    if inst is None:
        raise UnknownConvenant(f"convenant {convenant_id} is not installed here")
    conv = inst.convenant
    party = conv.party(ctx.node_id)
    if party is None:
        raise NotAParty(f"this node ({ctx.node_id}) is not a party to {convenant_id}")
    if party.signing_key_fingerprint != ctx.keys.signing_fingerprint:
        raise InputError(f"the convenant names another signing key for {ctx.node_id}")
    when = (at or ctx.clock.now()).replace(microsecond=0)  # the wire holds whole seconds
    try:
        w = Withdrawal(
            convenant_id=conv.id,
            convenant_version=conv.version,
            party=ctx.node_id,
            withdrawn_at=when,
            reason=reason,
        )
    except ValueError as e:  # pydantic's ValidationError: e.g. an empty or long reason
        raise InputError(f"withdrawal: {e}") from e
    doc = sign_withdrawal(w, ctx.keys.signing)
    with tx(ctx.conn):
        convenants.add_withdrawal(ctx.conn, doc, ctx.clock.now())
        ctx.record(
            [
                log_entries.convenant_withdrawn(
                    convenant_id=conv.id,
                    version=conv.version,
                    withdrawn_at=rfc3339(w.withdrawn_at),
                    reason=reason,
                )
            ]
        )
    return doc


def install_withdrawal(
    ctx: NodeContext, doc_json: Any, *, by: str | None = None
) -> tuple[Withdrawal, bool]:
    """Install a party's signed withdrawal; (withdrawal, False) if it was installed already.

    Verified against the key the named convenant version lists for that party, which must
    be installed here: a withdrawal we cannot check must not stop anything.
    """
    w, doc = parse_withdrawal(doc_json)
    inst = convenants.get(ctx.conn, w.convenant_id, w.convenant_version)
    if inst is None:
        raise UnknownConvenant(
            f"convenant {w.convenant_id} v{w.convenant_version} is not installed here"
        )
    verify_withdrawal(w, doc, inst.convenant, _known_keys(ctx))
    with tx(ctx.conn):
        new = convenants.add_withdrawal(ctx.conn, doc, ctx.clock.now())
        if new:
            ctx.record(
                [
                    log_entries.convenant_withdrawal_installed(
                        convenant_id=w.convenant_id,
                        version=w.convenant_version,
                        party=w.party,
                        withdrawn_at=rfc3339(w.withdrawn_at),
                        by=by,
                    )
                ]
            )
    return w, new


@dataclass
class ImportReport:
    """What an import did. ``rows`` counts rows read (blank ones not); ``errors`` holds
    the refused rows and, with ``whole_row`` False, the identifiers left out of rows that
    were imported without them, in file order."""

    rows: int = 0
    upserted: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    tag_set_versions: dict[str, int] = field(default_factory=dict)

    @property
    def invalid(self) -> int:
        """Rows refused whole."""
        return sum(1 for e in self.errors if e.whole_row)

    @property
    def invalid_identifiers(self) -> int:
        """Identifiers left out of rows that were imported with their other identifiers."""
        return sum(1 for e in self.errors if not e.whole_row)

    def as_json(self, max_errors: int = 1000) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "upserted": self.upserted,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "invalid_identifiers": self.invalid_identifiers,
            "errors": [
                {
                    "line": e.line,
                    "field": e.field,
                    "refused": "row" if e.whole_row else "identifier",
                    "reason": e.reason,
                }
                for e in self.errors[:max_errors]
            ],
            "tag_set_versions": self.tag_set_versions,
        }


def import_registrations(
    ctx: NodeContext, path: Path, fmt: Literal["csv", "jsonl"] | None = None, actor: str = "import"
) -> ImportReport:
    """Stream a CSV or JSON Lines file into the registry in batches.

    Invalid rows are reported with their line number and skipped; a row with a bad
    identifier is imported with its valid ones, the bad one reported. Each batch is one
    transaction, so an interruption leaves whole batches; importing the same file again
    changes nothing.
    """
    if not path.exists():
        raise InputError(f"no such file: {path}")
    report = ImportReport()
    rows = iter_file(path, fmt, today=amsterdam_date(ctx.clock.now()))
    started = ctx.clock.now().timestamp()

    def progress(state: imports.ImportState) -> None:
        # The serving node's /metrics reads this (``vhnode_import_*``).
        imports.save(
            ctx.conn,
            imports.ImportProgress(
                state,
                started,
                ctx.clock.now().timestamp(),
                report.rows,
                report.upserted,
                report.unchanged,
                report.invalid,
                report.invalid_identifiers,
            ),
        )

    with tx(ctx.conn):
        progress("running")
    try:
        while True:
            chunk = list(islice(rows, IMPORT_BATCH))
            if not chunk:
                break
            good: dict[str, Registration] = {}
            for _line, item in chunk:
                if isinstance(item, RowError):
                    report.errors.append(item)
                    # an identifier left out is reported before its row, which counts then
                    report.rows += item.whole_row
                else:
                    report.rows += 1
                    good[item.ref] = item  # a ref repeated in one file: the last row wins
            regs = list(good.values())
            # The tags first, outside the batch's write transaction: a server on this home
            # keeps answering while the import runs (docs/architecture.md).
            prepared = prepare_changes(ctx, regs)
            with tx(ctx.conn):  # the batch and its progress, committed together
                summary = apply_changes(ctx, regs, actor=actor, prepared=prepared)
                report.upserted += summary.upserted
                report.unchanged += summary.unchanged
                progress("running")
            report.tag_set_versions.update(summary.published)
    except BaseException:
        # Stopped on an error or interrupted: say so, if the database still takes it
        # (a full disk may not); the batches committed stay, and importing the file
        # again completes it.
        with contextlib.suppress(Exception), tx(ctx.conn):
            progress("failed")
        raise
    with tx(ctx.conn):
        progress("finished")
    return report


PURGE_BATCH = 1_000
"""Registrations removed per transaction: a large purge must not hold the write lock for
long while a server on the same database answers its peers."""


def purge_expired(ctx: NodeContext, limit: int = PURGE_BATCH) -> list[str]:
    """Remove up to ``limit`` registrations past their retain_until day (UTC date of the
    node's clock), in one transaction; the caller repeats until none are left and then
    calls ``db.flush_deleted``.

    Goes through the same path as any removal: tag sets change and the log records a
    ``registry.changed`` entry with reason ``retention`` and the subjects' pseudonyms, so
    the log stays verifiable and an access request still shows the processing.
    """
    refs = registry.expired(ctx.conn, ctx.clock.now().date(), limit)
    if refs:
        apply_changes(ctx, [], refs, actor="retention", reason="retention")
    return refs


def purge_all_expired(ctx: NodeContext) -> list[str]:
    """Every registration past its retain_until day, in batches (the CLI's purge)."""
    purged: list[str] = []
    while batch := purge_expired(ctx):
        purged += batch
    if purged:
        db.flush_deleted(ctx.conn)
    return purged


def create_user(ctx: NodeContext, name: str, role: str, *, by: str | None = None) -> str:
    with tx(ctx.conn):
        token = users.create(ctx.conn, name, role, ctx.clock.now())
        ctx.record([log_entries.user_created(name=name, role=role, by=by)])
    return token


def revoke_user(ctx: NodeContext, name: str, *, by: str | None = None) -> None:
    with tx(ctx.conn):
        users.revoke(ctx.conn, name, ctx.clock.now())
        # A revoked user's web sessions end with its token (docs/webapp.md "Sessions").
        web_sessions.delete_of_user(ctx.conn, name)
        ctx.record([log_entries.user_revoked(name=name, by=by)])


def status(ctx: NodeContext) -> dict[str, Any]:
    head = log.latest_head(ctx.conn)
    provided = {}
    for inst in convenants.latest_versions(ctx.conn):
        h = tag_sets.head(ctx.conn, oprf_epochs.live_set(ctx.conn, inst.convenant.id))
        provided[inst.convenant.id] = {
            "version": inst.convenant.version,
            "tag_set_version": h.version,
            "tag_set_count": h.count,
        }
    return {
        "node_id": ctx.node_id,
        "organisation": ctx.cfg.organisation,
        "org_type": ctx.cfg.org_type,
        "signing_key_fingerprint": ctx.keys.signing_fingerprint,
        "registrations": registry.count(ctx.conn),
        "peers": [p.node_id for p in peers.all_peers(ctx.conn)],
        "convenants": provided,
        "log_size": head.tree_size if head else 0,
    }


def peer_state(peer: peers.Peer, now: datetime) -> str:
    """``revoked``, ``active``, ``not yet valid`` or ``expired``: what the card held is
    worth now (``vhnode peer list``, the web application's partner page)."""
    if peer.revoked_at:
        return "revoked"
    if peer.card.valid_at(now):
        return "active"
    return "not yet valid" if now < peer.card.valid_from else "expired"


@dataclass(frozen=True)
class DatabaseSize:
    """The database as SQLite counts it: ``max_page_count`` applies to ``used_bytes``
    (pages, free ones included); the write-ahead log is on disk beside it."""

    used_bytes: int
    free_bytes: int
    wal_bytes: int
    max_bytes: int | None


def database_size(ctx: NodeContext) -> DatabaseSize:
    page_size = int(ctx.conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(ctx.conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(ctx.conn.execute("PRAGMA freelist_count").fetchone()[0])
    wal = ctx.home / (DB_FILE + "-wal")
    max_mib = ctx.cfg.database.max_size_mib
    return DatabaseSize(
        used_bytes=pages * page_size,
        free_bytes=free * page_size,
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
        max_bytes=max_mib * 1024 * 1024 if max_mib is not None else None,
    )


# Entries looked at, newest first, for the last change of the registry that was not the
# retention purge: a purge runs in batches, so a few hundred entries are plenty.
_REGISTRY_LOOKBACK = 500


def last_registry_change(ctx: NodeContext) -> dict[str, Any] | None:
    """The newest ``registry.changed`` entry of an import or a source system (not of the
    retention purge): when, by whom (``import`` for ``vhnode registry import``, else
    the source system's user) and its counts. The log is the record of imports: each
    batch of an import is one such entry (docs/protocol.md §9.1), so no other is kept."""
    for entry in log.newest_of_kind(ctx.conn, LogKind.REGISTRY_CHANGED, _REGISTRY_LOOKBACK):
        if entry.get("reason") != "retention":
            data = entry.get("data") or {}
            return {
                "time": entry.get("time"),
                "actor": entry.get("actor"),
                **{k: data.get(k, 0) for k in ("upserted", "removed", "unchanged")},
            }
    return None


def verify_report_json(report: log.VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "entries": report.entries,
        "heads": report.heads,
        "problems": [{"seq": p.seq, "kind": p.kind, "detail": p.detail} for p in report.problems],
    }
