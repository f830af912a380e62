"""Screenshots of the web app's main pages, for the user guide (docs/gebruikersgids.md).

    python scripts/screenshots.py [--out docs/screenshots] [--subjects-per-partner N]

Runs the demo federation with its web app exactly as ``vhnode demo --ui`` does
(``run_demo(ui=...)``: real nodes on 127.0.0.1, real users with password and TOTP), signs
in as each role with Playwright and Debian's chromium (``/usr/bin/chromium``, or
``VHNODE_CHROMIUM``) and saves one PNG per entry of ``SHOTS`` (1280 px wide, at most
2000 high) into the output directory, with an index (``README.md``) of what each shows.
Then every node is stopped and its log verified, as after the demo.

The pages come from ``SHOTS`` alone: adding a page is one line there. A page this
checkout does not serve (404) is skipped and named at the end, so the script runs on any
branch. It needs the ``test`` extra (Playwright), which is why it lives here and not in
the package: ``pip install -e '.[test]'`` and ``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's own code, also without an install

from node.demo import run_demo  # noqa: E402 - after the path above
from node.demo.partners import COORDINATOR_NODE, DETAIL_PARTNER, PURPOSE_VEELPLEGERS  # noqa: E402
from node.demo.ui import OPEN_CASE_REF, UiFederation  # noqa: E402

WIDTH, HEIGHT = 1280, 800
MAX_HEIGHT = 2000
CHROMIUM = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
VH, PARTNER = COORDINATOR_NODE, DETAIL_PARTNER
Act = Callable[[Page, UiFederation], None]


@dataclass(frozen=True)
class Shot:
    """One screenshot: ``name``.png of ``path`` (under /app; ``{open_request}`` is the
    trace id of the demo's undecided detail request) at ``node`` as ``role`` (None: not
    signed in), after ``act`` (fill in and send a form) when given."""

    name: str
    node: str
    role: str | None
    path: str
    title: str
    act: Act | None = None


# --- what is done on a page before its screenshot -----------------------------------------


def _fill_subjects(page: Page, fed: UiFederation, query: str, rows: int = 3) -> None:
    subjects = next(q for q in fed.scenario.queries if q.name == query).subjects[:rows]
    for i, subject in enumerate(subjects):
        if page.locator(f"#bsn-{i}").count() == 0:
            page.get_by_role("button", name="Betrokkene toevoegen").click()
            page.wait_for_load_state()
        w: dict[str, Any] = subject.wire
        if w["kind"] == "bsn":
            page.locator(f"#bsn-{i}").fill(w["bsn"])
        elif w["kind"] == "person":
            page.locator(f"#achternaam-{i}").fill(w["surname"])
            page.locator(f"#tussenvoegsel-{i}").fill(w.get("tussenvoegsel") or "")
            page.locator(f"#voornamen-{i}").fill(w["first_names"])
            page.locator(f"#geboortedatum-{i}").fill(w["birth_date"])
        else:
            page.locator(f"#postcode-{i}").fill(w["postcode"])
            page.locator(f"#huisnummer-{i}").fill(str(w["house_number"]))
            page.locator(f"#toevoeging-{i}").fill(w.get("addition") or "")


def ask_family(page: Page, fed: UiFederation) -> None:
    select = page.get_by_label("Convenant en doel")
    value = next(
        v
        for v in select.locator("option").evaluate_all("os => os.map(o => o.value)")
        if v.endswith("|" + PURPOSE_VEELPLEGERS)
    )
    select.select_option(value)
    page.get_by_label("Zaaknummer (casusreferentie)").fill("ZVH-BRD-2026-0142")
    _fill_subjects(page, fed, "family")
    page.get_by_role("button", name="Bevraging versturen").click()
    page.wait_for_selector("#resultaat")


def open_case(page: Page, fed: UiFederation) -> None:
    page.get_by_label("Zaaknummer (casusreferentie)").fill(OPEN_CASE_REF)
    page.get_by_role("button", name="Zaak opzoeken").click()
    page.wait_for_load_state()


def choose_details(page: Page, fed: UiFederation) -> None:
    """From the case page, "Vraag details" on politie's hit."""
    open_case(page, fed)
    partner = f'form[action="/app/details/vragen"]:has(input[name="partner"][value="{PARTNER}"])'
    page.locator(partner).get_by_role("button").first.click()
    page.wait_for_load_state()


