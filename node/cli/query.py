"""``vhnode query``: ask bekendheid of a convenant's partners through the running node."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from node.cli.api_client import api_base, problem_code_and_detail, request
from node.cli.common import home_option, json_option, main, print_json, print_table
from node.cli.subjects import (
    ADDRESS_FORMAT,
    PERSON_FORMAT,
    SubjectCommand,
    subjects_from_options,
)
from node.errors import VhnodeError

BEKENDHEID_PATH = "/api/v1/bekendheid"
QUERY_TIMEOUT_SECONDS = 60.0


def numbered(result: dict[str, Any]) -> None:
    """Number the subjects the node echoed (masked, in request order) as the output shows
    them, which is what ``details request --subject`` takes."""
    for i, s in enumerate(result.get("subjects", [])):
        result["subjects"][i] = {"number": i + 1, **s}


def _by_number(detail: str) -> str:
    # The node names a subject by its place in the request, from 0 ("subjects.2: …"); the
    # coordinator typed them and reads them numbered from 1.
    return re.sub(r"\bsubjects\.(\d+)", lambda m: f"subject {int(m.group(1)) + 1}", detail)


def print_query_result(result: dict[str, Any]) -> None:
    several = int(result.get("subject_count", 1)) > 1
    click.echo(
        f"convenant {result['convenant_id']} v{result['convenant_version']}, "
        f"purpose {result['purpose']}, case {result['case_ref']}, "
        f"{result['subject_count']} subject(s), trace {result['trace_id']}"
    )
    for s in result.get("subjects", []):
        click.echo(f"subject {s['number']}: {s['masked']}")
    headers = ["partner", "org type", "status", "reason / detail"]
    if several:
        headers.append("per subject")
    rows = []
    counts: dict[str, int] = {}
    for p in result["partners"]:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
        why = ": ".join(str(x) for x in (p.get("reason"), p.get("detail")) if x)
        if int(p.get("tries") or 1) > 1:  # it failed fast and was asked again
            why = f"{why} (after {p['tries']} tries)".strip()
        row = [str(p["partner"]), str(p["org_type"]), str(p["status"]), why]
        if several:
            row.append(" ".join(f"{i + 1}:{s}" for i, s in enumerate(p.get("subjects", []))))
        rows.append(row)
    if rows:
        print_table(headers, rows)
    click.echo("summary: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))


@main.command(cls=SubjectCommand)
@home_option
@click.option("--convenant", "convenant_id", required=True, help="Convenant id.")
@click.option("--purpose", required=True, help="Purpose id the convenant grants.")
@click.option("--case", "case_ref", required=True, help="Case reference (logged).")
@click.option("--bsn", "bsns", multiple=True, help="BSN (9 digits).")
@click.option("--person", "persons", multiple=True, help=f"'{PERSON_FORMAT}'.")
@click.option("--address", "addresses", multiple=True, help=f"'{ADDRESS_FORMAT}'.")
@click.option("--partner", "partners", multiple=True, help="Ask only these partners.")
@click.option(
    "--url",
    envvar="VHNODE_URL",
    help="Base URL of the node's local API (env VHNODE_URL; default: the [http] host and "
    "port in node.toml, never the public endpoint).",
)
@click.option(
    "--token", envvar="VHNODE_TOKEN", required=True, help="Bearer token (env VHNODE_TOKEN)."
)
@json_option
def query(
    *,
    home: Path,
    convenant_id: str,
    purpose: str,
    case_ref: str,
    bsns: tuple[str, ...],
    persons: tuple[str, ...],
    addresses: tuple[str, ...],
    partners: tuple[str, ...],
    url: str | None,
    token: str,
    as_json: bool,
) -> None:
    """Ask bekendheid of every partner of a convenant, through the running node.

    Subjects are numbered in the order typed (--bsn, --person and --address mixed); the
    output shows each number with the subject masked, and `details request --subject N`
    takes the same number.
    """
    subjects = subjects_from_options(bsns, persons, addresses)
    base = api_base(home, url)
    body: dict[str, Any] = {
        "convenant_id": convenant_id,
        "purpose": purpose,
        "case_ref": case_ref,
        "subjects": subjects,
    }
    if partners:
        body["partners"] = list(partners)
    status, content_type, text = request(
        "POST", base + BEKENDHEID_PATH, token, body, QUERY_TIMEOUT_SECONDS
    )
    if status != 200:
        code, detail = problem_code_and_detail(text)
        where = f"{code}, HTTP {status}" if code else f"HTTP {status}"
        raise VhnodeError(f"the node refused the query ({where}): {_by_number(detail)}")
    try:
        result = json.loads(text)
    except json.JSONDecodeError as e:
        raise VhnodeError(f"the node answered {content_type}, not JSON") from e
    numbered(result)
    if as_json:
        print_json(result)
    else:
        print_query_result(result)
