"""``vhnode query``: ask bekendheid of a convenant's partners through the running node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import click

from node.cli.common import home_option, json_option, main, print_json, print_table
from node.cli.subjects import ADDRESS_FORMAT, PERSON_FORMAT, subjects_from_options
from node.config import load_config
from node.errors import VhnodeError

BEKENDHEID_PATH = "/api/v1/bekendheid"
QUERY_TIMEOUT_SECONDS = 60.0


async def _post_json(url: str, token: str, body: Any) -> tuple[int, str, str]:
    timeout = aiohttp.ClientTimeout(total=QUERY_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            return resp.status, resp.content_type, await resp.text()
    except aiohttp.ClientError as e:
        raise VhnodeError(f"cannot reach the node at {url}: {e}") from e
    except TimeoutError as e:
        raise VhnodeError(f"no answer from {url} within {QUERY_TIMEOUT_SECONDS:.0f} s") from e


def _problem_detail(text: str) -> str:
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or text[:200])
    return text[:200]


def print_query_result(result: dict[str, Any]) -> None:
    several = int(result.get("subject_count", 1)) > 1
    click.echo(
        f"convenant {result['convenant_id']} v{result['convenant_version']}, "
        f"purpose {result['purpose']}, case {result['case_ref']}, "
        f"{result['subject_count']} subject(s), trace {result['trace_id']}"
    )
    headers = ["partner", "org type", "status", "reason / detail"]
    if several:
        headers.append("per subject")
    rows = []
    counts: dict[str, int] = {}
    for p in result["partners"]:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
        why = ": ".join(str(x) for x in (p.get("reason"), p.get("detail")) if x)
        row = [str(p["partner"]), str(p["org_type"]), str(p["status"]), why]
        if several:
            row.append(" ".join(f"{i + 1}:{s}" for i, s in enumerate(p.get("subjects", []))))
        rows.append(row)
    if rows:
        print_table(headers, rows)
    click.echo("summary: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))


@main.command()
@home_option
@click.option("--convenant", "convenant_id", required=True, help="Convenant id.")
@click.option("--purpose", required=True, help="Purpose id the convenant grants.")
@click.option("--case", "case_ref", required=True, help="Case reference (logged).")
@click.option("--bsn", "bsns", multiple=True, help="BSN (9 digits).")
@click.option("--person", "persons", multiple=True, help=f"'{PERSON_FORMAT}'.")
@click.option("--address", "addresses", multiple=True, help=f"'{ADDRESS_FORMAT}'.")
@click.option("--partner", "partners", multiple=True, help="Ask only these partners.")
@click.option("--url", help="Base URL of the running node (default: endpoint in node.toml).")
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
    """Ask bekendheid of every partner of a convenant, through the running node."""
    subjects = subjects_from_options(bsns, persons, addresses)
    base = url or str(load_config(home.expanduser()).endpoint)
    body: dict[str, Any] = {
        "convenant_id": convenant_id,
        "purpose": purpose,
        "case_ref": case_ref,
        "subjects": [s.model_dump(mode="json") for s in subjects],
    }
    if partners:
        body["partners"] = list(partners)
    target = base.rstrip("/") + BEKENDHEID_PATH
    status, content_type, text = asyncio.run(_post_json(target, token, body))
    if status != 200:
        raise VhnodeError(f"the node refused the query (HTTP {status}): {_problem_detail(text)}")
    try:
        result = json.loads(text)
    except json.JSONDecodeError as e:
        raise VhnodeError(f"the node answered {content_type}, not JSON") from e
    if as_json:
        print_json(result)
    else:
        print_query_result(result)