def filter_inbox(page: Page, fed: UiFederation) -> None:
    page.get_by_label("Meldingen", exact=True).select_option("alle")
    page.get_by_role("button", name="Filteren").click()
    page.wait_for_load_state()


def decide_and_show(page: Page, fed: UiFederation) -> None:
    """Approve the waiting request, then open its page."""
    page.get_by_role("button", name="Alles goedkeuren").first.click()
    page.wait_for_selector("#bekijk-besluit")
    page.locator("#bekijk-besluit").click()
    page.wait_for_load_state()


def verify_log(page: Page, fed: UiFederation) -> None:
    page.locator("#controleer").click()
    page.wait_for_load_state()


def show_report(page: Page, fed: UiFederation) -> None:
    page.locator("#toon-rapport").click()
    page.wait_for_load_state()


def access_request(page: Page, fed: UiFederation) -> None:
    page.get_by_label("Kenmerk van het verzoek").fill("INZAGE-2026-007")
    _fill_subjects(page, fed, "known-to-several", rows=1)
    page.locator("#zoek").click()
    page.wait_for_load_state()


# --- the pages ----------------------------------------------------------------------------

# In the order of the guide. The coordinator's detail request page follows the liaison's
# decision, so it shows the approved category delivered.
SHOTS: tuple[Shot, ...] = (
    Shot("aanmelden", VH, None, "/aanmelden", "Aanmelden"),
    Shot("coordinator-start", VH, "coordinator", "/", "Start (coördinator)"),
    Shot("coordinator-bevraging", VH, "coordinator", "/bevraging", "Nieuwe bevraging"),
    Shot("coordinator-resultaat", VH, "coordinator", "/bevraging", "Resultaat", ask_family),
    Shot("coordinator-zaak", VH, "coordinator", "/zaak", "Zaak", open_case),
    Shot("coordinator-vraag-details", VH, "coordinator", "/zaak", "Vraag details", choose_details),
    Shot("coordinator-detailverzoeken", VH, "coordinator", "/details", "Detailverzoeken"),
    Shot("contactpersoon-start", PARTNER, "liaison", "/", "Start (contactpersoon)"),
    Shot("contactpersoon-inbox", PARTNER, "liaison", "/inbox", "Inbox"),
    Shot("contactpersoon-filter", PARTNER, "liaison", "/inbox", "Inbox gefilterd", filter_inbox),
    Shot("contactpersoon-besluit", PARTNER, "liaison", "/inbox", "Besluit", decide_and_show),
    Shot("coordinator-detailverzoek", VH, "coordinator", "/details/{open_request}", "Detail"),
    Shot("fg-toezicht", VH, "privacy_officer", "/toezicht", "Toezicht", verify_log),
    Shot("fg-rapport", VH, "privacy_officer", "/toezicht/rapport", "Rapport", show_report),
    Shot("fg-inzage", VH, "privacy_officer", "/inzage", "Inzageverzoek", access_request),
    Shot("beheerder-status", PARTNER, "admin", "/beheer", "Status van de node"),
    Shot("beheerder-partners", PARTNER, "admin", "/beheer/partners", "Partners"),
    Shot("beheerder-convenanten", PARTNER, "admin", "/beheer/convenanten", "Convenanten"),
    Shot("beheerder-gebruikers", PARTNER, "admin", "/beheer/gebruikers", "Gebruikers"),
)  # fmt: skip


# --- taking them ----------------------------------------------------------------------------


