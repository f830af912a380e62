"""``vhnode demo``: a whole Veiligheidshuis federation on this machine, checked end to end.

Seven nodes (the Veiligheidshuis office and six partners) are initialised in their own
homes, exchange peer cards, sign and install one convenant, import thousands of synthetic
registrations through the real import path, and run as separate ``python -m node serve``
processes on loopback. The coordinator then asks bekendheid through the Veiligheidshuis
node's HTTP API, and every per-partner, per-subject answer is compared with the ground
truth of the synthetic data: which person ids and addresses each partner registered
under a theme inside its convenant scope. That truth is computed from the generator's
records, never by the node's own matching code, so a matching bug shows as a ✗.

Afterwards every node's log is verified offline (``node.store.log.verify`` on each
home's database, against the key in the node's peer card). Processes are stopped with
SIGTERM (SIGKILL after a deadline) in a ``finally``, on success, error and Ctrl-C alike.

The output (table or ``--json``) is described in docs/demo.md.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import click

from node import admin
from node.config import DB_FILE, NodeConfig
from node.context import NodeContext, open_node
from node.errors import VhnodeError
from node.identifiers import BsnIdentifier, PersonIdentifier
from node.protocol.peer_card import verify_card
from node.store import log
from node.synthetic import (
    REFERENCE_DATE,
    THEMES_BY_ORG_TYPE,
    Person,
    RegistryEntry,
    make_population,
    make_registry,
    name_variants,
)

__all__ = [
    "CONVENANT_ID",
    "COORDINATOR_NODE",
    "DOWN_PARTNER",
    "PARTNERS",
    "DemoError",
    "GroundTruth",
    "PartnerSpec",
    "convenant_toml",
    "demo",
    "run_demo",
    "serve_command",
]

CONVENANT_ID = "zwb-casusoverleg-demo"
PURPOSE_VEELPLEGERS = "casusoverleg-veelplegers"
PURPOSE_HUISELIJK_GEWELD = "casusoverleg-huiselijk-geweld"
PURPOSE_JEUGD = "casusoverleg-jeugd"  # in the convenant, but no party may ask for it
NO_QUERY_RIGHT = "no_query_right"

COORDINATOR_NODE = "vh-zwb"
COORDINATOR_USER = "coordinator-vh-zwb"
DOWN_PARTNER = "ggz-zwb"

HEALTH_DEADLINE_SECONDS = 30.0
STOP_DEADLINE_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05

Address = tuple[str, int, str | None]
SubjectKind = Literal["bsn", "person", "address"]


@dataclass(frozen=True)
class PartnerSpec:
    """One party of the demo convenant.

    ``excluded_theme`` is the one theme of the org type's registry that the convenant
    leaves out of scope, so some of the partner's registrations are invisible to
    bekendheid. ``core``: the "known to several partners" candidates are registered here.
    """

    node_id: str
    org_type: str
    organisation: str
    excluded_theme: str | None
    query_purposes: tuple[str, ...] = ()
    core: bool = True

    @property
    def scope_themes(self) -> tuple[str, ...]:
        return tuple(t for t in THEMES_BY_ORG_TYPE[self.org_type] if t != self.excluded_theme)


PARTNERS: tuple[PartnerSpec, ...] = (
    # The Veiligheidshuis registers one theme only ("casus"), so nothing is left out.
    PartnerSpec("vh-zwb", "veiligheidshuis", "Zorg- en Veiligheidshuis Regio Breda", None,
                (PURPOSE_VEELPLEGERS, PURPOSE_HUISELIJK_GEWELD)),
    PartnerSpec("politie-zwb", "politie", "Politie Eenheid Zeeland-West-Brabant", "hennep"),
    PartnerSpec("om-zwb", "om", "Openbaar Ministerie, Arrondissementsparket Zeeland-West-Brabant",
                "jeugd"),
    PartnerSpec("reclassering-zwb", "reclassering",
                "Reclassering Nederland, regio Zeeland-West-Brabant", "huiselijk_geweld",
                (PURPOSE_VEELPLEGERS,)),
    PartnerSpec("ggz-zwb", "ggz", "GGZ Breburg", "verslaving"),
    PartnerSpec("gemeente-breda", "gemeente", "Gemeente Breda, afdeling Veiligheid", "schuldhulp"),
    PartnerSpec("woningcorporatie-breda", "woningcorporatie", "WonenBreburg", "hennep",
                core=False),
)  # fmt: skip

# Tussenvoegsels that people abbreviate ("v.d. Berg"): the name query types one that way.
_ABBREVIABLE = frozenset({"van der", "van den", "van de", "van"})


class DemoError(VhnodeError):
    """The demo could not run: a node failed to start, the API answered an error, ..."""

    code = "demo_failed"


# --- the convenant ----------------------------------------------------------------------


def convenant_toml(partners: Sequence[PartnerSpec], now: datetime) -> str:
    """The convenant source (same shape as config/convenant.example.toml)."""
    valid_from = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    valid_until = (now + timedelta(days=2 * 365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = textwrap.dedent(f'''\
        id = "{CONVENANT_ID}"
        version = 1
        title = "Convenant Zorg- en Veiligheidshuis Zeeland-West-Brabant (demo)"
        legal_basis = """
        Taak van algemeen belang (artikel 6, eerste lid, onder e, AVG): het voorkomen en \\
        terugdringen van recidive van veelplegers en van huiselijk geweld door een \\
        afgestemde aanpak per persoon of gezin; artikel 20 Wet politiegegevens; artikel 39f \\
        Wet justitiële en strafvorderlijke gegevens. Uitgewisseld wordt alleen bekendheid \\
        binnen de reikwijdte van dit convenant.\\
        """
        valid_from = {valid_from}
        valid_until = {valid_until}

        [[purposes]]
        id = "{PURPOSE_VEELPLEGERS}"
        description = "Voorbereiding casusoverleg veelplegers: welke partners kennen de persoon?"

        [[purposes]]
        id = "{PURPOSE_HUISELIJK_GEWELD}"
        description = "Voorbereiding casusoverleg huiselijk geweld: welke partners kennen het gezin of het adres?"

        [[purposes]]
        id = "{PURPOSE_JEUGD}"
        description = "Justitieel casusoverleg jeugd. Geen partij heeft hiervoor een vraagrecht."
        ''')  # noqa: E501 - TOML text
    for p in partners:
        roles = ['"provider"'] + (['"requester"'] if p.query_purposes else [])
        purposes = ", ".join(f'"{q}"' for q in p.query_purposes)
        themes = ", ".join(f'"{t}"' for t in p.scope_themes)
        out += textwrap.dedent(f"""
            [[parties]]
            node_id = "{p.node_id}"
            roles = [{", ".join(roles)}]
            query_purposes = [{purposes}]
            scope_themes = [{themes}]
            """)
    return out


# --- ground truth -----------------------------------------------------------------------


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


# --- synthetic data and the scenario ----------------------------------------------------


def _age(p: Person) -> int:
    b = p.birth_date
    before_birthday = (REFERENCE_DATE.month, REFERENCE_DATE.day) < (b.month, b.day)
    return REFERENCE_DATE.year - b.year - before_birthday


def _core_candidates(population: Sequence[Person], rng: random.Random, n: int = 3) -> list[Person]:
    """Adults in a household of 3+, whose birth date no one else in the population shares
    (so a name+date-of-birth question cannot match anybody else) and, preferably, whose
    tussenvoegsel people abbreviate."""
    households = Counter(p.family_id for p in population)
    birthdays = Counter(p.birth_date for p in population)
    order = list(population)
    rng.shuffle(order)
    rules: list[Callable[[Person], bool]] = [
        lambda p: p.tussenvoegsel in _ABBREVIABLE and households[p.family_id] >= 3,
        lambda p: households[p.family_id] >= 3,
        lambda p: True,
    ]
    chosen: list[Person] = []
    for rule in rules:
        for p in order:
            if len(chosen) == n:
                return chosen
            if p not in chosen and _age(p) >= 18 and birthdays[p.birth_date] == 1 and rule(p):
                chosen.append(p)
    if not chosen:
        raise DemoError("no person with a unique birth date; use more subjects per partner")
    return chosen


def _bsn_subject(p: Person, role: str | None = None) -> DemoSubject:
    label = f"BSN {p.bsn} ({p.display_name}, {p.birth_date.isoformat()}"
    label += f", {role})" if role else ")"
    return DemoSubject(label, {"kind": "bsn", "bsn": p.bsn}, "bsn", pid=p.pid)


def _typed_differently(p: Person) -> DemoSubject:
    """The person as a colleague would type them: "J. v.d. Berg", born "31-01-1990".

    Built from :func:`name_variants` forms (the abbreviated tussenvoegsel and the
    initials), with the date of birth written day-month-year.
    """
    variants = name_variants(p)
    abbreviated = [v for v in variants if v.tussenvoegsel is None and "." in v.surname]
    initials = [v for v in variants if v.surname == p.surname and v.first_names.endswith(".")]
    if abbreviated:
        surname, tussenvoegsel = abbreviated[0].surname, None
    else:
        surname, tussenvoegsel = p.surname, p.tussenvoegsel
    first = initials[0].first_names if initials else p.first_names
    dob = p.birth_date.strftime("%d-%m-%Y")
    wire = {
        "kind": "person",
        "surname": surname,
        "tussenvoegsel": tussenvoegsel,
        "first_names": first,
        "birth_date": dob,
    }
    typed = " ".join(x for x in (first, tussenvoegsel, surname) if x)
    return DemoSubject(f'"{typed}", born {dob}', wire, "person", pid=p.pid)


def _address_subject(addr: Address, who: Person | None) -> DemoSubject:
    postcode, number, addition = addr
    # typed with a space in the postcode and a lower-case addition
    wire = {
        "kind": "address",
        "postcode": f"{postcode[:4]} {postcode[4:]}",
        "house_number": number,
        "addition": addition.lower() if addition else None,
    }
    where = f"{who.street} {number}{addition or ''}, {who.city}" if who else ""
    label = f"{postcode[:4]} {postcode[4:]} {number}{(' ' + addition.lower()) if addition else ''}"
    return DemoSubject(f"{label} ({where})" if where else label, wire, "address", address=addr)


@dataclass
class Scenario:
    population: list[Person]
    registries: dict[str, list[RegistryEntry]]
    truth: GroundTruth
    queries: list[DemoQuery]


def build_scenario(subjects_per_partner: int, seed: int) -> Scenario:
    """Population, one registry per partner, ground truth, and the example queries."""
    rng = random.Random(seed)
    n = subjects_per_partner
    population = make_population(max(5 * n, 1000), rng)
    candidates = _core_candidates(population, rng)
    registries = {
        p.node_id: make_registry(p.org_type, population, rng, n, candidates if p.core else ())
        for p in PARTNERS
    }
    truth = GroundTruth.build(registries, {p.node_id: p.scope_themes for p in PARTNERS})
    ids = [p.node_id for p in PARTNERS]

    def reach(person: Person) -> tuple[int, int]:
        return (
            sum(person.pid in truth.bsn[k] for k in ids),
            sum(person.pid in truth.person[k] for k in ids),
        )

    several = max(candidates, key=reach)
    by_pid = {p.pid: p for p in population}
    by_address: dict[Address, Person] = {}
    for p in population:
        by_address.setdefault(p.address, p)
    anywhere = set().union(*truth.registered.values())
    order = list(population)
    rng.shuffle(order)

    queries: list[DemoQuery] = []
    hits = [k for k in ids if several.pid in truth.bsn[k]]
    queries.append(
        DemoQuery(
            "known-to-several",
            f"a person known to several partners ({len(hits)} in scope), asked by BSN",
            (_bsn_subject(several),),
        )
    )
    queries.append(
        DemoQuery(
            "name-variant",
            "the same person by name and date of birth, typed differently; a hit wherever a "
            "partner registered name+dob in scope",
            (_typed_differently(several),),
        )
    )
    nobody = next(p for p in order if p.pid not in anywhere and _age(p) >= 18)
    queries.append(
        DemoQuery("known-to-none", "a person no partner has registered", (_bsn_subject(nobody),))
    )
    family = sorted(
        (p for p in population if p.family_id == several.family_id), key=lambda p: p.birth_date
    )
    queries.append(
        DemoQuery(
            "family",
            f"a household of {len(family)} in one signed round (huiselijk geweld)",
            tuple(
                _bsn_subject(
                    p, "the person of a." if p is several else "adult" if _age(p) >= 18 else "child"
                )
                for p in family
            ),
            purpose=PURPOSE_HUISELIJK_GEWELD,
        )
    )
    queries.append(_address_query(truth, by_address, several, rng))
    hidden = _out_of_scope_query(truth, ids, by_pid, order)
    if hidden is not None:
        queries.append(hidden)
    queries.append(
        DemoQuery(
            "refused-purpose",
            f"purpose {PURPOSE_JEUGD}: in the convenant, but no party may ask it — every "
            "partner answers a signed refusal",
            (_bsn_subject(several),),
            purpose=PURPOSE_JEUGD,
            refused=True,
        )
    )
    queries.append(
        DemoQuery(
            "partner-down",
            f"{DOWN_PARTNER} is stopped first: it must be reported unreachable, never no_hit",
            (_bsn_subject(several),),
            down=frozenset({DOWN_PARTNER}),
        )
    )
    return Scenario(population, registries, truth, queries)


def _address_query(
    truth: GroundTruth, by_address: Mapping[Address, Person], several: Person, rng: random.Random
) -> DemoQuery:
    corporation = "woningcorporatie-breda"
    municipality = "gemeente-breda"
    both = sorted(
        truth.address[corporation] & truth.address[municipality],
        key=lambda a: (a[0], a[1], a[2] or ""),
    )
    either = sorted(
        truth.address[corporation] | truth.address[municipality],
        key=lambda a: (a[0], a[1], a[2] or ""),
    )
    addr = rng.choice(both) if both else rng.choice(either) if either else several.address
    return DemoQuery(
        "address",
        "an address (woonoverlast / huiselijk geweld): registered by the housing "
        "corporation and/or the municipality",
        (_address_subject(addr, by_address.get(addr)),),
        purpose=PURPOSE_HUISELIJK_GEWELD,
    )


def _out_of_scope_query(
    truth: GroundTruth, ids: Sequence[str], by_pid: Mapping[int, Person], order: Sequence[Person]
) -> DemoQuery | None:
    """A person registered (with BSN) only under themes the convenant leaves out."""
    for p in order:
        where = [k for k in ids if p.pid in truth.out_of_scope_bsn[k]]
        if where and not truth.in_scope_anywhere(p.pid):
            k = where[0]
            themes = ", ".join(truth.out_of_scope_themes[(k, p.pid)])
            return DemoQuery(
                "out-of-scope",
                f"a person {k} registered only under '{themes}', outside its convenant "
                "scope: no_hit everywhere",
                (_bsn_subject(by_pid[p.pid]),),
            )
    return None


# --- nodes and processes ----------------------------------------------------------------


def serve_command(home: Path) -> list[str]:
    """How a node process is started (a test replaces this to make one fail)."""
    return [sys.executable, "-m", "node", "serve", "--home", str(home)]


@dataclass
class DemoNode:
    spec: PartnerSpec
    home: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    started: bool = False
    stopped_by: str | None = None
    import_report: dict[str, Any] = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        return self.spec.node_id

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr_path(self) -> Path:
        return self.home / "serve.stderr.log"

    def as_json(self, truth: GroundTruth | None) -> dict[str, Any]:
        proc = self.process
        return {
            "node_id": self.node_id,
            "organisation": self.spec.organisation,
            "org_type": self.spec.org_type,
            "endpoint": self.url,
            "home": str(self.home),
            "scope_themes": list(self.spec.scope_themes),
            "query_purposes": list(self.spec.query_purposes),
            "registrations": self.import_report.get("rows", 0),
            "in_scope_registrations": truth.in_scope_count[self.node_id] if truth else None,
            "import": {
                k: self.import_report.get(k)
                for k in ("rows", "upserted", "invalid", "tag_set_versions")
            },
            "pid": proc.pid if proc else None,
            "started": self.started,
            "returncode": proc.returncode if proc else None,
            "stopped_by": self.stopped_by,
        }


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open until all are chosen)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)  # the same code as this process
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tail(path: Path, max_chars: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-max_chars:]


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _http(
    method: str,
    url: str,
    token: str | None = None,
    body: Any = None,
    timeout: float = HTTP_TIMEOUT_SECONDS,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - http://127.0.0.1 only
    try:
        with _opener.open(req, timeout=timeout) as resp:
            status, raw = int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        status, raw = int(e.code), e.read()
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


def _start(nodes: Sequence[DemoNode]) -> None:
    env = _child_env()
    for node in nodes:
        with node.stderr_path.open("wb") as err:
            node.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                serve_command(node.home),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=node.home,
            )


def _wait_healthy(nodes: Sequence[DemoNode], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            assert node.process is not None
            if node.process.poll() is not None:
                raise DemoError(
                    f"node {node.node_id} exited with code {node.process.returncode} while "
                    f"starting; its stderr:\n{_tail(node.stderr_path)}"
                )
            with suppress(OSError, ValueError):
                status, body = _http("GET", node.url + "/healthz", timeout=1.0)
                if status == 200 and isinstance(body, dict) and body.get("node_id") == node.node_id:
                    node.started = True
                    waiting.remove(node)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(n.node_id for n in waiting)
            stderr = "\n".join(f"--- {n.node_id} stderr:\n{_tail(n.stderr_path)}" for n in waiting)
            raise DemoError(f"no answer on /healthz within {deadline_s:g} s from {names}\n{stderr}")
        if waiting:
            time.sleep(POLL_SECONDS)


def _stop(nodes: Sequence[DemoNode], deadline_s: float = STOP_DEADLINE_SECONDS) -> None:
    """SIGTERM every running process, wait, SIGKILL what is left after the deadline."""
    running = [n for n in nodes if n.process is not None and n.process.poll() is None]
    for node in running:
        assert node.process is not None
        with suppress(ProcessLookupError):
            node.process.send_signal(signal.SIGTERM)
        node.stopped_by = "sigterm"
    deadline = time.monotonic() + deadline_s
    try:
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
                node.stopped_by = "sigkill"
    except BaseException:  # a second Ctrl-C while waiting: do not wait politely any more
        for node in running:
            assert node.process is not None
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()
                node.stopped_by = "sigkill"
        raise


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM to the demo unwinds like Ctrl-C, so the ``finally`` stops the children."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def verify_home(home: Path, node_id: str) -> dict[str, Any]:
    """Verify a stopped node's log from its database, with the key of its peer card."""
    card, _ = verify_card(json.loads((home / admin.CARD_FILE).read_text()))
    if card.node_id != node_id:
        return {
            "ok": False,
            "entries": 0,
            "heads": 0,
            "problems": [{"seq": None, "kind": "bad_head", "detail": "card of another node"}],
        }
    db_path = home / DB_FILE
    wal = db_path.with_name(db_path.name + "-wal")
    # A cleanly stopped node has checkpointed everything into the main file: read it as
    # immutable, which creates no -wal/-shm files. A WAL with frames (a killed process)
    # must be read through SQLite's WAL index; mode=ro does that without writing the log.
    clean = not wal.exists() or wal.stat().st_size == 0
    try:
        conn = sqlite3.connect(
            db_path.as_uri() + ("?immutable=1" if clean else "?mode=ro"), uri=True
        )
        conn.execute("SELECT count(*) FROM log_entries").fetchone()
    except sqlite3.Error:  # read-only WAL access needs the -shm file; fall back
        conn = sqlite3.connect(db_path)
    try:
        return admin.verify_report_json(log.verify(conn, node_id, card.signing_key_bytes))
    finally:
        conn.close()


