"""The whole flow of the web application in a real headless Chromium, across real nodes
on 127.0.0.1 (issue 10, "It is done when"; docs/webapp.md "Tests").

Four people, each in a browser context of their own (their own cookies), each signing
in with password and TOTP on their own node's web app:

1. the coordinator at vh-test asks a family (a BSN, a name with date of birth, the
   household's address) and the grid shows, cell by cell, what the synthetic ground
   truth (node/demo/truth.py, built from the registrations) says each partner knows;
2. from politie's hit asks details in two categories that both need the liaison's
   approval, and the request page shows them pending;
3. politie's liaison, on politie's node, approves one and denies the other with a
   reason;
4. the coordinator's request page, fetched again, shows the approved text and the reason;
5. the privacy officers see the exchange counted in their reports for the day (vh-test:
   the round and the detail request; politie: the request answered, one approval, one
   denial), and vh-test's finds the person by BSN in an access request;
6. axe on every page (no serious or critical violation), a screenshot per step
   (``test-artefacts/webapp/flow-NN-*.png``), and no identifier in any URL any of the
   four browsers requested.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import pyotp
from playwright.async_api import Browser, Page
from structlog.testing import capture_logs

from node.demo.synthetic import Person, RegistryEntry, make_population, make_registry
from node.demo.truth import DemoSubject, GroundTruth
from node.protocol.registration import Registration
from tests.browser import Visit, sign_in
from tests.detail_fixtures import ANTECEDENTS, CONTACT, detail_federation
from tests.federation import DEFAULT_PARTIES, Federation, log_entries
from tests.webclient import enrol

VH = "vh-test"
POLITIE = "politie-test"
CASE = "CASUS-2026-0311"
CONTACT_TEXT = "Wijkagent R. Bakker, 06-87654321"
ANTECEDENTS_TEXT = "2 aangiftes bedreiging 2026; lopend onderzoek"
DENIAL = "Lopend onderzoek; vraag het opnieuw na de zitting"
SCOPES = {node_id: themes for node_id, _, themes, _ in DEFAULT_PARTIES}
ORG_TYPES = {node_id: org_type for node_id, org_type, _, _ in DEFAULT_PARTIES}


class Family:
    """A household from the synthetic population, what each partner registered (the
    household among others), and the three subject rows the coordinator types."""

    def __init__(self) -> None:
        population = make_population(400, random.Random(2026))
        households: dict[int, list[Person]] = defaultdict(list)
        for p in population:
            households[p.family_id].append(p)
        self.members = next(m for m in households.values() if len(m) >= 3 and m[0].tussenvoegsel)
        a, b = self.members[0], self.members[1]
        self.a, self.b = a, b
        others = [p for p in population if p.family_id != a.family_id]
        rng = random.Random(11)
        # Every partner holds people who are not this family; a no_hit means "not them".
        self.registries: dict[str, list[RegistryEntry]] = {
            node_id: make_registry(ORG_TYPES[node_id], others, rng, 12) for node_id in SCOPES
        }
        self.registries[POLITIE] += [
            # A by BSN and name, with the two texts the coordinator will ask for.
            _entry(
                "BPS-2026-0311",
                ("veelplegers",),
                (a.bsn_identifier(), a.person_identifier()),
                a.pid,
                details={CONTACT: CONTACT_TEXT, ANTECEDENTS: ANTECEDENTS_TEXT},
            ),
            # B by name, under a theme outside politie's scope in this convenant: politie
            # may not say it knows B (no_hit), which the ground truth has to know too.
            _entry("BPS-2026-0312", ("hennep",), (b.person_identifier(),), b.pid),
        ]
        self.registries["om-test"].append(
            _entry("OM-2026-0311", ("veelplegers",), (b.person_identifier(),), b.pid)
        )
        self.registries["ggz-test"].append(
            _entry("GGZ-2026-0311", ("zorg",), (a.address_identifier(),), None, a.address)
        )
        self.truth = GroundTruth.build(self.registries, SCOPES)
        self.subjects = (
            DemoSubject("bsn", {}, "bsn", pid=a.pid),
            DemoSubject("person", {}, "person", pid=b.pid),
            DemoSubject("address", {}, "address", address=a.address),
        )

    def records(self) -> dict[str, list[dict[str, Any]]]:
        return {
            node_id: [e.registration.model_dump(mode="json") for e in entries]
            for node_id, entries in self.registries.items()
        }

    def expected(self, partners: list[str]) -> list[dict[str, str]]:
        """Per subject row, per partner: hit or no_hit, as the ground truth says."""
        return [
            {p: "hit" if self.truth.knows(p, s) else "no_hit" for p in partners}
            for s in self.subjects
        ]

    async def type_into(self, page: Page) -> None:
        """The three rows of the round's form, as a coordinator types them."""
        a, b = self.a, self.b
        await page.locator("#bsn-0").fill(a.bsn)
        await page.locator("#achternaam-1").fill(b.surname)
        await page.locator("#tussenvoegsel-1").fill(b.tussenvoegsel or "")
        await page.locator("#voornamen-1").fill(b.first_names)
        await page.locator("#geboortedatum-1").fill(b.birth_date.isoformat())
        await page.locator("#postcode-2").fill(a.postcode)
        await page.locator("#huisnummer-2").fill(str(a.house_number))
        await page.locator("#toevoeging-2").fill(a.addition or "")

    def identifier_parts(self) -> set[str]:
        """Every form in which a member's identifiers could show up in a URL, compacted
        (lower case, no spaces or separators): BSN, surname, date of birth with the year
        in full in any usual order, postcode alone and with the house number. (First
        names and two-digit years are left out: too short to tell from a random hex id.)"""
        parts: set[str] = set()
        for m in self.members:
            d = m.birth_date
            parts |= {m.bsn, m.surname, m.postcode}
            parts |= {f"{d:%Y%m%d}", f"{d:%d%m%Y}", f"{d.day}{d.month}{d.year}"}
            parts.add(f"{m.postcode}{m.house_number}{m.addition or ''}")
        return {_compact(p) for p in parts}