def chromium_path() -> str:
    for candidate in (os.environ.get("VHNODE_CHROMIUM"), *CHROMIUM, shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("no chromium: apt-get install -y chromium (or set VHNODE_CHROMIUM)")


class Photographer:
    def __init__(self, browser: Browser, fed: UiFederation, out: Path) -> None:
        self.browser, self.fed, self.out = browser, fed, out
        self.signed_in: dict[tuple[str, str | None], BrowserContext] = {}
        self.taken: list[Shot] = []
        self.missing: list[tuple[Shot, str]] = []

    def page_for(self, node: str, role: str | None) -> Page:
        """A tab signed in as ``role`` at ``node``; one sign-in per user, since a TOTP code
        is accepted once."""
        key = (node, role)
        if key not in self.signed_in:
            context = self.browser.new_context(
                viewport={"width": WIDTH, "height": HEIGHT}, locale="nl-NL"
            )
            self.signed_in[key] = context
            if role is not None:
                login = self.fed.login(node, role)
                page = context.new_page()
                page.goto(self.fed.url(node) + "aanmelden")
                page.get_by_label("Gebruikersnaam").fill(login.user)
                page.get_by_label("Wachtwoord").fill(login.password)
                page.get_by_label("Code uit uw authenticator-app").fill(
                    pyotp.TOTP(login.totp_secret).now()
                )
                page.get_by_role("button", name="Aanmelden").click()
                page.wait_for_url(self.fed.url(node))
                page.close()
        return self.signed_in[key].new_page()

    def take(self, shot: Shot) -> None:
        path = shot.path.format(open_request=self.fed.open_request or "")
        page = self.page_for(shot.node, shot.role)
        try:
            response = page.goto(self.fed.url(shot.node).rstrip("/") + path)
            if response is None or response.status == 404:
                self.missing.append((shot, "the page is not there (404)"))
                return
            if shot.act is not None:
                shot.act(page, self.fed)
            # Long lists (an inbox of hundreds of notices) are cut at MAX_HEIGHT: the top
            # of a page shows how it works, and the guide stays light.
            height = min(MAX_HEIGHT, int(page.evaluate("document.documentElement.scrollHeight")))
            page.screenshot(
                path=str(self.out / f"{shot.name}.png"),
                full_page=True,
                clip={"x": 0, "y": 0, "width": WIDTH, "height": height},
            )
            self.taken.append(shot)
        except Exception as e:  # a page changed under the script: say which, go on
            self.missing.append((shot, f"{type(e).__name__}: {str(e).splitlines()[0]}"))
        finally:
            page.close()


def write_index(out: Path, taken: list[Shot]) -> None:
    lines = [
        "# Screenshots of the web app",
        "",
        "Made by `python scripts/screenshots.py` from the demo federation (synthetic data);",
        "do not edit by hand. Used in [the user guide](../gebruikersgids.md).",
        "",
        "| file | page | node | signed in as |",
        "|---|---|---|---|",
    ]
    for s in taken:
        lines.append(
            f"| [{s.name}.png]({s.name}.png) | {s.title} (`/app{s.path}`) | `{s.node}` | "
            f"{s.role or 'not signed in'} |"
        )
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--subjects-per-partner", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # a page removed from SHOTS leaves no stale picture
        old.unlink()
    result: dict[str, Photographer] = {}

    def photograph(fed: UiFederation) -> None:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            try:
                ph = Photographer(browser, fed, out)
                for shot in SHOTS:
                    ph.take(shot)
                    print(f"{'✓' if ph.taken and ph.taken[-1] is shot else '–'} {shot.name}")
                result["ph"] = ph
            finally:
                browser.close()

    report = run_demo(args.subjects_per_partner, args.seed, say=print, ui=photograph)
    ph = result.get("ph")
    if ph is None:
        print(f"error: the demo did not get to the screenshots: {report.get('error')}")
        return 1
    write_index(out, ph.taken)
    total = sum(f.stat().st_size for f in out.glob("*.png"))
    print(f"{len(ph.taken)} screenshots in {out} ({total // 1024} KiB)")
    for shot, why in ph.missing:
        print(f"not taken: {shot.name} ({shot.title}, /app{shot.path}): {why}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
