"""Keeping this node's published tag sets in step with its registry (docs/protocol.md §6.4).

A registration is in scope of a convenant when one of its themes is among the scope
themes the convenant gives this node; each of its subject keys then yields one tag. A
batch of registry changes becomes at most one new tag-set version per convenant, written
in the same transaction as the registry change and its log entries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from node.flows import log_entries
from node.flows.context import NodeContext
from node.protocol import oprf
from node.protocol.convenant import Convenant
from node.protocol.jws import b64u_encode
from node.protocol.models import rfc3339
from node.protocol.registration import Registration
from node.protocol.tag_set import tag_from_output
from node.store import log, oprf_epochs, registry, tag_sets
from node.store.db import tx
from node.store.registry import Stored


@dataclass(frozen=True)
class Scope:
    convenant_id: str
    themes: frozenset[str]


def provider_scopes(ctx: NodeContext) -> list[Scope]:
    """Convenants whose tag sets this node maintains: newest installed version of each,
    where it is a provider, until the convenant expires.

    Not only those in force now: a convenant installed before its ``valid_from`` must
    have a current tag set the moment it comes into force. Installed documents were fully
    signed when installed; answering still checks "in force" per request (§7.1).
    """
    now = ctx.clock.now()
    out = []
    for versions in ctx.trust().convenants.values():
        inst = versions[0]
        party = inst.convenant.party(ctx.node_id)
        if party is None or "provider" not in party.roles or now >= inst.convenant.valid_until:
            continue
        out.append(Scope(inst.convenant.id, frozenset(party.scope_themes)))
    return out


@dataclass(frozen=True)
class EpochTags:
    """Subject key → tag under a convenant's key of one epoch (§6.1.1), computed before a
    write transaction: the OPRF is the costly part of a registry change, and the write
    lock must not wait for it. Used only if the epoch is still current in that
    transaction: a key change in between makes them another key's tags."""

    epoch: int
    tags: dict[str, bytes] = field(default_factory=dict)

    def usable(self, epoch: int) -> Mapping[str, bytes] | None:
        return self.tags if epoch == self.epoch else None


KnownTags = dict[str, EpochTags]
"""Convenant id → the tags computed for it beforehand."""


@dataclass(frozen=True)
class Prepared:
    """What ``apply_changes`` would compute about a batch, computed before its write
    transaction (``prepare_changes``): each registration's subject keys and fingerprint
    (name normalisation is costly) and the tags of those that changed."""

    keys: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    """ref → (subject keys, fingerprint)."""
    tags: KnownTags = field(default_factory=dict)


def tags_for(
    ctx: NodeContext,
    convenant_id: str,
    epoch: int,
    subject_keys: Sequence[str],
    known: Mapping[str, bytes] | None = None,
) -> list[bytes]:
    """The tag of each subject key under the convenant's OPRF key of ``epoch``; ``known``
    ones (of the same epoch) are taken as they are (a tag is a function of the key and
    the epoch alone: computing it early is safe)."""
    known = known or {}
    missing = [k for k in subject_keys if k not in known]
    computed: dict[str, bytes] = {}
    if missing:
        sk, _ = ctx.oprf_key(convenant_id, epoch)
        outputs = oprf.evaluate(sk, [k.encode() for k in missing])
        computed = dict(zip(missing, (tag_from_output(o) for o in outputs), strict=True))
    return [known[k] if k in known else computed[k] for k in subject_keys]


def prepare_changes(ctx: NodeContext, upserts: Sequence[Registration]) -> Prepared:
    """Before the write transaction of ``apply_changes`` (a read; no lock held): keys and
    fingerprints of ``upserts``, and per convenant the tags of the keys of those that
    differ from the stored ones and are in its scope."""
    refs = Counter(r.ref for r in upserts)
    # A ref given twice in one batch is left to apply_changes: which version a
    # precomputed entry belongs to would be ambiguous.
    once = [r for r in upserts if refs[r.ref] == 1]
    keys = {r.ref: (k := r.subject_keys(), r.fingerprint(k)) for r in once}
    scopes = provider_scopes(ctx)
    if not scopes or not once:
        return Prepared(keys)
    stored = registry.fingerprints(ctx.conn, list(keys))
    changed = [r for r in once if stored.get(r.ref) != keys[r.ref][1]]
    tags: KnownTags = {}
    for scope in scopes:
        wanted = sorted({k for r in changed if _in_scope(r.themes, scope) for k in keys[r.ref][0]})
        epoch = oprf_epochs.current(ctx.conn, scope.convenant_id).epoch
        tags[scope.convenant_id] = EpochTags(
            epoch, dict(zip(wanted, tags_for(ctx, scope.convenant_id, epoch, wanted), strict=True))
        )
    return Prepared(keys, tags)


