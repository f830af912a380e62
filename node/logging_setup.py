"""Structured logging for the node: JSON lines for machines, readable lines on a terminal.

Both structlog loggers and the standard library's (aiohttp, asyncio) go through the same
processors, so a log shipper sees one format. aiohttp's access log is silenced: request
paths can carry a source system's registration reference, and the node's own log records
what matters (docs/protocol.md §9). Log events name nodes, convenants and codes, never a
subject's identifier.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from node.errors import ConfigError

LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (default stderr) at ``level`` or above.

    JSON lines when ``stream`` is not a terminal, coloured console lines when it is;
    timestamps are ISO 8601 in UTC. Calling it again replaces the earlier set-up.
    Raises ConfigError for an unknown level.
    """
    if level.lower() not in LEVELS:
        raise ConfigError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    numeric = logging.getLevelName(level.upper())
    out = stream if stream is not None else sys.stderr

    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if out.isatty():
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
