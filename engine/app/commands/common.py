"""Helpers shared by the commands: running one pipeline and reporting a simple summary."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from engine.config import Config


def pipeline_command(args, config: Config, feed, source: str, seed: int | None, db: str,
                     speed: float | None, duration: float | None, expected: float | None) -> int:
    """Run ``feed`` through the pipeline into ``db``, print the summary; exit 0 unless the run failed."""
    from engine.app.report import emit
    from engine.app.runner import RunRequest, execute
    from engine.pipeline import RunOptions

    options = RunOptions(no_ml=getattr(args, "no_ml", False), speed=speed, duration_s=duration)
    show = sys.stdout.isatty() and not args.json and not getattr(args, "no_progress", False)
    request = RunRequest(args.command, feed, config, db, source, seed, options, show, expected)
    summary = execute(request)
    emit(summary, as_json=args.json, summary_path=args.summary_json)
    return 0 if summary["status"] == "completed" else 1


def report_simple(args, summary: dict, text: str) -> None:
    """Print ``text``; write ``--summary-json``; print the JSON last line with ``--json``."""
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(text)
    if args.json:
        print(orjson.dumps(summary).decode())
