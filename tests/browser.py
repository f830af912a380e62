"""What the web application's browser tests share: Debian's chromium, one person's tab
(every URL it requested, axe, screenshots), signing in, moving by keyboard.

Debian's ``chromium`` (``apt-get install chromium``) driven by Playwright for Python,
whose wheel brings the driver; no browser is downloaded. axe-core (through
axe-playwright-python) checks every page: no serious or critical violation. Each step
leaves a screenshot in ``test-artefacts/webapp/`` (gitignored). With ``CI`` set, a
missing browser fails the test instead of skipping it: CI installs it (``.ci/run``).
The ``chromium`` fixture (tests/conftest.py) launches it once per test.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

from tests.webclient import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = ROOT / "test-artefacts" / "webapp"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
INSTALL_HINT = "install Debian's chromium: apt-get install -y chromium"
GRAVE = ("serious", "critical")


def chromium_path() -> str:
    configured = os.environ.get("VHNODE_CHROMIUM")
    for candidate in (configured, *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    if os.environ.get("CI"):
        pytest.fail(f"no chromium for the browser tests in CI; {INSTALL_HINT}")
    pytest.skip(f"no chromium; {INSTALL_HINT}")


@asynccontextmanager
async def launched() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


class Visit:
    """One person's browser tab: every URL its context requested, every CSP complaint,
    axe, screenshots.

    Screenshots are ``{name}-{NN}-{label}.png``; visits that pass one ``steps`` counter
    number their screenshots as one sequence (several people in one story)."""

    def __init__(self, page: Page, name: str, steps: Iterator[int] | None = None) -> None:
        self.page = page
        self.name = name
        self.urls: list[str] = []
        self.console: list[str] = []
        self.steps = steps if steps is not None else itertools.count(1)
        # The context's, not the page's: a request from any tab, frame or download of
        # this person's browser is recorded.
        page.context.on("request", lambda r: self.urls.append(r.url))
        page.on("console", lambda m: self.console.append(m.text))
        ARTEFACTS.mkdir(parents=True, exist_ok=True)

    @classmethod
    async def in_new_context(
        cls, browser: Browser, name: str, steps: Iterator[int] | None = None
    ) -> Visit:
        """A person of their own: a fresh context, so cookies are theirs alone."""
        context = await browser.new_context()
        return cls(await context.new_page(), name, steps)

    async def check(self, label: str) -> None:
        """axe on the page as it stands, and a screenshot of it."""
        shot = ARTEFACTS / f"{self.name}-{next(self.steps):02d}-{label}.png"
        await self.page.screenshot(path=str(shot), full_page=True)
        results = await Axe().run(self.page)
        grave = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in GRAVE
        ]
        assert grave == [], (label, grave)
        blocked = [c for c in self.console if "Content Security Policy" in c]
        assert blocked == [], (label, blocked)


async def sign_in(visit: Visit, url: str, name: str, code: str, label: str = "aanmelden") -> None:
    """From the node's start page through the sign-in page (checked) to the start page."""
    page = visit.page
    await page.goto(url + "/app/")
    assert page.url.endswith("/app/aanmelden")
    await visit.check(label)
    await page.get_by_label("Gebruikersnaam").fill(name)
    await page.get_by_label("Wachtwoord").fill(PASSWORD)
    await page.get_by_label("Code uit uw authenticator-app").fill(code)
    await page.get_by_role("button", name="Aanmelden").click()
    await page.wait_for_url(url + "/app/")


async def tab_to(page: Page, target: Any, limit: int = 80) -> None:
    """Press Tab until ``target`` has the focus: it is reachable by keyboard, in order."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await target.evaluate("e => e === document.activeElement"):
            return
    raise AssertionError(f"{target} not reached with Tab")
