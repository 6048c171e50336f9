"""Argument types and option groups shared by every command of the CLI.

argparse with one-line errors (exit 2); numbers are checked here so that a bad flag never reaches a
run (``--duration nan`` is refused like ``--duration -1``).
"""

from __future__ import annotations

import argparse
import math
import sys


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


MAX_SECONDS = 366 * 86_400.0  # the longest duration a flag accepts: a year of market time


def positive_number(text: str, what: str, limit: float = MAX_SECONDS) -> float:
    """A finite number in ``(0, limit]`` (``nan``, ``inf`` and overflowing values are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value > limit:
        raise argparse.ArgumentTypeError(f"{what} (at most {limit:g}), got {text!r}")
    return value


def speed(text: str) -> float | None:
    return None if text == "max" else positive_number(text, "--speed must be 'max' or a positive number")


def positive(text: str) -> float:
    return positive_number(text, "expected a positive number")


def symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError("--symbol needs at least one symbol, e.g. AAPL,NVDA")
    return symbols


def common_options() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--config", "-c", metavar="PATH", help="config.toml to read (default: built-in defaults)")
    group.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set pipeline.queue_size=1 (repeatable)")
    group.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    group.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    group.add_argument("--debug", action="store_true", help="show tracebacks")
    return common


def reporting_options() -> argparse.ArgumentParser:
    reporting = Parser(add_help=False)
    group = reporting.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    group.add_argument("--summary-json", metavar="PATH", help="write the summary JSON to PATH")
    group.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    return reporting
