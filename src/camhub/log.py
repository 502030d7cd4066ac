"""Logging: the library logs through structlog and never configures it; the CLI does.

Library code calls :func:`get_logger` and logs events with key-value context. Applications that
embed camhub configure structlog (or the standard ``logging`` it can feed) as they like;
:func:`configure_logging` is what the ``camhub`` command uses.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]


def get_logger(name: str | None = None, **context: Any) -> Any:
    """A structlog logger bound to ``context`` (call it at use, not at import, in plugins too)."""
    logger = structlog.get_logger(name)
    return logger.bind(**context) if context else logger


def configure_logging(*, json: bool = False, level: str = "info") -> None:
    """Configure structlog for the command line: human console output or JSON lines on stderr."""
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
