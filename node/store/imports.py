"""How far ``vhnode registry import`` is (docs/operations.md "Metrics"): one ``meta`` row.

The import usually runs in a process of its own (a nightly script) beside the serving
node, so the server cannot count it in memory: the importing process writes its progress
here in each batch's own transaction — the figures are what is committed — and the
server reads it when Prometheus scrapes. Counts and times only: no file name, ref or
identifier.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Literal

KEY = "import_progress"

ImportState = Literal["running", "finished", "failed"]


@dataclass(frozen=True)
class ImportProgress:
    """The newest import: ``running`` until its last batch is committed (``finished``) or
    it stops on an error (``failed``); one killed outright stays ``running`` with an
    ``updated`` time that no longer moves. Times are POSIX seconds."""

    state: ImportState
    started: float
    updated: float
    rows: int
    upserted: int
    unchanged: int
    refused_rows: int
    refused_identifiers: int


def save(conn: sqlite3.Connection, progress: ImportProgress) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (KEY, json.dumps(asdict(progress), sort_keys=True)),
    )


def load(conn: sqlite3.Connection) -> ImportProgress | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (KEY,)).fetchone()
    return None if row is None else ImportProgress(**json.loads(row[0]))
