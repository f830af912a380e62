"""Structured logging for the node: JSON lines for machines, readable lines on a terminal,
priority-prefixed lines for the systemd journal.

Both structlog loggers and the standard library's (aiohttp, asyncio) go through the same
processors, so a log shipper sees one format. aiohttp's access log is silenced: request
paths can carry a source system's registration reference, and the node's own log records
what matters (docs/protocol.md §9). Log events name nodes, convenants and codes, never a
subject's identifier.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog

from node.errors import ConfigError

LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")

LOG_FORMATS: tuple[str, ...] = ("auto", "json", "console", "journal")

# syslog(3) priorities: journald reads a "<N>" at the start of a line as the entry's
# priority (SyslogLevelPrefix=, on by default), so `journalctl -p warning` works.
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def under_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the journal's: systemd sets ``$JOURNAL_STREAM`` to the
    device and inode of the stream it connected (systemd.exec(5)); a stream redirected
    elsewhere by the unit or a shell has another, and keeps the format it would have."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):
        return False


# A traceback's newlines are escaped, so it stays one entry in the journal.
_LOGFMT = structlog.processors.LogfmtRenderer(key_order=["logger"], drop_missing=True)


def _journal_line(_logger: Any, _name: str, event_dict: structlog.typing.EventDict) -> str:
    """``<priority>event key=value …``: the journal stamps each line with the time, the
    unit and the process itself, so the line carries neither a timestamp nor colour."""
    level = str(event_dict.pop("level", "info"))
    event = str(event_dict.pop("event", ""))
    rest = _LOGFMT(_logger, _name, event_dict)
    return f"<{_PRIORITY.get(level, 6)}>{event}" + (f" {rest}" if rest else "")


def configure_logging(level: str = "info", stream: TextIO | None = None, fmt: str = "auto") -> None:
    """Send every log record to ``stream`` (default stderr) at ``level`` or above.

    ``fmt`` ``auto``: journal lines when ``stream`` is systemd's journal stream
    (``$JOURNAL_STREAM``), coloured console lines on a terminal, JSON lines otherwise;
    timestamps are ISO 8601 in UTC, except in journal lines (the journal has its own).
    Calling it again replaces the earlier set-up. Raises ConfigError for an unknown level
    or format.
    """
    if level.lower() not in LEVELS:
        raise ConfigError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"unknown log format {fmt!r}; one of {', '.join(LOG_FORMATS)}")
    numeric = logging.getLevelName(level.upper())
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "journal" if under_journal(out) else "console" if out.isatty() else "json"

    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    if fmt != "journal":
        shared.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
    renderer: structlog.typing.Processor
    if fmt == "journal":
        renderer = _journal_line
        shared.append(structlog.processors.format_exc_info)
    elif fmt == "console":
        # Plain tracebacks: rich's or better_exceptions' (used when installed) print local
        # variables, which could put a detail text or an identifier on the console.
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    else:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # One line per HTTP request, with its path, is not something this node keeps.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
