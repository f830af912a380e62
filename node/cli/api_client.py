"""Calling the running node's local API from the CLI (docs/api.md): shared options,
one request, and problem+json answers turned into one readable ``error:`` line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click

from node.cli.common import home_option
from node.config import load_config
from node.errors import PROBLEM_TYPE_BASE, VhnodeError

API_TIMEOUT_SECONDS = 60.0

F = TypeVar("F", bound=Callable[..., Any])


def api_options(f: F) -> F:
    """``--home``, ``--url`` and ``--token`` (env ``VHNODE_TOKEN``)."""
    f = click.option(
        "--token", envvar="VHNODE_TOKEN", required=True, help="Bearer token (env VHNODE_TOKEN)."
    )(f)
    f = click.option(
        "--url", help="Base URL of the running node (default: endpoint in node.toml)."
    )(f)
    return home_option(f)


async def _request(method: str, url: str, token: str, body: Any) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method, url, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as resp,
        ):
            return resp.status, await resp.text()
    except aiohttp.ClientError as e:
        raise VhnodeError(f"cannot reach the node at {url}: {e}") from e
    except TimeoutError as e:
        raise VhnodeError(f"no answer from {url} within {API_TIMEOUT_SECONDS:.0f} s") from e


def problem_code_and_detail(text: str) -> tuple[str | None, str]:
    """The stable code (the tail of ``type``) and the ``detail`` of a problem+json text."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return None, text[:200]
    if not isinstance(body, dict):
        return None, text[:200]
    kind = body.get("type")
    code = kind.removeprefix(PROBLEM_TYPE_BASE) if isinstance(kind, str) else None
    detail = body.get("detail") or body.get("title") or text[:200]
    return (code if kind and kind.startswith(PROBLEM_TYPE_BASE) else None), str(detail)


def api_call(
    home: Path, url: str | None, token: str, method: str, path: str, body: Any = None
) -> Any:
    """One call; the JSON answer, or VhnodeError naming the problem's code and detail."""
    base = url or str(load_config(home.expanduser()).endpoint)
    status, text = asyncio.run(_request(method, base.rstrip("/") + path, token, body))
    if status != 200:
        code, detail = problem_code_and_detail(text)
        # The code first: "already_decided", "unknown_request" are what a user acts on.
        where = f"{code}, HTTP {status}" if code else f"HTTP {status}"
        raise VhnodeError(f"the node refused ({where}): {detail}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise VhnodeError("the node did not answer JSON") from e
