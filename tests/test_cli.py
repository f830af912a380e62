"""The ``vhnode`` command line against real node homes (real keys, real SQLite).

Two nodes — the Veiligheidshuis (requester and provider) and the police (provider) —
exchange peer cards, draft, sign, merge and install a convenant, import registrations
and ask bekendheid through a running server. Every bad input gives one ``error:`` line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.cli import main
from node.errors import ConfigError
from node.flows.context import open_node
from node.http.server import serve
from node.protocol.convenant import draft_from_toml, parse_convenant

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

RUNNER = CliRunner()


def run(*args: str | Path) -> Result:
    result = RUNNER.invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def run_error(*args: str | Path, code: int | None = None) -> str:
    """Run a failing command: one ``error:`` line on stderr, non-zero exit, no traceback."""
    result = RUNNER.invoke(main, [str(a) for a in args])
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def convenant_toml(vh_purposes: str = '["casusoverleg-veelplegers"]') -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"""
id = "zwb-veelplegers"
version = 1
title = "Testconvenant veelplegers"
legal_basis = "Artikel 6, eerste lid, onder e, AVG"
valid_from = {start}
valid_until = {end}

[[purposes]]
id = "casusoverleg-veelplegers"
description = "Casusoverleg veelplegers"

[[parties]]
node_id = "vh-zwb"
roles = ["requester", "provider"]
query_purposes = {vh_purposes}
scope_themes = ["casus"]

