"""Helpers shared by the commands: opening an existing database, running one pipeline and reporting a
simple summary."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import orjson
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from engine import store
from engine.config import Config
from engine.errors import UsageError


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """``--format``: the format of the tape a command writes (default: by the output's name)."""
    parser.add_argument("--format", choices=("jsonl", "parquet"), default=None,
                        help="tape format: jsonl (JSON lines, the default) or parquet; a .parquet output name "
                             "also means parquet, and a format contradicting the name is refused")


def open_database(args, config: Config, readonly: bool = False):
    """``(path, connection)`` for ``--db`` (default ``[store] path``): an existing Chimera database, or a
    one-line UsageError; read-only connections first migrate a file of an older schema."""
    path = args.db or config.store.path
    if not Path(path).is_file():
        raise UsageError(f"--db {path}: no such database file")
    store.check_database(path)
    conn = store.connect(path, config.store.busy_timeout_ms, readonly=readonly)
    if readonly and conn.execute("PRAGMA user_version").fetchone()[0] < store.SCHEMA_VERSION:
        conn.close()
        conn = store.connect(path, config.store.busy_timeout_ms)  # an older schema: migrate it first
    return path, conn


def pipeline_command(args, config: Config, feed, source: str, seed: int | None, db: str,
                     speed: float | None, duration: float | None, expected: float | None,
                     params: dict | None = None, resume: str | None = None) -> int:
    """Run ``feed`` through the pipeline into ``db`` and print the summary; the exit code follows the
    run's status (0 completed or stopped, 130 cancelled; a failure raises its error)."""
    from engine.app.report import emit
    from engine.app.runner import EXIT_CODES, RunRequest, execute
    from engine.pipeline import RunOptions

    options = RunOptions(no_ml=getattr(args, "no_ml", False), speed=speed, duration_s=duration)
    show = sys.stdout.isatty() and not args.json and not getattr(args, "no_progress", False)
    request = RunRequest(args.command, feed, config, db, source, seed, options, show, expected,
                         params=params or {}, resume=resume)
    summary = execute(request)
    emit(summary, as_json=args.json, summary_path=args.summary_json)
    return EXIT_CODES[summary["status"]]


# Flags that change neither the events nor the rows of a run (a resumed run may change them).
PRESENTATION_FLAGS = frozenset({
    "command", "config", "overrides", "log_json", "log_level", "debug", "json", "summary_json", "no_progress",
    "speed", "db", "resume",
})


def run_parameters(args, files: list[str]) -> dict:
    """What a resumed run must repeat exactly: the input files (absolute path and size) and every flag
    that shapes the output (the configuration is compared by its hash)."""
    flags = {k: v for k, v in sorted(vars(args).items()) if k not in PRESENTATION_FLAGS and k != "files"}
    inputs = [{"path": str(Path(f).resolve()), "bytes": Path(f).stat().st_size} for f in files]
    return {"files": inputs, **flags}


def seed_list(text: str) -> tuple[int, ...]:
    """argparse type of a seed list: comma-separated integers, at least one."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, e.g. 1,2,3, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return values


def json_summary(args, summary: dict) -> bool:
    """Write ``--summary-json``; with ``--json`` print the summary as one line and return True (no table)."""
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if args.json:
        print(orjson.dumps(summary).decode())
        return True
    return False


def register_model(config: Config, db: str, *, promote: bool, **row):
    """Record a saved model in the registry of ``db`` (shadow mode), as champion when ``promote``; the row."""
    from engine.store import models as registry_rows

    conn = store.connect(db, config.store.busy_timeout_ms)
    try:
        found = registry_rows.register_model(conn, mode="shadow", **row)
        if promote:
            found = registry_rows.promote_model(conn, row["version"])
    finally:
        conn.close()
    return found


def report_simple(args, summary: dict, text: str) -> None:
    """Print ``text``; write ``--summary-json``; print the JSON last line with ``--json``."""
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(text)
    if args.json:
        print(orjson.dumps(summary).decode())


def progress_bar(args, *, remaining: bool = True):
    """A transient rich progress bar on a terminal, or a context giving None (``--json``, ``--no-progress``,
    stderr not a terminal): the commands then run without one."""
    if args.json or getattr(args, "no_progress", False) or not sys.stderr.isatty():
        return contextlib.nullcontext()
    clock = TimeRemainingColumn() if remaining else TimeElapsedColumn()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), clock, transient=True)
