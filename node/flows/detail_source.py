"""The source-system endpoint: detail fetched at request time (docs/protocol.md §14.10).

A partner whose registrations carry no stored text for a category may let its node ask
its own source system when a detail request needs it. The answer is all or nothing: one
bad entry, an unasked ref, an oversized body or a slow answer makes the whole answer a
failure, so a half-understood source never leaks a text into a sealed payload.

Nothing from the source is stored or logged here: the texts go back to the caller only,
and a failure's ``detail`` names what was wrong with the answer, never a text, ref,
identifier or local path: it may reach the operator's log, the liaison and, as a
category's ``reason_detail``, the requester.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from node.config import DetailsConfig, check_private
from node.errors import ConfigError
from node.protocol.detail import MAX_ENTRY_CHARS, SOURCE_TOO_LARGE, SOURCE_UNAVAILABLE

__all__ = ["SourceAnswer", "SourceFailure", "ask_source", "parse_source_answer"]

logger = structlog.get_logger("vhnode.source")

_ENTRY_KEYS = frozenset({"ref", "category", "body"})
# The rule of registration details (node/protocol/registration.py): tab and newline are the only
# control characters; lone surrogates could not be encoded into the sealed payload.
_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# RFC 6750 b64token, loosened to any visible ASCII: what can go in a header unquoted.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class SourceAnswer:
    """What the source system said: texts per ``(ref, category)``, or why not.

    ``texts`` holds only pairs that were asked, and is empty whenever ``failure`` is set.
    """

    texts: dict[tuple[str, str], str] = field(default_factory=dict)
    failure: str | None = None  # None, SOURCE_UNAVAILABLE or SOURCE_TOO_LARGE
    detail: str | None = None  # why it failed: never a text, ref or identifier


class SourceFailure(Exception):
    """Internal: ends one call to the source with a failure code and a safe detail."""

    def __init__(self, failure: str, detail: str, http_status: int | None = None) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail
        self.http_status = http_status


async def ask_source(
    cfg: DetailsConfig,
    session: aiohttp.ClientSession,
    refs: Sequence[str],
    categories: Sequence[str],
    *,
    purpose: str,
    requester: str,
    trace_id: str,
) -> SourceAnswer:
    """Ask the configured source system for the texts of ``refs`` × ``categories``.

    No ``source_url``, no refs or no categories: an empty answer without a call. Never
    raises for anything the source does (or fails to do); a failure is in the answer.
    """
    if cfg.source_url is None or not refs or not categories:
        return SourceAnswer({})
    body = {
        "refs": list(refs),
        "categories": list(categories),
        "purpose": purpose,
        "requester": requester,
        "trace_id": trace_id,
    }
    try:
        raw = await _post(cfg, session, body, _headers(cfg.source_token_file))
        texts = parse_source_answer(raw, refs, categories)
    except SourceFailure as e:
        logger.warning(
            "source.failed", failure=e.failure, http_status=e.http_status, trace_id=trace_id
        )
        return SourceAnswer({}, e.failure, e.detail)
    return SourceAnswer(texts)


def _headers(token_file: Path | None) -> dict[str, str]:
    # Compression would let a small body expand past source_max_bytes before we count it.
    headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
    if token_file is None:
        return headers
    try:
        check_private(token_file.expanduser(), "details.source_token_file")
    except ConfigError as e:
        # A token others can read is not used, as at start; the detail may reach the
        # requester, so the path and the chmod go to this node's log only.
        logger.warning("source_token_file_open", problem=e.detail)
        raise SourceFailure(
            SOURCE_UNAVAILABLE, "details.source_token_file is open to other users"
        ) from e
    try:
        token = token_file.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise SourceFailure(
            SOURCE_UNAVAILABLE, f"cannot read details.source_token_file: {why}"
        ) from e
    if not token:
        raise SourceFailure(SOURCE_UNAVAILABLE, "details.source_token_file is empty")
    if not _TOKEN.fullmatch(token):
        raise SourceFailure(
            SOURCE_UNAVAILABLE,
            "details.source_token_file holds characters a bearer token cannot have",
        )
    headers["Authorization"] = f"Bearer {token}"
    return headers


async def _post(
    cfg: DetailsConfig, session: aiohttp.ClientSession, body: Any, headers: dict[str, str]
) -> bytes:
    """POST and read at most ``source_max_bytes`` of the answer, whatever it claims."""
    limit = cfg.source_max_bytes
    try:
        # One deadline for connecting, sending and reading, however the source dribbles.
        async with (
            asyncio.timeout(cfg.source_timeout_seconds),
            session.post(
                str(cfg.source_url),
                json=body,
                headers=headers,
                # A redirect would carry the bearer token and the refs wherever it points.
                allow_redirects=False,
            ) as resp,
        ):
            if resp.status != 200:
                raise SourceFailure(
                    SOURCE_UNAVAILABLE, f"source system answered HTTP {resp.status}", resp.status
                )
            if resp.content_length is not None and resp.content_length > limit:
                raise SourceFailure(
                    SOURCE_TOO_LARGE,
                    f"source system announced {resp.content_length} bytes, "
                    f"details.source_max_bytes is {limit}",
                    resp.status,
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise SourceFailure(
                        SOURCE_TOO_LARGE,
                        f"source system answered more than details.source_max_bytes ({limit})",
                        resp.status,
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except TimeoutError as e:
        raise SourceFailure(
            SOURCE_UNAVAILABLE,
            f"no answer from the source system within {cfg.source_timeout_seconds:g} s",
        ) from e
    except (aiohttp.ClientError, OSError) as e:
        # Refused, reset, a bad TLS certificate, a truncated body: no usable answer.
        raise SourceFailure(
            SOURCE_UNAVAILABLE, f"cannot reach the source system: {type(e).__name__}"
        ) from e


def parse_source_answer(
    raw: bytes, refs: Sequence[str], categories: Sequence[str]
) -> dict[tuple[str, str], str]:
    """The texts of a source answer, or SourceFailure for anything not exactly per §14.10.

    Entries are named by position only: a failure detail must not echo what the source
    sent (a ref, a text), since it goes to the operator's log.
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:  # not UTF-8, not JSON, absurdly nested
        raise SourceFailure(SOURCE_UNAVAILABLE, "source system answered something not JSON") from e
    if not isinstance(data, dict) or set(data) != {"details"}:
        raise SourceFailure(
            SOURCE_UNAVAILABLE, 'source system answer must be an object {"details": [...]}'
        )
    entries = data["details"]
    if not isinstance(entries, list):
        raise SourceFailure(SOURCE_UNAVAILABLE, "source system answer: details must be an array")
    asked_refs, asked_categories = set(refs), set(categories)
    texts: dict[tuple[str, str], str] = {}
    for i, entry in enumerate(entries):
        where = f"source system answer: details[{i}]"
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise SourceFailure(
                SOURCE_UNAVAILABLE, f"{where} must be an object with ref, category and body"
            )
        ref, category, text = entry["ref"], entry["category"], entry["body"]
        if not isinstance(ref, str) or ref not in asked_refs:
            raise SourceFailure(SOURCE_UNAVAILABLE, f"{where}: a ref that was not asked")
        if not isinstance(category, str) or category not in asked_categories:
            raise SourceFailure(SOURCE_UNAVAILABLE, f"{where}: a category that was not asked")
        texts_key = (ref, category)
        if texts_key in texts:
            raise SourceFailure(SOURCE_UNAVAILABLE, f"{where}: a ref and category given twice")
        texts[texts_key] = _text(text, where)
    return texts


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise SourceFailure(SOURCE_UNAVAILABLE, f"{where}: body must be a string")
    text = value.replace("\r\n", "\n")
    if not text.strip():
        raise SourceFailure(SOURCE_UNAVAILABLE, f"{where}: body is empty")
    if len(text) > MAX_ENTRY_CHARS:
        raise SourceFailure(
            SOURCE_UNAVAILABLE,
            f"{where}: body has {len(text)} characters, at most {MAX_ENTRY_CHARS}",
        )
    if _FORBIDDEN.search(text):
        raise SourceFailure(
            SOURCE_UNAVAILABLE,
            f"{where}: body has control characters (only tab and newline are allowed)",
        )
    return text
