"""structlog set-up: console rendering on a terminal, JSON lines (orjson) with ``--log-json``.

Logs go to stderr so that stdout stays clean for tables and the ``--json`` summary line.
"""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


def configure(json_logs: bool = False, level: str = "info") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_logs:
        processors += [structlog.processors.dict_tracebacks,
                       structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode())]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_args) -> structlog.PrintLogger:
    """A logger on the *current* ``sys.stderr`` (looked up at each use, so redirections are honoured)."""
    return structlog.PrintLogger(sys.stderr)


def get_logger(name: str = "chimera"):
    return structlog.get_logger(name)
