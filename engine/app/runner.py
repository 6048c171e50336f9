"""Executes one pipeline run for a CLI command: the database check, the run record, the event loop
(uvloop when installed, else the standard loop), signal handling, progress, recovery of the store
after a failure, and the run summary.

Statuses (engine/store/runs.py): ``completed`` at the end of data or ``--duration`` (exit 0);
``stopped`` after SIGINT/SIGTERM, which stop the feed, drain every queue and commit (exit 0);
``cancelled`` after a second signal (persistence still commits what it had accepted; exit 130);
``failed`` on an error (exit 1, or the error's own code: 2 for damaged input). When SQLite refuses a
write mid-run, the run waits up to ``[store] recovery_timeout_s`` for the database to accept writes
again, then writes every row it had accepted and marks the run ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import numpy as np
import orjson

from engine import store
from engine.analytics import run_analytics
from engine.app.stop_signals import stop_on_signals
from engine.config import Config
from engine.errors import ChimeraError, StoreError, UsageError
from engine.logs import get_logger
from engine.pipeline import Pipeline, RunOptions, RunStats
from engine.pipeline.models import RunModels, load_run_models
from engine.store.signals import strategy_summary
from feeds.base import Feed

try:  # uvloop when installed (Linux/macOS); the standard loop otherwise
    import uvloop

    LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
except ImportError:  # pragma: no cover - exercised only where uvloop is absent
    LOOP_FACTORY = None

REAL_DATA_COMMANDS = ("replay",)  # recorded market data: simulator-trained models run in shadow (SPEC 12)
EXIT_CODES = {"completed": 0, "stopped": 0, "cancelled": 130, "failed": 1}
T = TypeVar("T")


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
    params: dict = field(default_factory=dict)  # what a resumed run must repeat exactly (files, options)
    resume: str | None = None  # the id of an earlier run to continue
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = LOOP_FACTORY


def new_run_id(command: str) -> str:
    return f"{command}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def execute(request: RunRequest) -> dict:
    """Run the pipeline to completion and return the summary dict (also stored in ``runs``).

    Raises:
        UsageError: a ``--db`` that is not a Chimera database, or a run that cannot be resumed
            (before anything runs).
        ChimeraError: the run failed; it is marked ``failed`` with this error as its reason.
    """
    log = get_logger()
    store.check_database(request.db_path)
    conn = store.connect(request.db_path, request.config.store.busy_timeout_ms)
    try:
        interrupted = store.mark_interrupted(conn)
        if interrupted:
            log.info("runs_interrupted", runs=interrupted)
        if request.options.models is None:  # the registry's champions, verified before any run row is written
            request.options.models = load_run_models(conn, no_ml=request.options.no_ml,
                                                     real_data=request.command in REAL_DATA_COMMANDS)
        run_id, skip = _claim_run(conn, request)
        pipeline = Pipeline(request.feed, request.config, request.db_path, run_id, request.options, skip=skip)
        error: BaseException | None = None
        try:
            with _progress(request, pipeline) as options_progress:
                pipeline.options.progress = options_progress
                _run_loop(pipeline, request.loop_factory, lambda: log.info(
                    "run_started", run_id=run_id, command=request.command, source=request.source,
                    instruments=[d.symbol for d in pipeline.instruments], db=request.db_path,
                    resumed_rows_skipped=skip.total if skip else 0))
        except Exception as exc:  # noqa: BLE001 - every failure is recorded in the run row, then re-raised
            error = exc
        status, reason = outcome(pipeline.stats, error)
        _until_writable(pipeline.writer.flush_pending, request, "pending_rows")
        summary = build_summary(request, run_id, pipeline, conn, status, reason)
        if error is None and request.config.execution.exit_agent_shadow:
            summary["exit_agent_shadow"] = _register_shadow_table(request, run_id, pipeline, conn)
        _until_writable(lambda: store.finish_run(conn, run_id, status, _now_iso(), orjson.dumps(summary).decode(),
                                                 reason, pipeline.stats.events), request, "run_row")
        log.info("run_finished", run_id=run_id, status=status, events=summary["events"],
                 events_per_s=summary["events_per_s"], stopped_by=summary["stopped_by"])
    finally:
        conn.close()
    if error is not None:
        raise error
    return summary


def _register_shadow_table(request: RunRequest, run_id: str, pipeline: Pipeline, conn) -> dict:
    """Shadow mode ([execution] exit_agent_shadow): the table that learned from this run's entries is saved
    beside the database and registered as an ``exit_agent`` candidate in shadow mode."""
    from engine.store import models as registry_rows
    from ml.exit_agent import save_table

    learner = pipeline.portfolio[-1][1].observer
    paths = learner.finish()
    version = f"exits-shadow-{run_id}"
    path = Path(request.db_path).resolve().parent / "models" / f"{version}.npz"
    sha = save_table(learner.table, path)
    ex = request.config.execution
    training = {"source": "shadow", "run_id": run_id, "paths": paths, "from_table": ex.exit_agent_table,
                "from_sha256": ex.exit_agent_sha256}
    row = registry_rows.register_model(conn, version=version, kind="exit_agent", path=str(path), sha256=sha,
                                       training=training, metrics={}, mode="shadow")
    get_logger().info("exit_agent_shadow", version=version, paths=paths)
    return {"version": row.version, "path": row.path, "sha256": row.sha256, "paths": paths}


def _claim_run(conn, request: RunRequest) -> tuple[str, store.CommittedPrefix | None]:
    """A new run row, or (``--resume``) the earlier run taken over, with what it had committed."""
    params = orjson.dumps(request.params, option=orjson.OPT_SORT_KEYS).decode()
    if request.resume is None:
        run_id = new_run_id(request.command)
        store.start_run(conn, run_id, request.command, request.seed, request.config.hash(), request.source,
                        _now_iso(), params)
        return run_id, None
    row = store.get_run(conn, request.resume)
    if row is None:
        raise UsageError(f"--resume {request.resume}: no such run in {request.db_path} (see `chimera runs`)")
    if row.status not in store.RESUMABLE_STATUSES:
        what = "still running in another process" if row.status == "running" else row.status
        raise UsageError(f"--resume {row.run_id}: the run is {what}; only {', '.join(store.RESUMABLE_STATUSES)} "
                         "runs can be resumed")
    if row.command != request.command or row.params != params:
        raise UsageError(f"--resume {row.run_id}: give the same files and options as the original run "
                         f"(recorded: {row.command} {row.params})")
    if row.config_hash != request.config.hash():
        raise UsageError(f"--resume {row.run_id}: the effective configuration differs from the original run's; "
                         "use the same -c and --set")
    skip = store.CommittedPrefix.of_run(conn, row.run_id)
    store.reclaim_run(conn, row.run_id)
    return row.run_id, skip


def outcome(stats: RunStats, error: BaseException | None) -> tuple[str, str]:
    """The run's status and the reason it stopped."""
    if error is not None:
        return "failed", str(error) if isinstance(error, ChimeraError) else f"{type(error).__name__}: {error}"
    if stats.stopped_by == "cancelled":
        return "cancelled", "a second stop signal cancelled the run"
    if stats.stopped_by == "stop_request":
        return "stopped", f"{stats.stop_signal or 'stop request'}: stopped, drained and committed"
    if stats.stopped_by == "duration":
        return "completed", "--duration reached"
    return "completed", "end of data"