# --- set-up -----------------------------------------------------------------------------


def _setup(
    nodes: Sequence[DemoNode],
    scenario: Scenario,
    say: Callable[[str], None],
    timings: dict[str, float],
) -> str:
    """Init, peer cards, convenant, imports, coordinator user. Returns the coordinator's token."""
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    for node in nodes:
        cfg = NodeConfig.model_validate(
            {
                "node_id": node.node_id,
                "organisation": node.spec.organisation,
                "org_type": node.spec.org_type,
                "endpoint": node.url,
                "http": {"host": "127.0.0.1", "port": node.port},
            }
        )
        admin.init_node(node.home, cfg, now)
    with ExitStack() as stack:
        ctxs: dict[str, NodeContext] = {}
        for node in nodes:
            ctx = open_node(node.home)
            stack.callback(ctx.close)
            ctxs[node.node_id] = ctx
        cards = {n.node_id: json.loads((n.home / admin.CARD_FILE).read_text()) for n in nodes}
        for a in nodes:
            for b in nodes:
                if a is not b:
                    admin.add_peer(ctxs[a.node_id], cards[b.node_id])
        say(
            f"initialised {len(nodes)} nodes and exchanged peer cards "
            f"({len(nodes) * (len(nodes) - 1)} cards added)"
        )
        root = nodes[0].home.parent
        source = convenant_toml(PARTNERS, now)
        (root / "convenant.toml").write_text(source)
        doc = admin.draft_convenant(ctxs[COORDINATOR_NODE], source)
        for node in nodes:
            doc = admin.sign_convenant(ctxs[node.node_id], doc.to_json())
        (root / "convenant.json").write_text(json.dumps(doc.to_json(), indent=2) + "\n")
        for node in nodes:
            admin.install_convenant(ctxs[node.node_id], doc.to_json())
        say(
            f"convenant {CONVENANT_ID}: drafted at {COORDINATOR_NODE}, signed by all "
            f"{len(doc.signatures)} parties, installed everywhere"
        )
        timings["init_and_convenant"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        imports = nodes[0].home.parent / "imports"
        imports.mkdir(exist_ok=True)
        for node in nodes:
            path = imports / f"{node.node_id}.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for entry in scenario.registries[node.node_id]:
                    f.write(entry.registration.model_dump_json() + "\n")
            report = admin.import_registrations(
                ctxs[node.node_id], path, "jsonl", actor="demo-import"
            )
            node.import_report = report.as_json(max_errors=5)
            if report.errors:
                raise DemoError(
                    f"{node.node_id}: {len(report.errors)} invalid rows in {path}: "
                    f"{report.errors[0].reason}"
                )
        total = sum(n.import_report["rows"] for n in nodes)
        timings["import"] = time.perf_counter() - t1
        say(
            f"imported {total} registrations ({total // len(nodes)} per partner, JSON Lines "
            f"through admin.import_registrations) in {timings['import']:.1f} s"
        )
        return admin.create_user(ctxs[COORDINATOR_NODE], COORDINATOR_USER, "coordinator")


# --- output -----------------------------------------------------------------------------

_MARK = {True: "✓", False: "✗"}


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


def _render_query(letter: str, q: Mapping[str, Any], query: DemoQuery) -> list[str]:
    lines = [f"{letter}. {q['name']}: {q['description']}  {_MARK[q['agrees']]}"]
    lines += [f"     subject {i + 1}: {s.label}" for i, s in enumerate(query.subjects)]
    result = q["result"]
    if not isinstance(result, dict) or "partners" not in result:
        lines.append(f"     the API did not answer: {result}")
        return lines
    lines.append(
        f"     purpose {result['purpose']}, case {result['case_ref']}, "
        f"trace {result['trace_id'][:16]}…"
    )
    rows = [["partner", "org type", "status per subject", "reason", "ms", "truth"]]
    for p in result["partners"]:
        expected = q["expected"].get(p["partner"], [])
        ok = partner_agrees(query, expected, p)
        status = " ".join(p["subjects"])
        truth = _MARK[ok] if ok else f"✗ expected {' '.join(expected)}"
        rows.append(
            [
                p["partner"],
                p["org_type"],
                status,
                p.get("reason") or "",
                f"{p['elapsed_ms']:.1f}",
                truth,
            ]
        )
    lines += ["   " + line for line in _table(rows)]
    return lines


# --- the run ----------------------------------------------------------------------------


def run_demo(
    subjects_per_partner: int = 3000,
    seed: int = 2026,
    keep: Path | None = None,
    say: Callable[[str], None] | None = None,
    health_deadline_s: float = HEALTH_DEADLINE_SECONDS,
) -> dict[str, Any]:
    """Run the whole demo; return the report (docs/demo.md). Never leaves a process behind.

    ``say`` receives progress and the per-query tables as they happen (None: silent).
    """
    emit = say or (lambda _text: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    report: dict[str, Any] = {
        "ok": False,
        "error": None,
        "nodes": [],
        "queries": [],
        "logs": {},
        "timings_s": timings,
    }
    nodes: list[DemoNode] = []
    scenario: Scenario | None = None
    with ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vhnode-demo-")))
        else:
            root = keep.expanduser().resolve()
            if root.exists() and any(root.iterdir()):
                raise DemoError(f"--keep {root}: directory exists and is not empty")
            root.mkdir(parents=True, exist_ok=True)
        report["dir"] = str(root)
        ports = _free_ports(len(PARTNERS))
        nodes = [
            DemoNode(spec, root / spec.node_id, port)
            for spec, port in zip(PARTNERS, ports, strict=True)
        ]
        stack.enter_context(_sigterm_raises())
        try:
            t = time.perf_counter()
            scenario = build_scenario(subjects_per_partner, seed)
            timings["generate"] = time.perf_counter() - t
            emit(
                f"generated {len(scenario.population)} synthetic persons (seed {seed}) and "
                f"{len(PARTNERS)} registries of {subjects_per_partner} in "
                f"{timings['generate']:.1f} s"
            )
            token = _setup(nodes, scenario, emit, timings)
            if keep is not None:  # to ask the kept federation again with `vhnode query`
                token_file = root / "coordinator.token"
                token_file.touch(mode=0o600)
                token_file.write_text(token + "\n")

            t = time.perf_counter()
            _start(nodes)
            _wait_healthy(nodes, health_deadline_s)
            timings["start"] = time.perf_counter() - t
            emit(f"started {len(nodes)} node processes, all healthy in {timings['start']:.1f} s")
            emit("")

            t = time.perf_counter()
            _run_queries(nodes, scenario, token, report, emit)
            timings["queries"] = time.perf_counter() - t
        except VhnodeError as e:  # DemoError, or an admin step refusing (reported, not raised)
            report["error"] = e.detail
        except KeyboardInterrupt:
            emit("interrupted: stopping the node processes")
            raise
        finally:
            t = time.perf_counter()
            _stop(nodes)
            timings["stop"] = time.perf_counter() - t
        t = time.perf_counter()
        for node in nodes:
            if (node.home / DB_FILE).exists():
                report["logs"][node.node_id] = verify_home(node.home, node.node_id)
        timings["verify_logs"] = time.perf_counter() - t
        report["nodes"] = [n.as_json(scenario.truth if scenario else None) for n in nodes]
    timings["total"] = time.perf_counter() - started
    for k, v in timings.items():
        timings[k] = round(v, 3)
    report["ok"] = (
        report["error"] is None
        and bool(report["queries"])
        and all(q["agrees"] for q in report["queries"])
        and len(report["logs"]) == len(nodes)
        and all(entry["ok"] for entry in report["logs"].values())
        and all(n["started"] for n in report["nodes"])
    )
    return report


def _run_queries(
    nodes: Sequence[DemoNode],
    scenario: Scenario,
    token: str,
    report: dict[str, Any],
    emit: Callable[[str], None],
) -> None:
    by_id = {n.node_id: n for n in nodes}
    url = by_id[COORDINATOR_NODE].url + "/api/v1/bekendheid"
    providers = [p.node_id for p in PARTNERS]
    for i, query in enumerate(scenario.queries):
        for down in sorted(query.down):
            _stop([by_id[down]])
            proc = by_id[down].process
            code = proc.returncode if proc is not None else None
            emit(f"stopped {down} ({by_id[down].stopped_by}, exit code {code}) before asking")
        body = {
            "convenant_id": CONVENANT_ID,
            "purpose": query.purpose,
            "case_ref": f"ZVH-BRD-2026-{i + 1:04d}",
            "subjects": [s.wire for s in query.subjects],
        }
        status, result = _http("POST", url, token, body)
        expected = query.expected(scenario.truth, providers)
        agrees = (
            status == 200 and isinstance(result, dict) and result_agrees(query, expected, result)
        )
        entry = {
            "name": query.name,
            "description": query.description,
            "subjects": len(query.subjects),
            "expected": expected,
            "result": result,
            "agrees": agrees,
        }
        report["queries"].append(entry)
        for line in _render_query(chr(ord("a") + i), entry, query):
            emit(line)
        emit("")
        if status != 200:
            raise DemoError(f"query {query.name}: HTTP {status}: {result}")


def _print_summary(report: Mapping[str, Any]) -> None:
    queries = report["queries"]
    agreed = sum(q["agrees"] for q in queries)
    click.echo(f"queries: {agreed}/{len(queries)} agree with the ground truth")
    for q in queries:
        if not q["agrees"]:
            click.echo(f"  ✗ {q['name']}")
    logs = report["logs"]
    for node in report["nodes"]:
        v = logs.get(node["node_id"])
        state = (
            "no log"
            if v is None
            else (
                f"log OK ({v['entries']} entries, {v['heads']} signed heads)"
                if v["ok"]
                else f"log FAILS: {v['problems'][:1]}"
            )
        )
        click.echo(
            f"  {node['node_id']:<24} pid {node['pid']!s:<8} exit {node['returncode']!s:<4} "
            f"{node['in_scope_registrations'] or 0:>6}/{node['registrations']:<6} in scope  "
            f"{state}"
        )
    t = report["timings_s"]
    click.echo("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
    if report.get("error"):
        click.echo(f"error: {report['error']}", err=True)
    click.echo(
        "OK: every answer matches the ground truth and every log verifies"
        if report["ok"]
        else "FAILED"
    )


@click.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (docs/demo.md).")
@click.option(
    "--subjects-per-partner",
    type=click.IntRange(min=50),
    default=3000,
    show_default=True,
    help="Registrations per partner.",
)
@click.option(
    "--seed", type=int, default=2026, show_default=True, help="Seed of the synthetic data."
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build the federation in this (new or empty) directory and keep it.",
)
def demo(as_json: bool, subjects_per_partner: int, seed: int, keep: Path | None) -> None:
    """Run a seven-node federation on loopback and check every answer against the truth.

    Exits 1 if any answer disagrees with the synthetic ground truth, any log fails to
    verify, or any node fails.
    """
    report = run_demo(subjects_per_partner, seed, keep, say=None if as_json else click.echo)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        if report.get("error"):
            click.echo(f"error: {report['error']}", err=True)
    else:
        _print_summary(report)
    if not report["ok"]:
        raise click.exceptions.Exit(1)
