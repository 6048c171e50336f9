"""Executes one pipeline run for a CLI command: run record, event loop (uvloop when installed),
signal handling, progress, and the run summary.

SIGINT/SIGTERM request a graceful stop: the feed stops, queues drain, persistence commits, the
summary prints and the exit code is 0. A second signal cancels the run (persistence still commits
what it had accepted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from engine import store
from engine.config import Config
from engine.errors import ChimeraError
from engine.logs import get_logger
from engine.pipeline import Pipeline, RunOptions, RunStats
from feeds.base import Feed

try:  # uvloop when installed (Linux/macOS); the standard loop otherwise
    import uvloop

    LOOP_FACTORY = uvloop.new_event_loop
except ImportError:  # pragma: no cover - exercised only where uvloop is absent
    LOOP_FACTORY = None


@dataclass
class RunRequest:
    command: str
    feed: Feed
    config: Config
    db_path: str
    source: str
    seed: int | None
    options: RunOptions
    show_progress: bool = False
    expected_duration_s: float | None = None


def new_run_id(command: str) -> str:
    return f"{command}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def execute(request: RunRequest) -> dict:
    """Run the pipeline to completion and return the summary dict (also stored in ``runs``)."""
    log = get_logger()
    run_id = new_run_id(request.command)
    db_dir = os.path.dirname(os.path.abspath(request.db_path))
    os.makedirs(db_dir, exist_ok=True)
    conn = store.connect(request.db_path, request.config.store.busy_timeout_ms)
    store.start_run(conn, run_id, request.command, request.seed, request.config.hash(), request.source,
                    _now_iso())
    pipeline = Pipeline(request.feed, request.config, request.db_path, run_id, request.options)
    status = "failed"
    try:
        with _progress(request, pipeline) as options_progress:
            pipeline.options.progress = options_progress
            _run_loop(pipeline, lambda: log.info(
                "run_started", run_id=run_id, command=request.command, source=request.source,
                instruments=[d.symbol for d in pipeline.instruments], db=request.db_path))
        status = "completed" if pipeline.stats.stopped_by != "cancelled" else "cancelled"
    finally:
        summary = build_summary(request, run_id, pipeline, conn, status)
        store.finish_run(conn, run_id, status, _now_iso(), orjson.dumps(summary).decode())
        conn.close()
        log.info("run_finished", run_id=run_id, status=status, events=summary["events"],
                 events_per_s=summary["events_per_s"], stopped_by=summary["stopped_by"])
    return summary


def _run_loop(pipeline: Pipeline, on_ready) -> RunStats:
    """Run on uvloop with SIGINT/SIGTERM handlers; ``on_ready`` is called once they are installed."""
    async def main() -> RunStats:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        signals_seen = 0

        def on_signal() -> None:
            nonlocal signals_seen
            signals_seen += 1
            if signals_seen == 1:
                get_logger().warning("stop_requested", hint="press Ctrl-C again to cancel")
                pipeline.request_stop()
            elif task is not None:
                pipeline.stats.stopped_by = "cancelled"
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal)
        on_ready()
        try:
            return await pipeline.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        try:
            return runner.run(main())
        except asyncio.CancelledError:
            return pipeline.stats


@contextlib.contextmanager
def _progress(request: RunRequest, pipeline: Pipeline):
    """A rich progress bar on a terminal (event time when the duration is known), else nothing."""
    if not request.show_progress:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[events]:,} events"),
               TimeElapsedColumn()]
    with Progress(*columns, transient=True) as progress:
        total = request.expected_duration_s
        task = progress.add_task(request.command, total=total, events=0)
        last = [0.0]

        def update(events: int, ts: int) -> None:
            now = time.perf_counter()
            if now - last[0] < 0.1:
                return
            last[0] = now
            first = pipeline.stats.first_ts or ts
            progress.update(task, completed=(ts - first) / 1e9 if total else None, events=events)

        yield update


def build_summary(request: RunRequest, run_id: str, pipeline: Pipeline, conn, status: str) -> dict:
    """Events, wall time, throughput, per-stage counts, signals, DB rows per table, errors."""
    stats = pipeline.stats
    wall = stats.wall_seconds
    integrity: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        "SELECT instrument_id, stage, counter, value FROM integrity WHERE run_id = ? AND value != 0",
        (run_id,),
    ).fetchall()
    symbols = {d.instrument_id: d.symbol for d in pipeline.instruments}
    for iid, stage, counter, value in rows:
        integrity.setdefault(symbols.get(iid, str(iid)), {})[f"{stage}.{counter}"] = value
    feed_stats = request.feed.stats()
    return {
        "run_id": run_id,
        "command": request.command,
        "status": status,
        "source": request.source,
        "seed": request.seed,
        "config_hash": request.config.hash(),
        "db": request.db_path,
        "instruments": [d.symbol for d in pipeline.instruments],
        "events": stats.events,
        "messages": feed_stats.get("messages", stats.events),
        "wall_seconds": round(wall, 3),
        "events_per_s": round(stats.events / wall, 1) if wall > 0 else 0.0,
        "event_time_seconds": round(((stats.last_ts or 0) - (stats.first_ts or 0)) / 1e9, 3),
        "stopped_by": stats.stopped_by,
        "stages": _stage_totals(stats),
        "per_instrument": _per_instrument(stats, conn, run_id, pipeline),
        "signals": stats.signals,
        "orders_accepted": stats.orders_accepted,
        "orders_rejected": stats.orders_rejected,
        "fills": stats.fills,
        "truth_labels": stats.truth_labels,
        "db_rows": store.table_counts(conn, run_id),
        "db_batches": stats.writer_batches,
        "feed": feed_stats,
        "errors": {"integrity": integrity, "feed_malformed_lines": feed_stats.get("malformed_lines", 0)},
    }


def _stage_totals(stats: RunStats) -> dict[str, dict[str, int]]:
    """Per-stage counts summed over the lanes (lane stages are keyed ``SYMBOL/stage``)."""
    totals: dict[str, dict[str, int]] = {}
    for key, stage in stats.stages.items():
        name = key.split("/")[-1]
        acc = totals.setdefault(name, dict.fromkeys(stage.as_dict(), 0))
        for field, value in stage.as_dict().items():
            acc[field] += value
    return totals


def _per_instrument(stats: RunStats, conn, run_id: str, pipeline: Pipeline) -> dict[str, dict[str, int]]:
    out = {}
    for d in pipeline.instruments:
        book = stats.stages.get(f"{d.symbol}/book")
        row = {"events": book.events_in if book else 0}
        for table in ("trades", "book_samples", "feature_samples", "signals", "fills"):
            row[table] = conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE run_id = ? AND instrument_id = ?", (run_id, d.instrument_id)
            ).fetchone()[0]
        out[d.symbol] = row
    return out


def raise_for_failed(summary: dict) -> None:
    if summary["status"] != "completed":
        raise ChimeraError(f"run {summary['run_id']} {summary['status']}")