def _until_writable(action: Callable[[], T], request: RunRequest, what: str) -> T:
    """Run ``action`` until SQLite accepts it (it already waits ``busy_timeout`` per attempt), for at
    most ``[store] recovery_timeout_s``; the last refusal is raised."""
    limit = request.config.store.recovery_timeout_s
    deadline = time.monotonic() + limit
    pause = 0.05
    while True:
        try:
            return action()
        except (StoreError, sqlite3.Error) as exc:
            if time.monotonic() >= deadline:
                raise StoreError(f"{request.db_path}: still refusing writes after {limit:g} s "
                                 f"({exc}); the run row stays 'running' until `chimera runs` marks it "
                                 "interrupted") from None
            get_logger().info("store_waiting", what=what, error=str(exc), db=request.db_path)
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _run_loop(pipeline: Pipeline, loop_factory, on_ready) -> RunStats:
    """Run on ``loop_factory``'s loop with SIGINT/SIGTERM handlers; ``on_ready`` is called once they are
    installed."""
    async def main() -> RunStats:
        def cancelled() -> None:
            pipeline.stats.stopped_by = "cancelled"

        with stop_on_signals(pipeline.request_stop, on_cancel=cancelled):
            on_ready()
            return await pipeline.run()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
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


def build_summary(request: RunRequest, run_id: str, pipeline: Pipeline, conn, status: str, reason: str) -> dict:
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
    models = request.options.models or RunModels(disabled=request.options.no_ml)
    online = getattr(pipeline.portfolio[-1][1], "trade_listener", None)  # [ml.online]: its state, when it ran
    extra = {"online": online.state()} if online is not None else {}
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
        "stop_reason": reason,
        "resumed": request.resume is not None,
        "stages": _stage_totals(stats),
        "per_instrument": _per_instrument(stats, conn, run_id, pipeline),
        "signals": stats.signals,
        "models": models.describe(),
        "confidence": models.confidence_note(),
        "take_profit": models.target_note(),
        **extra,
        "strategies": strategy_summary(conn, run_id),
        "orders_accepted": stats.orders_accepted,
        "orders_rejected": stats.orders_rejected,
        "fills": stats.fills,
        "orders_refused": stats.orders_refused,
        "analytics": run_analytics_of(conn, run_id, request.config.risk.equity, pipeline.instruments),
        "truth_labels": stats.truth_labels,
        "db_rows": store.table_counts(conn, run_id),
        "db_batches": stats.writer_batches,
        "feed": feed_stats,
        "errors": {"integrity": integrity, "feed_malformed_lines": feed_stats.get("malformed_lines", 0)},
    }


