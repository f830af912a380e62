"""Ground truth: what each partner registered in scope, what every query must answer."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from node.demo.partners import NO_QUERY_RIGHT, PURPOSE_VEELPLEGERS
from node.demo.synthetic import RegistryEntry
from node.protocol.identifiers import BsnIdentifier, PersonIdentifier

Address = tuple[str, int, str | None]
SubjectKind = Literal["bsn", "person", "address"]


@dataclass(frozen=True)
class DemoSubject:
    """One subject of a query: what is typed in the body, and who or what it is."""

    label: str
    wire: dict[str, Any]
    kind: SubjectKind
    pid: int | None = None
    address: Address | None = None


@dataclass
class GroundTruth:
    """Per partner, what it registered under a theme inside its convenant scope.

    Built from the generator's records (``RegistryEntry.pid`` / ``.address`` and the kinds
    of identifiers each registration carries), not from subject keys or tags.
    """

    bsn: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    person: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    address: dict[str, set[Address]] = field(default_factory=lambda: defaultdict(set))
    registered: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    out_of_scope_bsn: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    out_of_scope_themes: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)
    in_scope_count: dict[str, int] = field(default_factory=Counter)

    @classmethod
    def build(
        cls,
        registries: Mapping[str, Sequence[RegistryEntry]],
        scopes: Mapping[str, Sequence[str]],
    ) -> GroundTruth:
        truth = cls()
        for partner, entries in registries.items():
            scope = set(scopes[partner])
            for e in entries:
                reg = e.registration
                has_bsn = any(isinstance(i, BsnIdentifier) for i in reg.identifiers)
                has_person = any(isinstance(i, PersonIdentifier) for i in reg.identifiers)
                if e.pid is not None:
                    truth.registered[partner].add(e.pid)
                if scope.isdisjoint(reg.themes):
                    if e.pid is not None and has_bsn:
                        truth.out_of_scope_bsn[partner].add(e.pid)
                        truth.out_of_scope_themes[(partner, e.pid)] = reg.themes
                    continue
                truth.in_scope_count[partner] += 1
                if e.pid is not None and has_bsn:
                    truth.bsn[partner].add(e.pid)
                if e.pid is not None and has_person:
                    truth.person[partner].add(e.pid)
                if e.address is not None:
                    truth.address[partner].add(e.address)
        return truth

    def knows(self, partner: str, s: DemoSubject) -> bool:
        if s.kind == "bsn":
            return s.pid in self.bsn[partner]
        if s.kind == "person":
            return s.pid in self.person[partner]
        return s.address in self.address[partner]

    def in_scope_anywhere(self, pid: int) -> bool:
        return any(pid in pids for pids in (*self.bsn.values(), *self.person.values()))


@dataclass(frozen=True)
class DemoQuery:
    name: str
    description: str
    subjects: tuple[DemoSubject, ...]
    purpose: str = PURPOSE_VEELPLEGERS
    refused: bool = False  # every partner must answer a signed refusal (no_query_right)
    down: frozenset[str] = frozenset()  # partners stopped before asking: unreachable

    def expected(self, truth: GroundTruth, partners: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for partner in partners:
            if self.refused:
                out[partner] = ["refused"] * len(self.subjects)
            elif partner in self.down:
                out[partner] = ["unreachable"] * len(self.subjects)
            else:
                out[partner] = [
                    "hit" if truth.knows(partner, s) else "no_hit" for s in self.subjects
                ]
        return out


def partner_agrees(query: DemoQuery, expected: Sequence[str], answer: Mapping[str, Any]) -> bool:
    if list(answer.get("subjects", [])) != list(expected):
        return False
    if query.refused:
        return answer.get("status") == "refused" and answer.get("reason") == NO_QUERY_RIGHT
    if answer.get("partner") in query.down:
        return answer.get("status") == "unreachable"
    return answer.get("status") == ("hit" if "hit" in expected else "no_hit")


def result_agrees(
    query: DemoQuery, expected: Mapping[str, Sequence[str]], result: Mapping[str, Any]
) -> bool:
    answers = {p.get("partner"): p for p in result.get("partners", [])}
    if set(answers) != set(expected) or len(answers) != len(result.get("partners", [])):
        return False
    return all(partner_agrees(query, expected[k], answers[k]) for k in expected)