def _entry(
    ref: str,
    themes: tuple[str, ...],
    identifiers: tuple[Any, ...],
    pid: int | None,
    address: tuple[str, int, str | None] | None = None,
    details: dict[str, str] | None = None,
) -> RegistryEntry:
    registration = Registration(
        ref=ref, themes=themes, identifiers=identifiers, details=details or {}
    )
    return RegistryEntry(registration=registration, pid=pid, address=address)


def _compact(text: str) -> str:
    return re.sub(r"[\s+\-_/.:,;]", "", text.lower())


def _leaks(urls: list[str], parts: set[str]) -> list[str]:
    """The URLs whose path, query or fragment hold one of ``parts`` in any spelling.

    The host is left out: it is 127.0.0.1 and a random port for every request (asserted
    apart), and its digits would only make false alarms."""
    leaked = []
    for url in urls:
        split = urlsplit(url)
        rest = _compact(unquote_plus(f"{split.path}?{split.query}#{split.fragment}"))
        if any(p in rest for p in parts):
            leaked.append(url)
    return leaked


async def _table(page: Page, table: str) -> dict[str, int]:
    """A report's two-column table (label, count) as a mapping."""
    rows = await page.locator(f"#{table} tr").evaluate_all(
        "rows => rows.map(r => [r.querySelector('th').innerText, r.querySelector('td').innerText])"
    )
    return {label: int(count.split()[0]) for label, count in rows}


async def test_the_whole_flow_across_real_nodes(tmp_path: Path, chromium: Browser) -> None:
    family = Family()
    with capture_logs():
        fed = await detail_federation(
            tmp_path, liaison_approves=(CONTACT, ANTECEDENTS), registrations=family.records()
        )
        try:
            await _flow(fed, family, chromium)
        finally:
            await fed.close()


