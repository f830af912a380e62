"""Shared fixtures: the federation simulator is the backbone of the suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.federation import Federation, standard_federation


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    fed = await standard_federation(tmp_path)
    try:
        yield fed
    finally:
        await fed.close()