[[parties]]
node_id = "politie-zwb"
roles = ["provider"]
scope_themes = ["veelplegers"]
"""


@dataclass
class Federation:
    tmp: Path
    vh: Path  # home of vh-zwb
    politie: Path  # home of politie-zwb
    vh_card: Path
    politie_card: Path
    vh_port: int
    politie_port: int


def init_node(home: Path, node_id: str, org_type: str, port: int) -> Result:
    return run(
        "init",
        "--home",
        home,
        "--node-id",
        node_id,
        "--organisation",
        f"Organisatie {node_id}",
        "--org-type",
        org_type,
        "--endpoint",
        f"http://127.0.0.1:{port}",
        "--port",
        str(port),
    )


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    vh_port, politie_port = free_port(), free_port()
    f = Federation(
        tmp_path,
        tmp_path / "vh",
        tmp_path / "politie",
        tmp_path / "vh-card.json",
        tmp_path / "politie-card.json",
        vh_port,
        politie_port,
    )
    init_node(f.vh, "vh-zwb", "veiligheidshuis", vh_port)
    init_node(f.politie, "politie-zwb", "politie", politie_port)
    run("card", "export", "--home", f.vh, "-o", f.vh_card)
    run("card", "export", "--home", f.politie, "-o", f.politie_card)
    run("peer", "add", "--home", f.vh, f.politie_card)
    run("peer", "add", "--home", f.politie, f.vh_card)
    return f


def signed_convenant(f: Federation) -> Path:
    """Draft at vh-zwb, each node signs its own copy, merged: the fully signed file."""
    source = f.tmp / "convenant.toml"
    source.write_text(convenant_toml())
    draft = f.tmp / "draft.json"
    run("convenant", "create", "--home", f.vh, source, "-o", draft)
    run("convenant", "sign", "--home", f.vh, draft, "-o", f.tmp / "vh-signed.json")
    politie_copy = f.tmp / "politie-signed.json"
    politie_copy.write_text(draft.read_text())
    run("convenant", "sign", "--home", f.politie, politie_copy)  # in place
    merged = f.tmp / "merged.json"
    run("convenant", "merge", f.tmp / "vh-signed.json", politie_copy, "-o", merged)
    return merged


# --- init, cards, peers ----------------------------------------------------------------


def test_init_prints_fingerprint_and_card_show_json_is_the_file(fed: Federation) -> None:
    status = json.loads(run("status", "--home", fed.vh, "--json").output)
    assert status["node_id"] == "vh-zwb"
    assert status["peers"] == ["politie-zwb"]
    shown = run("card", "show", "--home", fed.vh).output
    assert status["signing_key_fingerprint"] in shown
    assert (
        run("card", "show", "--home", fed.vh, "--json").output == (fed.vh / "card.json").read_text()
    )
    assert fed.vh_card.read_text() == (fed.vh / "card.json").read_text()
    peers = json.loads(run("peer", "list", "--home", fed.vh, "--json").output)
    assert [p["node_id"] for p in peers] == ["politie-zwb"]
    assert peers[0]["state"] == "active"


def test_init_output_names_node_fingerprint_and_card(tmp_path: Path) -> None:
    out = init_node(tmp_path / "n", "ggz-zwb", "ggz", 8400).output
    fp = json.loads(run("status", "--home", tmp_path / "n", "--json").output)[
        "signing_key_fingerprint"
    ]
    assert "ggz-zwb" in out
    assert fp in out
    assert str(tmp_path / "n" / "card.json") in out


def test_changed_key_for_known_node_needs_rotate(fed: Federation) -> None:
    impostor = fed.tmp / "politie-new"
    init_node(impostor, "politie-zwb", "politie", fed.politie_port)
    new_card = fed.tmp / "politie-new-card.json"
    run("card", "export", "--home", impostor, "-o", new_card)
    err = run_error("peer", "add", "--home", fed.vh, new_card)
    assert "another signing key" in err
    out = run("peer", "add", "--home", fed.vh, new_card, "--rotate").output
    assert out.startswith("rotated: politie-zwb")
    assert "unchanged" in run("peer", "add", "--home", fed.vh, new_card).output


def test_card_export_into_a_missing_folder_names_the_folder_not_a_temp_file(
    fed: Federation,
) -> None:
    target = fed.tmp / "no-such-folder" / "vh.card.json"
    err = run_error("card", "export", "--home", fed.vh, "-o", target)
    assert err == f"error: cannot write {target}: the folder {target.parent} does not exist"
    assert ".tmp" not in err


def test_peer_revoke(fed: Federation) -> None:
    run("peer", "revoke", "--home", fed.vh, "politie-zwb")
    peers = json.loads(run("peer", "list", "--home", fed.vh, "--json").output)
    assert peers[0]["state"] == "revoked"
    run_error("peer", "revoke", "--home", fed.vh, "om-zwb")


# --- convenant ---------------------------------------------------------------------------


def test_convenant_create_sign_merge_status_install(fed: Federation) -> None:
    merged = signed_convenant(fed)
    status = json.loads(run("convenant", "status", "--home", fed.vh, merged, "--json").output)
    assert status["in_force"] is True
    assert {p["node_id"]: p["signature"] for p in status["parties"]} == {
        "vh-zwb": "signed",
        "politie-zwb": "signed",
    }
    assert "in force" in run("convenant", "status", "--home", fed.politie, merged).output
    for home in (fed.vh, fed.politie):
        out = run("convenant", "install", "--home", home, merged).output
        assert "installed convenant zwb-veelplegers v1" in out
        listed = json.loads(run("convenant", "list", "--home", home, "--json").output)
        assert [(c["id"], c["in_force"]) for c in listed] == [("zwb-veelplegers", True)]


def test_convenant_signed_by_one_party_is_not_in_force_and_not_installed(
    fed: Federation,
) -> None:
    source = fed.tmp / "convenant.toml"
    source.write_text(convenant_toml())
    draft = fed.tmp / "draft.json"
    run("convenant", "create", "--home", fed.vh, source, "-o", draft)
    run("convenant", "sign", "--home", fed.vh, draft)
    status = json.loads(run("convenant", "status", "--home", fed.vh, draft, "--json").output)
    assert status["in_force"] is False
    assert {p["node_id"]: p["signature"] for p in status["parties"]}["politie-zwb"] == "missing"
    err = run_error("convenant", "install", "--home", fed.vh, draft)
    assert "politie-zwb" in err


def test_a_party_whose_card_is_not_held_is_named_as_such_not_as_unsigned(
    fed: Federation,
) -> None:
    # ggz-zwb signs, but only politie-zwb holds its card: vh-zwb cannot check the
    # signature, and must say it lacks the card rather than that ggz did not sign.
    ggz = fed.tmp / "ggz"
    init_node(ggz, "ggz-zwb", "ggz", free_port())
    ggz_card = fed.tmp / "ggz-card.json"
    run("card", "export", "--home", ggz, "-o", ggz_card)
    run("peer", "add", "--home", fed.politie, ggz_card)
    run("peer", "add", "--home", ggz, fed.politie_card)
    run("peer", "add", "--home", ggz, fed.vh_card)
    source = fed.tmp / "convenant.toml"
    source.write_text(
        convenant_toml()
        + '\n[[parties]]\nnode_id = "ggz-zwb"\nroles = ["provider"]\nscope_themes = ["zorg"]\n'
    )
    draft = fed.tmp / "draft.json"
    run("convenant", "create", "--home", fed.politie, source, "-o", draft)
    copies = []
    for home in (fed.vh, fed.politie, ggz):
        copy = fed.tmp / f"{home.name}-signed.json"
        copy.write_text(draft.read_text())
        run("convenant", "sign", "--home", home, copy)
        copies.append(copy)
    merged = fed.tmp / "merged.json"
    run("convenant", "merge", *copies, "-o", merged)
    err = run_error("convenant", "install", "--home", fed.vh, merged)
    assert "no card held for ggz-zwb" in err
    assert "not signed" not in err
    status = json.loads(run("convenant", "status", "--home", fed.vh, merged, "--json").output)
    assert {p["node_id"]: p["signature"] for p in status["parties"]}["ggz-zwb"] == "no_card"
    assert "no card held for ggz-zwb" in status["reason"]
    # With the card, the same file installs: the signature was there all along.
    run("peer", "add", "--home", fed.vh, ggz_card)
    assert "installed" in run("convenant", "install", "--home", fed.vh, merged).output


def test_example_convenant_source_is_valid() -> None:
    parties = {
        "vh-zwb": "veiligheidshuis",
        "politie-zwb": "politie",
        "om-zwb": "om",
        "reclassering-zwb": "reclassering",
        "ggz-zwb": "ggz",
        "gemeente-breda": "gemeente",
    }
    cards = {
        node_id: {
            "organisation": node_id,
            "org_type": org_type,
            "signing_fingerprint": f"{i:064x}",
            "encryption_fingerprint": f"{i + 9:064x}",
        }
        for i, (node_id, org_type) in enumerate(parties.items())
    }
    doc = draft_from_toml((CONFIG_DIR / "convenant.example.toml").read_text(), cards)
    conv, _ = parse_convenant(doc.to_json())
    assert {p.node_id for p in conv.parties} == set(parties)
    assert {p.id for p in conv.purposes} == {
        "casusoverleg-veelplegers",
        "casusoverleg-huiselijk-geweld",
    }
    assert "6, eerste lid, onder e, AVG" in conv.legal_basis


# --- registry, users, audit ------------------------------------------------------------

CSV = """ref,themes,bsn,surname,tussenvoegsel,first_names,birth_date
BPS-1,veelplegers,111222333,,,,
BPS-2,veelplegers,123456789,,,,
BPS-3,veelplegers;huiselijk_geweld,,Berg,van der,Jan,1990-01-31
"""


def test_registry_import_reports_bad_row_and_is_idempotent(fed: Federation) -> None:
    data = fed.tmp / "registry.csv"
    data.write_text(CSV)
    # A refused row is listed and makes the exit status 3 (issue 9 item 14).
    result = RUNNER.invoke(main, ["registry", "import", "--home", str(fed.politie), str(data)])
    assert result.exit_code == 3, result.output
    assert "line 3: " in result.stdout
    assert "11-proef" in result.stdout
    args = ["registry", "import", "--home", str(fed.politie), str(data), "--json"]
    again = RUNNER.invoke(main, args)
    assert again.exit_code == 3, again.output
    report = json.loads(again.stdout)
    assert report["rows"] == 3
    assert report["upserted"] == 0
    assert report["unchanged"] == 2
    assert report["errors"] == [
        {"line": 3, "field": "bsn", "refused": "row", "reason": report["errors"][0]["reason"]}
    ]
    stats = json.loads(run("registry", "stats", "--home", fed.politie, "--json").output)
    assert stats["registrations"] == 2


def test_registry_import_with_no_valid_row_fails(fed: Federation) -> None:
    data = fed.tmp / "bad.csv"
    data.write_text("ref,themes,bsn\nX-1,veelplegers,123456789\n")
    result = RUNNER.invoke(main, ["registry", "import", "--home", str(fed.politie), str(data)])
    assert result.exit_code == 1
    assert "line 2: " in result.stdout
    assert result.stderr.startswith("error: no valid row")


def test_user_add_prints_token_once_and_revoke(fed: Federation) -> None:
    out = run("user", "add", "--home", fed.vh, "coord", "--role", "coordinator").output
    token = out.strip().splitlines()[-1]
    assert token.startswith("vhn_")
    listed = json.loads(run("user", "list", "--home", fed.vh, "--json").output)
    assert listed[0]["name"] == "coord"
    assert token not in json.dumps(listed)
    run("user", "revoke", "--home", fed.vh, "coord")
    listed = json.loads(run("user", "list", "--home", fed.vh, "--json").output)
    assert listed[0]["revoked_at"] is not None
    run_error("user", "revoke", "--home", fed.vh, "coord")
    # Made on the host: the entries name no web admin ("by"); the host's records say who.
    db = sqlite3.connect(Path(fed.vh) / "node.db")
    try:
        rows = db.execute(
            "SELECT body FROM log_entries WHERE kind IN ('user.created', 'user.revoked')"
        ).fetchall()
    finally:
        db.close()
    assert [json.loads(r[0])["data"] for r in rows] == [{"role": "coordinator"}, {}]


def test_audit_verify_ok_after_admin_work(fed: Federation) -> None:
    run("user", "add", "--home", fed.vh, "fg", "--role", "privacy_officer")
    out = run("audit", "verify", "--home", fed.vh).output
    assert out.startswith("OK: ")
    report = json.loads(run("audit", "verify", "--home", fed.vh, "--json").output)
    assert report["ok"] is True
    assert report["entries"] >= 3  # initialised, peer added, user created


# --- errors ------------------------------------------------------------------------------


def test_bad_input_gives_one_error_line(fed: Federation) -> None:
    tmp = fed.tmp
    missing = tmp / "missing.json"
    not_json = tmp / "not.json"
    not_json.write_text("this is not json\n")
    broken = json.loads(fed.politie_card.read_text())
    sig = broken["signatures"][0]["signature"]
    broken["signatures"][0]["signature"] = ("B" if sig[0] != "B" else "C") + sig[1:]
    broken_card = tmp / "broken-card.json"
    broken_card.write_text(json.dumps(broken))
    bad_purpose = tmp / "bad-purpose.toml"
    bad_purpose.write_text(convenant_toml('["casusoverleg-onbekend"]'))
    home = ("--home", fed.vh)

    assert "no such file" in run_error("peer", "add", *home, missing)
    assert "not JSON" in run_error("peer", "add", *home, not_json)
    assert "does not verify" in run_error("peer", "add", *home, broken_card)
    assert "own card" in run_error("peer", "add", *home, fed.vh_card)
    run_error(
        "init",
        "--home",
        tmp / "x",
        "--node-id",
        "x-1",
        "--organisation",
        "X",
        "--org-type",
        "brandweer",
        "--endpoint",
        "http://127.0.0.1:1",
        code=2,
    )
    run_error(
        "init",
        "--home",
        tmp / "x",
        "--node-id",
        "X!",
        "--organisation",
        "X",
        "--org-type",
        "ggz",
        "--endpoint",
        "http://127.0.0.1:1",
        code=1,
    )
    assert "already holds a node" in run_error(
        "init",
        *home,
        "--node-id",
        "vh-zwb",
        "--organisation",
        "X",
        "--org-type",
        "veiligheidshuis",
        "--endpoint",
        "http://127.0.0.1:1",
    )
    run_error("user", "add", *home, "someone", "--role", "superuser", code=2)
    assert "unknown purpose" in run_error("convenant", "create", *home, bad_purpose)
    run_error("convenant", "create", *home, tmp / "missing.toml")
    run_error("convenant", "sign", *home, missing)
    run_error("convenant", "sign", *home, not_json)
    run_error("convenant", "status", *home, fed.vh_card)  # a card is not a convenant
    run_error("convenant", "install", *home, missing)
    run_error("convenant", "merge", missing, "-o", tmp / "out.json")
    run_error("convenant", "merge", not_json, code=2)  # -o is required
    run_error("registry", "import", *home, tmp / "missing.csv")
    run_error("registry", "import", *home, not_json)  # format unknown from the suffix
    assert "not a node home" in run_error("status", "--home", tmp / "nowhere")
    run_error("audit", "verify", "--home", tmp / "nowhere")
    run_error("card", "show", "--home", tmp / "nowhere")
    run_error("nonsense", code=2)
    run_error(
        "query", *home, "--convenant", "c", "--purpose", "p", "--case", "1", "--token", "t", code=2
    )
    run_error(
        "query",
        *home,
        "--convenant",
        "c",
        "--purpose",
        "p",
        "--case",
        "1",
        "--person",
        "Berg|van der|Jan",
        "--token",
        "t",
    )
    assert "cannot reach" in run_error(
        "query",
        *home,
        "--convenant",
        "c",
        "--purpose",
        "p",
        "--case",
        "1",
        "--address",
        "1234AB|12",
        "--token",
        "t",
        "--url",
        f"http://127.0.0.1:{free_port()}",
    )


def test_merge_of_different_texts_is_refused(fed: Federation) -> None:
    source = fed.tmp / "c.toml"
    source.write_text(convenant_toml())
    run("convenant", "create", "--home", fed.vh, source, "-o", fed.tmp / "one.json")
    run("convenant", "create", "--home", fed.politie, source, "-o", fed.tmp / "two.json")
    # same source, but drafted a moment apart is still the same text; change the title
    other = fed.tmp / "c2.toml"
    other.write_text(convenant_toml().replace("Testconvenant", "Ander convenant"))
    run("convenant", "create", "--home", fed.vh, other, "-o", fed.tmp / "three.json")
    run("convenant", "merge", fed.tmp / "one.json", fed.tmp / "two.json", "-o", fed.tmp / "m.json")
    assert "differ" in run_error(
        "convenant", "merge", fed.tmp / "one.json", fed.tmp / "three.json", "-o", fed.tmp / "m.json"
    )


# --- server and query ------------------------------------------------------------------


async def test_serve_refuses_other_host_and_stops_on_sigint(tmp_path: Path) -> None:
    init_node(tmp_path / "n", "om-zwb", "om", 8400)
    with pytest.raises(ConfigError):
        await serve(open_node(tmp_path / "n"), "0.0.0.0", 0)
    ready = asyncio.Event()
    task = asyncio.create_task(serve(open_node(tmp_path / "n"), "127.0.0.1", 0, ready))
    await asyncio.wait_for(ready.wait(), 5)
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(task, 5)  # returns: the signal stopped it gracefully


@pytest.fixture
def running(fed: Federation) -> Iterator[Federation]:
    """Both nodes serving in one background event loop, as their own processes would."""
    loop = asyncio.new_event_loop()
    tasks: list[asyncio.Task[None]] = []
    started = threading.Event()

    async def start() -> None:
        for home, port in ((fed.vh, fed.vh_port), (fed.politie, fed.politie_port)):
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(serve(open_node(home), "127.0.0.1", port, ready)))
            await ready.wait()
        started.set()

    thread = threading.Thread(target=lambda: loop.run_until_complete(start()) or loop.run_forever())
    thread.start()
    assert started.wait(10)
    try:
        yield fed
    finally:

        async def stop() -> None:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def convenant_installed(fed: Federation) -> Federation:
    merged = signed_convenant(fed)
    run("convenant", "install", "--home", fed.vh, merged)
    run("convenant", "install", "--home", fed.politie, merged)
    data = fed.tmp / "politie.csv"
    data.write_text("".join(line for line in CSV.splitlines(True) if "123456789" not in line))
    run("registry", "import", "--home", fed.politie, data)
    return fed


def test_query_through_running_node(convenant_installed: Federation, running: Federation) -> None:
    fed = running
    out = run("user", "add", "--home", fed.vh, "coord", "--role", "coordinator").output
    token = out.strip().splitlines()[-1]
    args: list[str | Path] = [
        "query",
        "--home",
        fed.vh,
        "--convenant",
        "zwb-veelplegers",
        "--purpose",
        "casusoverleg-veelplegers",
        "--case",
        "CASUS-1",
        "--token",
        token,
    ]
    result = json.loads(run(*args, "--bsn", "111222333", "--bsn", "111222345", "--json").output)
    by_partner = {p["partner"]: p for p in result["partners"]}
    assert by_partner["politie-zwb"]["status"] == "hit"
    assert by_partner["politie-zwb"]["subjects"] == ["hit", "no_hit"]
    assert by_partner["vh-zwb"]["status"] == "no_hit"
    table = run(*args, "--person", "Berg|van der|Jan|1990-01-31").output
    assert "politie-zwb" in table
    assert "hit" in table
    # The node checks the identifiers (the CLI loads no identifier models: its start-up
    # is bench/bench_cli.py's), and the error names the subject by its number.
    err = run_error(*args, "--bsn", "111222333", "--bsn", "123456789")
    assert "invalid_bsn" in err
    assert "subject 2: BSN 123456789 fails the 11-proef" in err
    err = run_error(*args[:-1], "wrong-token", "--bsn", "111222333")
    assert "401" in err
    assert "OK: " in run("audit", "verify", "--home", fed.vh).output


def test_python_m_node_runs_the_cli(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "node", "status", "--home", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ")
    assert proc.stderr.count("\n") == 1
