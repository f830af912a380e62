"""Shared fixtures: the federation simulator is the backbone of the suite."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.federation import Federation, standard_federation

if TYPE_CHECKING:
    from playwright.async_api import Browser


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    # VHNODE_TEST_TLS=1 runs every test on this fixture over mutual TLS (tests/test_tls.py
    # runs its own TLS federations either way).
    fed = await standard_federation(tmp_path, tls=os.environ.get("VHNODE_TEST_TLS") == "1")
    try:
        yield fed
    finally:
        await fed.close()


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium through Playwright (tests/browser.py), for the browser tests."""
    from tests.browser import launched  # noqa: PLC0415 - Playwright only for browser tests

    async with launched() as browser:
        yield browser