def run_analytics_of(conn, run_id: str, equity0: float, instruments) -> dict:
    """The analytics section (engine/analytics.py) from the run's stored rows."""
    rows = store.run_analytics_rows(conn, run_id)
    symbols = {d.instrument_id: d.symbol for d in instruments}
    tick_values = {d.instrument_id: float(Decimal(d.tick_size) * Decimal(d.multiplier)) for d in instruments}
    return run_analytics(rows["equity"], rows["round_trips"], rows["orders"], rows["fills"], equity0, symbols,
                         tick_values)


def _stage_totals(stats: RunStats) -> dict[str, dict[str, float]]:
    """Per-stage figures over the lanes (lane stages are keyed ``SYMBOL/stage``): counts summed, the
    deepest input queue seen, and the p99 of the stage's lag behind the feed in event-time ms."""
    totals: dict[str, dict[str, float]] = {}
    lags: dict[str, list[int]] = {}
    for key, stage in stats.stages.items():
        name = key.split("/")[-1]
        acc = totals.setdefault(name, {**dict.fromkeys(stage.as_dict(), 0), "queue_depth_max": 0})
        for figure, value in stage.as_dict().items():
            acc[figure] += value
        acc["queue_depth_max"] = max(acc["queue_depth_max"], stage.max_depth)
        lags.setdefault(name, []).extend(stage.lags)
    for name, acc in totals.items():
        samples = lags[name]
        acc["lag_ms_p99"] = round(float(np.percentile(samples, 99)) / 1e6, 3) if samples else None
    return totals


def _per_instrument(stats: RunStats, conn, run_id: str, pipeline: Pipeline) -> dict[str, dict[str, int]]:
    out = {}
    for d, lane in zip(pipeline.instruments, pipeline.lanes, strict=True):
        market = dict(lane.stages)["market"]
        row = {"events": market.events, "detections": market.detections}
        for table in ("trades", "book_samples", "feature_samples", "signals", "fills"):
            row[table] = conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE run_id = ? AND instrument_id = ?", (run_id, d.instrument_id)
            ).fetchone()[0]
        out[d.symbol] = row
    return out