async def _flow(fed: Federation, family: Family, chromium: Browser) -> None:
    vh, politie = fed.nodes[VH], fed.nodes[POLITIE]
    secrets = {
        VH: enrol(vh, ("coordinator", "privacy_officer")),
        POLITIE: enrol(politie, ("liaison", "privacy_officer")),
    }
    steps = itertools.count(1)
    visits: list[Visit] = []

    async def person(node_id: str, role: str) -> Visit:
        """A person of their own, signed in on their own node with password and TOTP."""
        node = fed.nodes[node_id]
        visit = await Visit.in_new_context(chromium, "flow", steps)
        visits.append(visit)
        code = pyotp.TOTP(secrets[node_id][role]).at(node.clock.now())
        await sign_in(visit, node.url, f"{role}-{node_id}", code, f"{role}-{node_id}-aanmelden")
        return visit

    # 1. The coordinator asks the family; the grid against the ground truth.
    coordinator = await person(VH, "coordinator")
    page = coordinator.page
    await coordinator.check("coordinator-start")
    await page.get_by_role("link", name="Nieuwe bevraging").first.click()
    await page.wait_for_url(vh.url + "/app/bevraging")
    await coordinator.check("coordinator-bevraging")
    await page.get_by_label("Convenant en doel").select_option(
        "vh-test-veelplegers|casusoverleg-veelplegers"
    )
    await page.get_by_label("Zaaknummer (casusreferentie)").fill(CASE)
    await family.type_into(page)
    await page.get_by_role("button", name="Bevraging versturen").click()
    await page.wait_for_selector("#resultaat")
    await coordinator.check("coordinator-resultaat")
    partners = await page.locator("#resultaat thead th[data-partner]").evaluate_all(
        "ths => ths.map(t => t.dataset.partner)"
    )
    assert sorted(partners) == sorted(SCOPES)
    grid = await page.locator("#resultaat tbody tr").evaluate_all(
        "rows => rows.map(r => Object.fromEntries([...r.querySelectorAll('td[data-partner]')]"
        ".map(t => [t.dataset.partner, t.dataset.status])))"
    )
    expected = family.expected(partners)
    assert grid == expected
    # The ground truth is not all one answer: each row has a hit somewhere, and politie's
    # out-of-scope registration of the second member is a no_hit.
    assert all("hit" in row.values() for row in expected)
    assert expected[1][POLITIE] == "no_hit"
    assert expected[0][POLITIE] == "hit"
    round_trace = await page.locator("#trace-id").inner_text()
    assert [e["trace_id"] for e in log_entries(vh, "bekendheid.round")] == [round_trace]

    # 2. From politie's hit on the first row: details in the two categories that need
    # the liaison's approval; the request page shows both pending.
    await page.get_by_role(
        "button", name="Vraag details bij Politie testregio over betrokkene 1"
    ).click()
    await page.wait_for_selector("#categorieen")
    await coordinator.check("coordinator-details-kiezen")
    for category in (CONTACT, ANTECEDENTS):
        await page.get_by_label(f"Testcategorie {category}").check()
    await page.get_by_role("button", name="Details vragen").click()
    await page.wait_for_selector("#trace-id")
    detail_trace = await page.locator("#trace-id").inner_text()
    assert page.url == f"{vh.url}/app/details/{detail_trace}"
    for category in (CONTACT, ANTECEDENTS):
        state = page.locator(f'[data-category="{category}"]')
        assert await state.get_attribute("data-state") == "pending", category
    await coordinator.check("coordinator-detailverzoek-in-behandeling")

    # 3. Politie's liaison, on politie's node: approve one category, deny the other.
    liaison = await person(POLITIE, "liaison")
    inbox = liaison.page
    await inbox.get_by_role("link", name="Inbox").first.click()
    await inbox.wait_for_url(politie.url + "/app/inbox")
    request = inbox.locator(f'[data-trace="{detail_trace}"]')
    assert await request.count() == 1
    assert CASE in await request.inner_text()
    await liaison.check("liaison-inbox")
    await inbox.locator(f"#cat-{detail_trace}-{CONTACT}").check()
    await request.get_by_role("button", name="Aangevinkte goedkeuren").click()
    await inbox.wait_for_selector("#melding-besluit")
    await liaison.check("liaison-goedgekeurd")
    await inbox.locator(f"#cat-{detail_trace}-{ANTECEDENTS}").check()
    await request.get_by_label("Reden bij weigeren").fill(DENIAL)
    await request.get_by_role("button", name="Aangevinkte weigeren").click()
    await inbox.wait_for_selector("#geen-verzoeken")
    await liaison.check("liaison-geweigerd")

    # 4. The coordinator's request page, fetched again: the text and the reason.
    await page.get_by_role("button", name="Nu opnieuw ophalen").click()
    await page.wait_for_selector(f'[data-category="{ANTECEDENTS}"][data-state="denied"]')
    contact = page.locator(f'[data-category="{CONTACT}"]')
    assert await contact.get_attribute("data-state") == "delivered"
    assert CONTACT_TEXT in await page.locator(f"#tekst-{CONTACT}").inner_text()
    denied = page.locator(f'[data-category="{ANTECEDENTS}"] .vh-reason')
    assert DENIAL in await denied.inner_text()
    assert await page.locator(f"#tekst-{ANTECEDENTS}").count() == 0
    assert ANTECEDENTS_TEXT not in await page.content()
    await coordinator.check("coordinator-detailverzoek-beantwoord")

    # 5. The privacy officers: the day's report at both nodes, the access request at
    # vh-test.
    day = vh.clock.now().date().isoformat()
    officer = await person(VH, "privacy_officer")
    await _report(officer, vh.url, day, "fg-vh-test-rapport")
    assert await officer.page.locator("#rondes").get_attribute("data-count") == "1"
    details = await _table(officer.page, "details")
    assert details["asked"] == 1  # one detail request
    assert details["viewed"] >= 1  # the coordinator read the approved text

    page = officer.page
    menu = page.get_by_role("navigation")
    await menu.get_by_role("link", name="Inzageverzoek", exact=True).click()
    await page.wait_for_url(vh.url + "/app/inzage")
    await officer.check("fg-vh-test-inzage")
    await page.get_by_label("Kenmerk van het verzoek").fill("AVG-15-2026-0311")
    await page.locator("#bsn-0").fill(family.a.bsn)
    await page.get_by_role("button", name="Opzoeken").click()
    await page.wait_for_selector("#rapport-kenmerk")
    rows = await page.locator("#verwerkingen-tabel tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.kind, r.dataset.trace])"
    )
    assert [t for k, t in rows if k == "bekendheid.round"] == [round_trace]
    assert [t for k, t in rows if k == "detail.asked"] == [detail_trace]
    await officer.check("fg-vh-test-inzagerapport")

    officer = await person(POLITIE, "privacy_officer")
    await _report(officer, politie.url, day, "fg-politie-test-rapport")
    details = await _table(officer.page, "details")
    assert details["requests_answered"] == 1
    assert details["approvals"] == 1
    assert details["denials"] == 1

    # 6. No identifier in any URL any of the four browsers requested.
    assert len(visits) == 4
    urls = [u for v in visits for u in v.urls]
    assert all(v.urls for v in visits)
    assert {urlsplit(u).hostname for u in urls} == {"127.0.0.1"}
    parts = family.identifier_parts()
    assert _leaks(urls, parts) == []
    # The check itself finds a leak in any spelling (not vacuous).
    a = family.a
    for spelt in (
        a.bsn,
        a.surname.upper(),
        f"{a.birth_date:%d-%m-%Y}",
        f"{a.postcode[:4]}+{a.postcode[4:]}+{a.house_number}",
    ):
        assert _leaks([f"{vh.url}/app/zoek?q={spelt}"], parts), spelt
    assert [u for u in urls if "?" in u] == []


async def _report(visit: Visit, url: str, day: str, label: str) -> None:
    """The privacy officer's report for one day, from the menu."""
    page = visit.page
    await page.get_by_role("navigation").get_by_role("link", name="Rapport", exact=True).click()
    await page.wait_for_url(url + "/app/toezicht/rapport")
    await page.locator("#van").fill(day)
    await page.locator("#tot").fill(day)
    await page.get_by_role("button", name="Rapport tonen").click()
    await page.wait_for_selector("#rapport")
    await visit.check(label)
