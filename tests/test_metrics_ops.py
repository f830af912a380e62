"""The operator's figures of issue 11 item 2 beyond the rounds: import progress, the
source system's changes, and partners' retries (docs/operations.md "Metrics").

Each run is scripted on real nodes, and each figure must equal what happened: the import
a real `vhnode registry import` process reports (scraped while it runs, from a file it
reads through a pipe the test holds open, so "in progress" is a state, not a race), the
changes the registration API answered and the log recorded, the tries the log records.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from node.flows.admin import IMPORT_BATCH
from node.flows.metrics import NodeMetrics
from tests.federation import EVALUATE_PATH, Federation, interpose, log_entries, standard_federation
from tests.test_metrics import Samples, samples, scrape, total

VH, POLITIE, OM, GGZ = "vh-test", "politie-test", "om-test", "ggz-test"
JAN = {"kind": "bsn", "bsn": "123456782"}
BAD_BSN = {"kind": "bsn", "bsn": "123456789"}  # fails the 11-proef


def row(n: int, *identifiers: dict[str, Any]) -> str:
    address = {"kind": "address", "postcode": "4811AB", "house_number": n}
    ids = list(identifiers) or [address]
    return json.dumps({"ref": f"IMP-{n}", "themes": ["veelplegers"], "identifiers": ids}) + "\n"


# The first batch: one row refused (its only identifier is bad), one row imported without
# its bad identifier, the rest plain. Then a few rows more, for the second batch. A batch
# is IMPORT_BATCH items of the file's reader, and the identifier left out of row 2 is an
# item of its own: the first batch ends one row short of IMPORT_BATCH.
FIRST_BATCH = [
    row(1, BAD_BSN),
    row(2, {"kind": "address", "postcode": "4811AB", "house_number": 2}, BAD_BSN),
    *(row(n) for n in range(3, IMPORT_BATCH + 1)),
]
REST = [row(n) for n in range(IMPORT_BATCH + 1, IMPORT_BATCH + 6)]


async def figures(fed: Federation, node_id: str) -> Samples:
    status, _, text = await scrape(fed, node_id)
    assert status == 200, text
    return samples(text)


async def until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 60
    while not await probe():
        assert time.monotonic() < deadline, f"not within 60 s: {what}"
        await asyncio.sleep(0.05)


async def start_import(home: Path, data: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node", "registry", "import", "--home", str(home), str(data),
        "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def write_lines(pipe: IO[str], lines: list[str]) -> None:
    pipe.writelines(lines)
    pipe.flush()


async def test_import_progress_is_scraped_while_the_import_runs_and_when_it_ends(
    tmp_path: Path,
) -> None:
    fed = await standard_federation(tmp_path)
    try:
        home = fed.nodes[POLITIE].home
        before = await figures(fed, POLITIE)
        assert total(before, "vhnode_import_in_progress") == 0
        assert "vhnode_import_rows" not in before  # no import yet

        fifo = tmp_path / "export.jsonl"
        os.mkfifo(fifo)
        proc = await start_import(home, fifo)
        pipe = await asyncio.to_thread(open, fifo, "w", encoding="utf-8")
        try:
            # The first batch and part of the second: the import commits the first and
            # waits for the rest of the second.
            await asyncio.to_thread(write_lines, pipe, FIRST_BATCH + REST[:2])

            async def first_batch_committed() -> bool:
                found = await figures(fed, POLITIE)
                return total(found, "vhnode_import_rows", outcome="read") > 0

            await until(first_batch_committed, "the first batch in the metrics")
            running = await figures(fed, POLITIE)
            assert total(running, "vhnode_import_in_progress") == 1
            assert total(running, "vhnode_import_failed") == 0
            assert total(running, "vhnode_import_rows", outcome="read") == IMPORT_BATCH - 1
            assert total(running, "vhnode_import_rows", outcome="refused") == 1
            assert total(running, "vhnode_import_rows", outcome="upserted") == IMPORT_BATCH - 2
            assert total(running, "vhnode_import_rows", outcome="unchanged") == 0
            assert total(running, "vhnode_import_refused_identifiers") == 1
            started = total(running, "vhnode_import_started_timestamp_seconds")
            progressed = total(running, "vhnode_import_progress_timestamp_seconds")
            assert started <= progressed <= time.time()
            assert time.time() - started < 120

            await asyncio.to_thread(write_lines, pipe, REST[2:])
        finally:
            pipe.close()
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 3, err.decode()  # imported, some refused
        report = json.loads(out)

        done = await figures(fed, POLITIE)
        assert total(done, "vhnode_import_in_progress") == 0
        assert total(done, "vhnode_import_failed") == 0
        assert total(done, "vhnode_import_rows", outcome="read") == report["rows"]
        assert total(done, "vhnode_import_rows", outcome="upserted") == report["upserted"]
        assert total(done, "vhnode_import_rows", outcome="unchanged") == report["unchanged"]
        assert total(done, "vhnode_import_rows", outcome="refused") == report["invalid"]
        assert total(done, "vhnode_import_refused_identifiers") == report["invalid_identifiers"]
        assert report["rows"] == IMPORT_BATCH + len(REST)
        assert total(done, "vhnode_import_progress_timestamp_seconds") >= progressed

        # An import interrupted mid-way (Ctrl-C, a stopped timer unit) says it failed;
        # what it committed stays, as the counts show.
        fifo.unlink()
        os.mkfifo(fifo)
        proc = await start_import(home, fifo)
        pipe = await asyncio.to_thread(open, fifo, "w", encoding="utf-8")
        try:
            await asyncio.to_thread(write_lines, pipe, FIRST_BATCH + REST[:1])

            async def again_in_progress() -> bool:
                found = await figures(fed, POLITIE)
                return total(found, "vhnode_import_in_progress") == 1 and (
                    total(found, "vhnode_import_rows", outcome="read") == IMPORT_BATCH - 1
                )

            await until(again_in_progress, "the second import's first batch")
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.communicate(), 60)
        finally:
            pipe.close()
        assert proc.returncode == 130
        failed = await figures(fed, POLITIE)
        assert total(failed, "vhnode_import_in_progress") == 0
        assert total(failed, "vhnode_import_failed") == 1
        assert total(failed, "vhnode_import_rows", outcome="read") == IMPORT_BATCH - 1
        # The same rows again: nothing to change.
        assert total(failed, "vhnode_import_rows", outcome="unchanged") == IMPORT_BATCH - 2
    finally:
        await fed.close()


async def test_the_source_systems_changes_are_counted_as_the_api_answered_them(
    tmp_path: Path,
) -> None:
    fed = await standard_federation(tmp_path)
    try:
        path = "/api/v1/registrations/BPS-7"
        body = {"themes": ["veelplegers"], "identifiers": [JAN]}
        answers = [await fed.api(POLITIE, "PUT", path, "source", json=body) for _ in range(3)]
        assert [(s, a["changed"]) for s, a in answers] == [(200, True), (200, False), (200, False)]
        status, _ = await fed.api(POLITIE, "DELETE", path, "source")
        assert status == 200
        status, _ = await fed.api(POLITIE, "DELETE", path, "source")  # gone: 404, no change
        assert status == 404
        bad = {"themes": ["veelplegers"], "identifiers": [BAD_BSN]}
        status, _ = await fed.api(POLITIE, "PUT", path, "source", json=bad)
        assert status == 400

        found = await figures(fed, POLITIE)
        changes = {
            lab["change"]: v for lab, v in found.get("vhnode_registry_api_changes_total", [])
        }
        assert changes == {"upserted": 1, "unchanged": 2, "removed": 1}
        # The log's registry.changed entries of the source system say the same.
        logged = [
            e["data"]
            for e in log_entries(fed.nodes[POLITIE], "registry.changed")
            if e["actor"] == f"source-{POLITIE}"
        ]
        assert sum(d["upserted"] for d in logged) == changes["upserted"]
        assert sum(d["removed"] for d in logged) == changes["removed"]
    finally:
        await fed.close()


async def test_retries_per_partner_equal_the_tries_the_log_records(tmp_path: Path) -> None:
    fed = await standard_federation(tmp_path)
    try:
        fed.register(OM, {"ref": "OM-1", "themes": ["veelplegers"], "identifiers": [JAN]})
        om = await interpose(fed, OM)
        ggz = await interpose(fed, GGZ)
        om.failures[EVALUATE_PATH] = [503]
        ggz.failures[EVALUATE_PATH] = [None, 502]
        await fed.query(VH, [JAN])
        om.failures[EVALUATE_PATH] = [502]
        await fed.query(VH, [JAN], case_ref="CASUS-2026-002")
        await fed.query(VH, [JAN], case_ref="CASUS-2026-003")  # nobody fails

        found = await figures(fed, VH)
        asked = log_entries(fed.nodes[VH], "bekendheid.asked")
        assert len(asked) == 3 * 4  # three rounds, four providers each (vh-test too)
        for partner in (VH, POLITIE, OM, GGZ):
            logged = sum(e["data"]["tries"] - 1 for e in asked if e["counterparty"] == partner)
            assert total(found, "vhnode_peer_retries_total", partner=partner) == logged, partner
        assert total(found, "vhnode_peer_retries_total", partner=OM) == 2
        assert total(found, "vhnode_peer_retries_total", partner=GGZ) == 2
        assert total(found, "vhnode_peer_retries_total", partner=POLITIE) == 0
    finally:
        await fed.close()


def test_every_metric_is_in_the_runbooks_table() -> None:
    """docs/operations.md "Metrics" names each metric a node exposes, as Prometheus
    shows it (a counter with ``_total``)."""
    runbook = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    families = list(NodeMetrics().registry.collect())
    assert families
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"| `{name}` |" in runbook, name
