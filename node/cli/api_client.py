"""Calling the running node's local API from the CLI (docs/api.md): shared options,
one request, and problem+json answers turned into one readable ``error:`` line.

The local API carries a user's bearer token, so it goes to the node's own listener
(``[http] host`` and ``port`` in node.toml) unless ``--url`` names another address. Never
to the card's ``endpoint``: that is the public address partners use, behind a reverse
proxy that exposes only ``/peer/v1/`` (README "Setting up a real node").

One request with the standard library's ``http.client``: a CLI call is one short
exchange, and the event loop and client of aiohttp cost more to import than the call
takes (bench/bench_cli.py).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from node.cli.common import home_option
from node.errors import PROBLEM_TYPE_BASE, ConfigError, VhnodeError

# node.config's name for the file; not imported from there, which would load pydantic.
CONFIG_FILE = "node.toml"

API_TIMEOUT_SECONDS = 60.0
# The addresses a node bound to every interface is reached at from this machine.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104

F = TypeVar("F", bound=Callable[..., Any])


def api_options(f: F) -> F:
    """``--home``, ``--url`` and ``--token`` (env ``VHNODE_TOKEN``)."""
    f = click.option(
        "--token", envvar="VHNODE_TOKEN", required=True, help="Bearer token (env VHNODE_TOKEN)."
    )(f)
    f = click.option(
        "--url",
        envvar="VHNODE_URL",
        help="Base URL of the node's local API (env VHNODE_URL; default: the [http] host and "
        "port in node.toml, never the public endpoint).",
    )(f)
    return home_option(f)


def _listener(home: Path) -> tuple[str, int]:
    """``[http]`` host and port of ``<home>/node.toml``.

    Read straight from the TOML when both are there, as ``init`` writes them: the
    validated config costs the CLI call its pydantic models (bench/bench_cli.py). Anything
    else — a key left out for its default, a value of the wrong type — goes through
    ``load_config``, which knows the defaults and says what is wrong.
    """
    path = home / CONFIG_FILE
    try:
        http_table = tomllib.loads(path.read_text(encoding="utf-8")).get("http", {})
    except FileNotFoundError as e:
        raise ConfigError(
            f"no {CONFIG_FILE} in {home}: pass --url with the address of your node's local "
            "API (e.g. --url http://127.0.0.1:8400), or --home with the node's home directory"
        ) from e
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        http_table = None
    host, port = (http_table or {}).get("host"), (http_table or {}).get("port")
    if isinstance(host, str) and isinstance(port, int) and 0 <= port <= 65535:
        return host, port
    from node.config import load_config  # noqa: PLC0415 - pydantic: only when needed

    cfg = load_config(home).http
    return cfg.host, cfg.port


def local_api_url(home: Path) -> str:
    """The node's own listener, from ``[http]`` in ``<home>/node.toml``."""
    host, port = _listener(home)
    if port == 0:
        raise ConfigError(
            f"{home / CONFIG_FILE}: [http] port is 0 (the node picks a free port when it "
            "starts): pass --url with the port it listens on"
        )
    host = _ANY_ADDRESS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def api_base(home: Path, url: str | None) -> str:
    """``--url`` if given, else the local listener of the node at ``home``."""
    return url.rstrip("/") if url else local_api_url(home.expanduser())


def _reason(e: OSError) -> str:
    if isinstance(e, socket.gaierror):
        return "unknown host"
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return f"TLS failed ({e.reason or e})"
    return (e.strerror or str(e) or type(e).__name__).lower()


def request(
    method: str, url: str, token: str, body: Any = None, timeout: float = API_TIMEOUT_SECONDS
) -> tuple[int, str, str]:
    """One call: (status, content type, text). VhnodeError when no answer came."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise VhnodeError(f"--url must be an http:// or https:// URL, got {url!r}")
    https = parts.scheme == "https"
    conn_cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    where = f"{parts.scheme}://{parts.netloc}"
    try:
        conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", errors="replace")
            return resp.status, resp.headers.get_content_type(), text
        finally:
            conn.close()
    except TimeoutError as e:
        raise VhnodeError(f"no answer from the node at {where} within {timeout:.0f} s") from e
    except (OSError, http.client.HTTPException) as e:
        why = _reason(e) if isinstance(e, OSError) else f"bad HTTP answer ({type(e).__name__})"
        raise VhnodeError(f"cannot reach the node at {where}: {why}") from e


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
    status, _, text = request(method, api_base(home, url) + path, token, body)
    if status != 200:
        code, detail = problem_code_and_detail(text)
        # The code first: "already_decided", "unknown_request" are what a user acts on.
        where = f"{code}, HTTP {status}" if code else f"HTTP {status}"
        raise VhnodeError(f"the node refused ({where}): {detail}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise VhnodeError("the node did not answer JSON") from e
