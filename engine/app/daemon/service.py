"""``Daemon``: the configured feed through the pipeline, session after session, with the HTTP server
beside it on the same event loop, until SIGTERM or SIGINT.

- Sessions: each is one pipeline run (one row of ``runs``, command ``daemon``): the simulator for
  ``[daemon] session_s`` simulated seconds at ``[daemon] speed`` (seeded ``[run] seed`` plus the number
  of daemon runs already in the database, so successive sessions differ), or the given tapes once
  each; then the next session starts. Positions, the kill switch, pauses and risk limits carry over.
- Stop: the first SIGTERM/SIGINT stops the feed; every queue drains, the writer commits, the run is
  stored ``stopped`` and the daemon exits 0 (a second signal cancels: exit 130), as the batch commands.
- Models: the registry's champions (regime, signal classifier, price target) are verified and loaded
  once, before the server binds, as ``chimera run`` loads them (``--no-ml``: none); a modified or
  untrusted model stops the daemon with one line (exit 2). Tape sessions are recorded data, so a
  model trained only on simulated data runs in shadow there (SPEC 12). The versions loaded are
  checkpointed (``daemon_state`` row ``models``): a restarted daemon resumes those versions, a kind it
  ran none of takes its champion, and ``--champions`` takes every champion (after a promotion).
- SIGHUP: the config file is read again and validated; its risk limits are applied. An invalid file is
  rejected with one log line and the settings in force stay.
- Checkpoint: every ``[daemon] checkpoint_s`` and at exit the controls' state (positions, kill switch,
  pauses, limits) is written to the ``daemon_state`` table; a restarted daemon resumes it.
- Retention: at each checkpoint, book and feature samples older than ``[daemon] retention_s`` are
  deleted (within the current session by event time, earlier daemon sessions by their end time) and
  the freed pages returned with ``PRAGMA incremental_vacuum``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import orjson
from aiohttp import web

from engine import store
from engine.app.daemon.api import build_app
from engine.app.daemon.controls import Controls
from engine.app.daemon.live import LiveView, tap_pipeline
from engine.app.daemon.metrics import registry_for
from engine.app.runner import RunRequest, build_summary, new_run_id, outcome
from engine.app.stop_signals import stop_on_signals
from engine.config import Config
from engine.errors import ChimeraError, UsageError
from engine.logs import get_logger
from engine.pipeline import Pipeline, RunOptions
from engine.pipeline.models import RunModels, load_run_models
from feeds.base import Feed

LOOPBACK = ("127.", "::1", "localhost")
STATE_NAME = "controls"
SAVE_STATE = ("INSERT INTO daemon_state (name, state, saved_at) VALUES (?, ?, ?) "
              "ON CONFLICT(name) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at")
MODELS_NAME = "models"  # daemon_state row: {kind: version} of the models the daemon runs


class WriterLatency:
    __slots__ = ("count", "total", "rows", "last")

    def __init__(self) -> None:
        self.count, self.total, self.rows, self.last = 0, 0.0, 0, 0.0

    def observe(self, rows: int, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.rows += rows
        self.last = time.monotonic()


def is_loopback(host: str) -> bool:
    return host.startswith(LOOPBACK)


class Daemon:
    """One daemon: the session loop, the HTTP server, signals, checkpoints."""

    def __init__(self, config: Config, db_path: str, feeds: Callable[[int], tuple[Feed, str, int | None]],
                 token: str | None, reload: Callable[[], Config] | None = None, host: str | None = None,
                 port: int | None = None, no_ml: bool = False, real_data: bool = False,
                 champions: bool = False) -> None:
        """``feeds(session_number)`` returns ``(feed, source, seed)`` of a session; ``reload`` reads the
        config file again (SIGHUP); ``no_ml`` loads no model; ``real_data``: the sessions replay recorded
        data (simulator-trained models run in shadow); ``champions``: the registry's champions even where
        the checkpoint names the versions the daemon ran before.

        Raises:
            UsageError: a non-loopback bind without a token.
        """
        self.config = config
        self.db_path = db_path
        self.feeds = feeds
        self.token = token or None
        self.reload_config = reload
        self.host = host or config.daemon.host
        self.port = config.daemon.port if port is None else port
        if not is_loopback(self.host) and not self.token:
            raise UsageError(f"--host {self.host}: binding beyond loopback needs the control token "
                             f"(set ${config.daemon.token_env})")
        self.live = LiveView([], config.daemon.history)
        self.controls = Controls(config)
        self.registry = registry_for(self)
        self.writer_latency = WriterLatency()
        self.pipeline: Pipeline | None = None
        self.sessions = 0
        self.stopping = asyncio.Event()
        self.checkpoint_due = asyncio.Event()
        self.saving: asyncio.Future | None = None  # the periodic checkpoint being written, if any
        self.stop_signal: str | None = None
        self.bound_port: int | None = None
        self.session_started = 0.0
        self.no_ml = no_ml
        self.real_data = real_data
        self.champions = champions
        self.models = RunModels(disabled=no_ml)  # the verified champions, loaded by ``serve``
        self.log = get_logger()

    # --- the main coroutine ------------------------------------------------------------------------------
    async def serve(self) -> int:
        """Run until stopped; return the exit code (0 stopped or feed exhausted, 130 cancelled)."""
        store.check_database(self.db_path)
        _prepare_vacuum(self.db_path, self.config.store.busy_timeout_ms)
        conn = store.connect(self.db_path, self.config.store.busy_timeout_ms)
        try:  # verified before anything runs: a refused model stops the daemon (ModelRefused, exit 2)
            self._load_models(conn)
        except BaseException:
            conn.close()
            raise
        runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False, shutdown_timeout=2.0)
        checkpoints: asyncio.Task | None = None
        with stop_on_signals(self.request_stop, extra={signal.SIGHUP: lambda _name: self.reload()}):
            try:
                interrupted = store.mark_interrupted(conn)
                if interrupted:
                    self.log.info("runs_interrupted", runs=interrupted)
                self._restore(conn)
                await runner.setup()
                site = web.TCPSite(runner, self.host, self.port)
                await site.start()
                self.bound_port = _bound_port(runner, self.port)
                self.log.info("daemon_listening", host=self.host, port=self.bound_port, db=self.db_path,
                              control="enabled" if self.token else "disabled")
                print(f"chimera daemon: http://{self.host}:{self.bound_port}/ (database {self.db_path}; "
                      f"controls {'enabled' if self.token else 'disabled'})", flush=True)
                checkpoints = asyncio.create_task(self._checkpoints(), name="checkpoints")
                await self._sessions(conn)
                return 0
            except asyncio.CancelledError:
                self.log.warning("daemon_cancelled")
                return 130
            finally:
                self.stopping.set()
                if checkpoints is not None:
                    checkpoints.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await checkpoints
                if self.saving is not None and not self.saving.done():
                    # a periodic checkpoint still in its thread holds older state: it lands before the last one
                    await asyncio.wait([self.saving])
                    self._saved(self.saving)
                self._checkpoint_now()
                await runner.cleanup()
                conn.close()
                self.log.info("daemon_stopped", signal=self.stop_signal, sessions=self.sessions)

    def request_stop(self, reason: str) -> None:
        self.stop_signal = reason
        self.stopping.set()
        if self.pipeline is not None:
            self.pipeline.request_stop(reason)

    async def _sessions(self, conn: sqlite3.Connection) -> None:
        while not self.stopping.is_set():
            daemon_runs = conn.execute("SELECT COUNT(*) FROM runs WHERE command = 'daemon'").fetchone()[0]
            made = self.feeds(daemon_runs)
            if made is None:
                self.log.info("feeds_exhausted")
                return
            await self._session(conn, *made)

    async def _session(self, conn: sqlite3.Connection, feed: Feed, source: str, seed: int | None) -> None:
        config = self.config
        speed = config.daemon.speed
        options = RunOptions(speed=None if speed == "max" else float(speed), no_ml=self.no_ml, models=self.models)
        run_id = new_run_id("daemon")
        store.start_run(conn, run_id, "daemon", seed, config.hash(), source, _now_iso(), "{}")
        pipeline = Pipeline(feed, config, self.db_path, run_id, options)
        pipeline.writer.on_commit = self.writer_latency.observe
        self.controls.attach(pipeline)
        self.live.reset(pipeline.instruments)
        tap_pipeline(pipeline, self.live)
        self.pipeline, self.sessions, self.session_started = pipeline, self.sessions + 1, time.monotonic()
        self.live.stage_seen.clear()
        if self.stopping.is_set():
            pipeline.request_stop(self.stop_signal)
        self.log.info("session_started", run_id=run_id, source=source, seed=seed,
                      instruments=[d.symbol for d in pipeline.instruments])
        error: BaseException | None = None
        try:
            await pipeline.run()
        except Exception as exc:  # noqa: BLE001 - recorded in the run row, then re-raised
            error = exc
        except asyncio.CancelledError:
            pipeline.stats.stopped_by = "cancelled"
            self._finish(conn, run_id, feed, source, seed, pipeline, None)
            raise
        self._finish(conn, run_id, feed, source, seed, pipeline, error)
        if error is not None:
            raise error

    def _finish(self, conn, run_id: str, feed: Feed, source: str, seed: int | None, pipeline: Pipeline,
                error: BaseException | None) -> None:
        status, reason = outcome(pipeline.stats, error)
        pipeline.writer.flush_pending()
        request = RunRequest("daemon", feed, self.config, self.db_path, source, seed, pipeline.options)
        summary = build_summary(request, run_id, pipeline, conn, status, reason)
        store.finish_run(conn, run_id, status, _now_iso(), orjson.dumps(summary).decode(), reason,
                         pipeline.stats.events)
        self.controls.detach()
        self._checkpoint_now()
        self.log.info("session_finished", run_id=run_id, status=status, events=summary["events"])

    # --- reload, checkpoints, retention ------------------------------------------------------------------
    def reload(self) -> bool:
        """SIGHUP: read and validate the config file again; apply its risk limits and strategy parameters
        (to the running strategies and to the next sessions), or keep everything. Which strategies run is
        read at start only: a changed ``strategies.enabled`` is reported and waits for a restart."""
        if self.reload_config is None:
            self.log.warning("reload_ignored", reason="no config file was given (-c)")
            return False
        try:
            config = self.reload_config()
            risk = self.controls.set_risk_limits({
                "max_position": config.risk.max_position, "max_order_size": config.risk.max_order_size,
                "order_size": config.risk.order_size, "max_orders_per_second": config.risk.max_orders_per_second,
            })
        except ChimeraError as exc:
            self.log.error("reload_rejected", error=str(exc))
            return False
        strategies = msgspec.structs.replace(config.strategies, enabled=self.config.strategies.enabled)
        self.config = msgspec.structs.replace(self.config, strategies=strategies)
        retuned, kept = self.controls.retune(strategies)
        if config.strategies.enabled != strategies.enabled:
            self.log.warning("reload_needs_restart", key="strategies.enabled", running=strategies.enabled,
                             reloaded=config.strategies.enabled)
        self.log.info("reload_applied", max_position=risk.max_position, max_order_size=risk.max_order_size,
                      order_size=risk.order_size, max_orders_per_second=risk.max_orders_per_second,
                      strategies_retuned=retuned, strategies_kept=kept)
        return True

    def control_changed(self, event: str, **fields) -> None:
        """Log an operator action and checkpoint soon (in a worker thread: a write from the event loop's
        thread could wait on a lock held by the writer, whose commit needs the loop)."""
        self.log.info(event, **fields)
        self.checkpoint_due.set()

    async def _checkpoints(self) -> None:
        """Checkpoint and prune every ``checkpoint_s`` and after each control; a refused write is logged
        and tried again next time."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.daemon.checkpoint_s):
                    await self.checkpoint_due.wait()
            self.checkpoint_due.clear()
            # shielded: a cancelled await would leave the thread writing; the stop waits for it instead
            self.saving = asyncio.ensure_future(asyncio.to_thread(
                self._save, orjson.dumps(self.controls.state()).decode(), self._retention_cut()))
            await asyncio.wait([self.saving])
            self._saved(self.saving)

    def _saved(self, saving: asyncio.Future) -> None:
        if not saving.cancelled() and (exc := saving.exception()) is not None:
            if not isinstance(exc, sqlite3.Error | ChimeraError):
                raise exc
            self.log.warning("checkpoint_failed", error=str(exc))

    def _checkpoint_now(self) -> None:
        try:
            self._save(orjson.dumps(self.controls.state()).decode(), None)
        except (sqlite3.Error, ChimeraError) as exc:
            self.log.warning("checkpoint_failed", error=str(exc))

    def _save(self, state: str, cut: tuple[str, int] | None) -> None:
        """Write the checkpoint (and prune past retention), each in one IMMEDIATE transaction: the write
        lock is taken first, so the busy timeout covers a concurrent commit of the writer."""
        conn = store.connect(self.db_path, self.config.store.busy_timeout_ms)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(SAVE_STATE, (STATE_NAME, state, _now_iso()))
            conn.commit()
            if cut is not None:
                prune(conn, *cut, self.config.daemon.retention_s)
        finally:
            conn.close()

    def _retention_cut(self) -> tuple[str, int] | None:
        """``(run id, event-time cutoff)`` of the current session, or None before it has events."""
        pipeline = self.pipeline
        if pipeline is None or pipeline.stats.last_ts is None:
            return None
        return pipeline.run_id, pipeline.stats.last_ts - int(self.config.daemon.retention_s * 1e9)

    def _load_models(self, conn: sqlite3.Connection) -> None:
        """The checkpointed versions (or the champions), verified and loaded; the versions checkpointed."""
        row = conn.execute("SELECT state FROM daemon_state WHERE name = ?", (MODELS_NAME,)).fetchone()
        pinned = None if row is None or self.champions else orjson.loads(row[0])
        self.models = load_run_models(conn, no_ml=self.no_ml, real_data=self.real_data, pinned=pinned)
        if self.no_ml:
            return  # the checkpoint keeps what ran before: a later start with models resumes it
        running = {m["kind"]: m["version"] for m in self.models.describe()}
        self.log.info("models_loaded", models=self.models.describe(), resumed=sorted(set(pinned or {}) & set(running)))
        with conn:
            conn.execute(SAVE_STATE, (MODELS_NAME, orjson.dumps(running).decode(), _now_iso()))

    def _restore(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT state, saved_at FROM daemon_state WHERE name = ?", (STATE_NAME,)).fetchone()
        if row is None:
            return
        self.controls.restore(orjson.loads(row[0]))
        self.log.info("state_restored", saved_at=row[1], positions=len(self.controls.positions),
                      kill_switch=self.controls.kill_switch.engaged)

    # --- what the API reads ------------------------------------------------------------------------------
    def readiness(self) -> list[str]:
        """Why the daemon is not ready (empty when ready)."""
        problems = []
        limit = self.config.daemon.stale_after_s
        now = time.monotonic()
        pipeline = self.pipeline
        if pipeline is None or self.stopping.is_set():
            return ["no session running"]
        for lane in pipeline.lanes:
            for name, _ in lane.stages:
                seen = self.live.stage_seen.get(f"{lane.symbol}/{name}")
                if seen is None:
                    problems.append(f"{lane.symbol}/{name}: no batch yet")
                elif now - seen > limit:
                    problems.append(f"{lane.symbol}/{name}: idle for {now - seen:.1f} s")
        last_commit = self.writer_latency.last
        if last_commit < self.session_started:
            problems.append("writer: no commit yet this session")
        elif now - last_commit > limit:
            problems.append(f"writer: no commit for {now - last_commit:.1f} s")
        return problems

    def stage_stats(self) -> dict:
        return self.pipeline.stats.stages if self.pipeline is not None else {}

    def scorer_name(self) -> str:
        if self.pipeline is None:
            return "none"
        scoring = dict(self.pipeline.portfolio)["scoring"]
        return type(scoring.scorer).__name__

    @staticmethod
    def tick_size(definition) -> float:
        return float(Decimal(definition.tick_size))

    def instrument_info(self, live) -> dict:
        d = live.definition
        return {"symbol": d.symbol, "instrument_id": d.instrument_id, "venue": d.venue, "tick_size": d.tick_size,
                "lot_size": d.lot_size, "profile": d.profile, "last_ts": live.last_ts}

    def book(self, instrument_id: int, levels: int) -> dict:
        live = self.live.by_id[instrument_id]
        book = self.controls.books.get(instrument_id)
        scale = self.tick_size(live.definition)
        if book is None:
            return {"symbol": live.definition.symbol, "bids": [], "asks": [], "state": None}
        view = book.view()
        return {
            "symbol": live.definition.symbol, "ts_recv": view.ts_recv, "seq": view.seq, "state": view.state,
            "tick_size": live.definition.tick_size,
            "bids": [[p * scale, s] for p, s in book.top(1, levels)],
            "asks": [[p * scale, s] for p, s in book.top(-1, levels)],
        }

    def positions(self) -> list[dict]:
        execution = self.controls.execution
        out = []
        if execution is None:
            for symbol, pos in sorted(self.controls.positions.items()):
                out.append({"symbol": symbol, "qty": int(pos["qty"]), "avg_price_ticks": pos["avg_price"],
                            "realized": pos["realized"], "unrealized": 0.0, "cash": pos["cash"]})
            return out
        portfolio = execution.portfolio
        for iid, pos in portfolio.positions.items():
            book = self.controls.books.get(iid)
            mid2 = book.mid2() if book is not None else None
            unrealized = portfolio.unrealized(iid, mid2 / 2) if mid2 is not None and pos.qty else 0.0
            out.append({"symbol": self.controls.symbols[iid], "qty": pos.qty, "avg_price_ticks": pos.avg_price,
                        "realized": pos.realized, "unrealized": unrealized, "cash": pos.cash})
        return out

    def runs(self) -> list[dict]:
        conn = store.connect(self.db_path, self.config.store.busy_timeout_ms, readonly=True)
        try:
            return [row.as_dict() for row in store.list_runs(conn)]
        finally:
            conn.close()


def prune(conn: sqlite3.Connection, run_id: str, cutoff_ns: int, retention_s: float) -> int:
    """Delete book and feature samples past retention; return the pages vacuumed."""
    finished_before = (datetime.now(UTC) - timedelta(seconds=retention_s)).isoformat(timespec="milliseconds")
    conn.execute("BEGIN IMMEDIATE")
    with conn:
        for table in ("book_samples", "feature_samples"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND ts_recv < ?", (run_id, cutoff_ns))
            conn.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM runs WHERE command = 'daemon' "
                         "AND finished_at IS NOT NULL AND finished_at < ?)", (finished_before,))
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if free:
        conn.executescript("PRAGMA incremental_vacuum;")  # sqlite3_exec steps it to the end (one page a step)
    return free


def _prepare_vacuum(path: str, busy_timeout_ms: int) -> None:
    """Incremental auto-vacuum on the daemon's database (set before the first table; a database made
    without it is converted once with VACUUM)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                conn.execute("VACUUM")
    finally:
        conn.close()


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    """The port actually bound (``asked`` 0 picks a free one)."""
    for address in runner.addresses:
        return int(address[1])
    return asked


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