def precompute_rebuild(ctx: NodeContext, conv: Convenant) -> EpochTags:
    """Before a convenant's install: the tags of every subject key in its scope as the
    registry reads now (no lock held). ``rebuild`` computes only what changed since."""
    keys = sorted(_wanted(ctx, conv))
    epoch = oprf_epochs.current(ctx.conn, conv.id).epoch
    out: dict[str, bytes] = {}
    for i in range(0, len(keys), 5000):
        chunk = keys[i : i + 5000]
        out.update(zip(chunk, tags_for(ctx, conv.id, epoch, chunk), strict=True))
    return EpochTags(epoch, out)


def _wanted(ctx: NodeContext, conv: Convenant) -> Counter[str]:
    party = conv.party(ctx.node_id)
    themes = frozenset(party.scope_themes) if party and "provider" in party.roles else frozenset()
    wanted: Counter[str] = Counter()
    for stored in registry.iter_all(ctx.conn):
        if not themes.isdisjoint(stored.themes):
            wanted.update(stored.subject_keys)
    return wanted


@dataclass
class ChangeSummary:
    upserted: int = 0
    unchanged: int = 0
    removed: int = 0
    published: dict[str, int] = field(default_factory=dict)  # convenant id → new version


def _in_scope(themes: Iterable[str], scope: Scope) -> bool:
    return not scope.themes.isdisjoint(themes)


def apply_changes(
    ctx: NodeContext,
    upserts: Sequence[Registration],
    removals: Sequence[str] = (),
    actor: str | None = None,
    reason: str | None = None,
    prepared: Prepared | None = None,
) -> ChangeSummary:
    """Write registry changes, the tag-set versions they cause and their log entries.

    One transaction: either all of it is stored or none of it. ``prepared``
    (``prepare_changes``) spares the transaction the key normalisation and the OPRF work;
    what it lacks (an old version's keys, a registration changed since) is computed here.
    """
    summary = ChangeSummary()
    scopes = provider_scopes(ctx)
    now = ctx.clock.now()
    ref_deltas: dict[str, Counter[str]] = {s.convenant_id: Counter() for s in scopes}
    # The next key epoch's set, while it is being built (§6.1.1): a change to a
    # registration it already holds (ref up to its cursor) is made there too; one it does
    # not hold yet is read by the build when it gets there.
    epochs: dict[str, oprf_epochs.Epoch] = {}
    staged_deltas: dict[str, Counter[str]] = {}

    def account(
        ref: str,
        before: Stored | None,
        after_themes: tuple[str, ...],
        after_keys: tuple[str, ...],
    ) -> None:
        for scope in scopes:
            cid = scope.convenant_id
            cursor = epochs[cid].staging_cursor
            staged = staged_deltas[cid] if cursor is not None and ref <= cursor else None
            for c in (ref_deltas[cid], staged):
                if c is None:
                    continue
                if before is not None and _in_scope(before.themes, scope):
                    c.subtract(before.subject_keys)
                if _in_scope(after_themes, scope):
                    c.update(after_keys)

    # Subject keys of every registration this batch changed, old and new identifiers
    # alike: the registry.changed entry carries their pseudonyms, so an access request at
    # this (provider) node finds when the person's registration was written or removed.
    concerned: set[str] = set()
    conn = ctx.conn
    with tx(conn):
        for scope in scopes:
            epochs[scope.convenant_id] = oprf_epochs.current(conn, scope.convenant_id)
            staged_deltas[scope.convenant_id] = Counter()
        for reg in upserts:
            ready = prepared.keys.get(reg.ref) if prepared else None
            if ready is None:
                keys = reg.subject_keys()
                ready = keys, reg.fingerprint(keys)
            keys, fingerprint = ready
            before = registry.upsert(conn, reg, keys, fingerprint, now)
            if before is not None and before.fingerprint == fingerprint:
                summary.unchanged += 1
                continue
            summary.upserted += 1
            account(reg.ref, before, reg.themes, keys)
            concerned.update(keys)
            if before is not None:
                concerned.update(before.subject_keys)
        for ref in removals:
            before = registry.remove(conn, ref)
            if before is not None:
                summary.removed += 1
                account(ref, before, (), ())
                concerned.update(before.subject_keys)
        entries: list[log.LogEntry] = []
        for scope in scopes:
            cid = scope.convenant_id
            epoch = epochs[cid]
            early = prepared.tags.get(cid) if prepared else None
            entered, left = _change_set(
                ctx,
                cid,
                epoch.epoch,
                epoch.live_set,
                ref_deltas[cid],
                early.usable(epoch.epoch) if early else None,
            )
            if entered or left:
                head = tag_sets.publish(conn, epoch.live_set, entered, left, now)
                summary.published[cid] = head.version
                entries.append(_published(cid, None, head, entered, left, actor))
            if epoch.staging_cursor is not None:
                # Not published: the next epoch's set is published whole at the switch.
                _change_set(ctx, cid, epoch.epoch + 1, epoch.next_set, staged_deltas[cid])
        if summary.upserted or summary.removed:
            entries.insert(
                0,
                log_entries.registry_changed(
                    actor=actor,
                    subjects=_pseudonyms(ctx, concerned),
                    reason=reason,
                    upserted=summary.upserted,
                    removed=summary.removed,
                    unchanged=summary.unchanged,
                ),
            )
        if entries:
            ctx.record(entries, now)
    return summary


