"""``vhnode registry import`` as a partner's nightly script runs it: a real CLI process on a
real home, real files (issue 9 items 14 and 15).

One bad identifier no longer costs the whole registration; every refusal is listed by
line and CSV column (or JSON member); the exit status tells a script whether anything was
refused; the summary uses the words of ``--json``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CSV_HEADER = "ref;themes;bsn;surname;tussenvoegsel;first_names;birth_date;postcode;house_number\n"


def vhnode(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("import") / "politie"
    done = vhnode(
        "init", "--home", path, "--node-id", "politie-zwb", "--organisation", "Politie",
        "--org-type", "politie", "--endpoint", "http://127.0.0.1:8471", "--port", "8471",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return path


def stored_keys(home: Path, ref: str) -> list[str] | None:
    with sqlite3.connect(home / "node.db") as conn:
        row = conn.execute("SELECT subject_keys FROM registrations WHERE ref = ?", (ref,))
        found = row.fetchone()
    return None if found is None else list(json.loads(found[0]))


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in done.stderr
    return lines[0]


def test_a_bad_identifier_is_left_out_the_row_kept_and_the_exit_status_says_so(
    home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "export.csv"
    data.write_text(
        CSV_HEADER
        + "BPS-1;veelplegers;123456782;;;;;4331 SA;12\n"  # valid BSN, unusual postcode
        + "BPS-2;veelplegers;123456789;;;;;;\n"  # the only identifier is bad: row refused
        + "BPS-3;veelplegers;111222333;Berg;van der;Jan;1990-01-31;4331AB;12\n",
        encoding="utf-8",
    )
    done = vhnode("registry", "import", "--home", home, data)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "1 row(s) and 1 identifier(s)" in one_error_line(done)
    out = done.stdout.splitlines()
    assert out[0] == "rows: 3  upserted: 2  unchanged: 0  invalid: 1  invalid_identifiers: 1"
    assert out[1:] == [
        "line 2: column postcode: '4331 SA': the letters SA, SD and SS are not used "
        "(identifier left out; the row's other identifiers are imported)",
        "line 3: column bsn: BSN 123456789 fails the 11-proef (row refused)",
    ]
    assert "identifiers[" not in done.stdout
    # The BSN of the row with the bad postcode is in the registry, the refused row is not.
    assert stored_keys(home, "BPS-1") == ["bsn:123456782"]
    assert stored_keys(home, "BPS-2") is None
    assert stored_keys(home, "BPS-3") is not None

    again = vhnode("registry", "import", "--home", home, data, "--json")
    assert again.returncode == 3
    report = json.loads(again.stdout)
    # The summary's words are --json's keys.
    summary_words = {part.split(":")[0] for part in out[0].split("  ")}
    assert summary_words <= set(report)
    assert (report["rows"], report["upserted"], report["unchanged"]) == (3, 0, 2)
    assert (report["invalid"], report["invalid_identifiers"]) == (1, 1)
    assert [(e["line"], e["field"], e["refused"]) for e in report["errors"]] == [
        (2, "postcode", "identifier"),
        (3, "bsn", "row"),
    ]


def test_jsonl_errors_name_the_member_and_the_column_of_the_line(
    home: Path, tmp_path: Path
) -> None:
    good = {"kind": "bsn", "bsn": "123456782"}
    bad = {"kind": "person", "surname": "Berg", "first_names": "Jan", "birth_date": "1990-31-01"}
    data = tmp_path / "export.jsonl"
    data.write_text(
        json.dumps({"ref": "J-1", "themes": ["veelplegers"], "identifiers": [good, bad]})
        + "\n"
        + '{"ref": "J-2" "themes": ["veelplegers"]}\n',
        encoding="utf-8",
    )
    done = vhnode("registry", "import", "--home", home, data, "--json")
    assert done.returncode == 3, done.stderr
    errors = json.loads(done.stdout)["errors"]
    assert errors == [
        {
            "line": 1,
            "field": "identifiers[1].birth_date",
            "refused": "identifier",
            "reason": "identifiers[1]: birth_date '1990-31-01' is not a date "
            "(YYYY-MM-DD or DD-MM-YYYY)",
        },
        {
            "line": 2,
            "field": None,
            "refused": "row",
            "reason": "invalid JSON: Expecting ',' delimiter at column 15",
        },
    ]
    assert stored_keys(home, "J-1") == ["bsn:123456782"]


def test_exit_status_0_when_all_is_imported_and_1_when_nothing_is(
    home: Path, tmp_path: Path
) -> None:
    clean = tmp_path / "clean.csv"
    clean.write_text(CSV_HEADER + "C-1;veelplegers;111222333;;;;;;\n", encoding="utf-8")
    done = vhnode("registry", "import", "--home", home, clean)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("rows: 1  upserted: 1  unchanged: 0  invalid: 0")
    nothing = tmp_path / "nothing.csv"
    nothing.write_text(CSV_HEADER + "C-2;veelplegers;123456789;;;;;;\n", encoding="utf-8")
    done = vhnode("registry", "import", "--home", home, nothing)
    assert done.returncode == 1
    assert one_error_line(done).startswith("error: no valid row in ")