def _change_set(
    ctx: NodeContext,
    convenant_id: str,
    epoch: int,
    set_id: str,
    ref_deltas: Mapping[str, int],
    known: Mapping[str, bytes] | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """Apply subject-key reference changes to one epoch's set (members and key index);
    the tags that entered and left it. Inside the caller's transaction."""
    key_deltas = {k: d for k, d in ref_deltas.items() if d}
    if not key_deltas:
        return [], []
    subject_keys = sorted(key_deltas)
    tags = tags_for(ctx, convenant_id, epoch, subject_keys, known)
    tag_deltas: Counter[bytes] = Counter()
    for key, tag in zip(subject_keys, tags, strict=True):
        tag_deltas[tag] += key_deltas[key]
    entered, left = tag_sets.change_refs(ctx.conn, set_id, dict(tag_deltas))
    key_of = dict(zip(tags, subject_keys, strict=True))
    tag_sets.index_keys(ctx.conn, set_id, {t: key_of[t] for t in entered}, left)
    return entered, left


def _pseudonyms(ctx: NodeContext, subject_keys: Iterable[str]) -> tuple[str, ...]:
    """Log pseudonyms of ``subject_keys``, sorted: the order then says nothing about which
    registration or row of the import a subject came from (one HMAC each, ~1 µs)."""
    key = ctx.keys.pseudonym_key()
    return tuple(sorted(log.pseudonym(key, k) for k in subject_keys))


def _published(
    convenant_id: str,
    convenant_version: int | None,
    head: tag_sets.Head,
    entered: Sequence[bytes],
    left: Sequence[bytes],
    actor: str | None,
) -> log.LogEntry:
    return log_entries.tag_set_published(
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        actor=actor,
        version=head.version,
        count=head.count,
        added=len(entered),
        removed=len(left),
    )


def rebuild(
    ctx: NodeContext,
    conv: Convenant,
    actor: str | None = None,
    known: EpochTags | None = None,
) -> int | None:
    """Recompute one convenant's tag set from the whole registry; publishes a version only
    if membership changed (or none was published yet). Returns the new version or None.

    Runs inside the caller's transaction, so a convenant's installation and its first tag
    set commit together: there is no moment at which the node answers under an installed
    convenant with an empty set. The registry is read inside the same transaction, so no
    concurrent registry change can slip between reading and publishing. ``known`` tags
    (``precompute_rebuild``, outside the transaction) leave only the keys added since to
    compute here.
    """
    now = ctx.clock.now()
    # The key schedule of a convenant starts with its first set (§6.1.1).
    current = oprf_epochs.start_schedule(ctx.conn, conv.id, now)
    epoch, live = current.epoch, current.live_set
    if current.staging_cursor is not None:
        # A next epoch's set under way was built for the old scope: start it again later.
        oprf_epochs.set_staging(ctx.conn, conv.id, None)
    early = known.usable(epoch) if known else None
    wanted = _wanted(ctx, conv)
    keys = sorted(wanted)
    target: Counter[bytes] = Counter()
    key_of: dict[bytes, str] = {}
    for i in range(0, len(keys), 5000):
        chunk = keys[i : i + 5000]
        for key, tag in zip(chunk, tags_for(ctx, conv.id, epoch, chunk, early), strict=True):
            target[tag] += wanted[key]
            key_of[tag] = key
    held = {
        row[0]: row[1]
        for row in ctx.conn.execute(
            "SELECT tag, refs FROM tag_set_members WHERE convenant_id = ?", (live,)
        )
    }
    deltas = {t: target.get(t, 0) - held.get(t, 0) for t in set(target) | set(held)}
    entered, left = tag_sets.change_refs(ctx.conn, live, deltas)
    # Every member's key, not only those that entered: this also completes the index of
    # a database from before it existed (§14.3 step 5).
    ctx.conn.execute("DELETE FROM tag_keys WHERE convenant_id = ?", (live,))
    tag_sets.index_keys(ctx.conn, live, key_of, ())
    if not entered and not left and tag_sets.head(ctx.conn, live).version > 0:
        return None
    head = tag_sets.publish(ctx.conn, live, entered, left, now)
    ctx.record([_published(conv.id, conv.version, head, entered, left, actor)], now)
    return head.version


def begin_epoch(
    ctx: NodeContext, conv: Convenant, epoch: int
) -> Literal["started", "busy", "stale", "purged"]:
    """One step towards building the set of ``epoch`` (§6.1.1), in the caller's
    transaction: ``"stale"`` when the current epoch is not the one before, ``"busy"``
    when a build is under way; otherwise a batch of what an interrupted build left is
    deleted (``"purged"``: call again) or, once there is none, the build starts."""
    current = oprf_epochs.current(ctx.conn, conv.id)
    if current.epoch != epoch - 1:
        return "stale"
    if current.staging_cursor is not None:
        return "busy"
    if tag_sets.purge_batch(ctx.conn, current.next_set):
        return "purged"
    oprf_epochs.set_staging(ctx.conn, conv.id, "")
    return "started"


def stage_chunk(
    ctx: NodeContext, conv: Convenant, epoch: int, after_ref: str, upto_ref: str, known: EpochTags
) -> bool:
    """Add the registrations ``after_ref < ref <= upto_ref`` to the set of ``epoch`` under
    construction, as they read in this transaction; ``known`` tags (computed beforehand,
    off the lock) spare the OPRF of all but the keys changed since. False when the build
    was stopped or moved on meanwhile (a rebuild, another pass)."""
    current = oprf_epochs.current(ctx.conn, conv.id)
    if current.epoch != epoch - 1 or current.staging_cursor != after_ref:
        return False
    themes = _provider_themes(ctx, conv)
    keys: Counter[str] = Counter()
    for stored in registry.after(ctx.conn, after_ref, 1 << 30, upto=upto_ref):
        if not themes.isdisjoint(stored.themes):
            keys.update(stored.subject_keys)
    _change_set(ctx, conv.id, epoch, current.next_set, keys, known.usable(epoch))
    oprf_epochs.set_staging(ctx.conn, conv.id, upto_ref)
    return True


def finish_epoch(ctx: NodeContext, conv: Convenant, epoch: int) -> tag_sets.Head | None:
    """Publish the built set of ``epoch`` as the next version and make it the one every
    answer uses (§6.1.1), in the caller's transaction; None when no build of ``epoch``
    is under way. Registrations added past the build's cursor since its last chunk are
    added here; the previous epoch's set stays for the overlap's hit proofs."""
    current = oprf_epochs.current(ctx.conn, conv.id)
    if current.epoch != epoch - 1 or current.staging_cursor is None:
        return None
    themes = _provider_themes(ctx, conv)
    keys: Counter[str] = Counter()
    cursor = current.staging_cursor
    while rest := registry.after(ctx.conn, cursor, 5000):
        for stored in rest:
            if not themes.isdisjoint(stored.themes):
                keys.update(stored.subject_keys)
        cursor = rest[-1].ref
    _change_set(ctx, conv.id, epoch, current.next_set, keys)
    now = ctx.clock.now()
    old = tag_sets.head(ctx.conn, current.live_set)
    head = tag_sets.publish_whole(ctx.conn, current.next_set, old.version + 1, now)
    previous_until = now + timedelta(hours=ctx.cfg.oprf.overlap_hours)
    oprf_epochs.switch(ctx.conn, conv.id, epoch, now, head.version, previous_until)
    _, pk = ctx.oprf_key(conv.id, epoch)
    ctx.record(
        [
            log_entries.tag_set_published(
                convenant_id=conv.id,
                convenant_version=conv.version,
                actor=None,
                version=head.version,
                count=head.count,
                added=head.count,
                removed=old.count,
            ),
            log_entries.tag_set_epoch_started(
                convenant_id=conv.id,
                epoch=epoch,
                oprf_public_key=b64u_encode(pk),
                version=head.version,
                previous_until=rfc3339(previous_until),
            ),
        ],
        now,
    )
    return head


def _provider_themes(ctx: NodeContext, conv: Convenant) -> frozenset[str]:
    party = conv.party(ctx.node_id)
    return frozenset(party.scope_themes) if party and "provider" in party.roles else frozenset()
