"""Wiring: feed -> router -> per-instrument lanes -> canonical merge -> scoring -> risk -> execution,
plus the truth channel and the records queue into the persistence task.

Every stage is ``run_stage`` driving a synchronous core, inside one ``asyncio.TaskGroup``;
queues are bounded (``[pipeline] queue_size``) and carry batches. End of stream is the ``END``
sentinel: the feed stops (end of data, ``--duration`` reached or a stop request such as SIGINT),
every stage drains and flushes, persistence commits its last batch. A failure in one lane is
raised as ``LaneError`` naming the instrument and stage; the task group cancels the rest, the
persistence task still commits what it had accepted, and the run is marked failed.

``run_reference`` drives the very same cores in a plain loop without the event loop; the tested
invariant is that both produce identical signals and identical persisted rows, for any queue and
batch size.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from engine.clock import Pacer, WallClock
from engine.config import Config
from engine.errors import LaneError
from engine.events import InstrumentDef
from engine.execution.stage import TripObserver
from engine.logs import get_logger
from engine.pipeline.lanes import TruthSink
from engine.pipeline.merge import WatermarkMerge
from engine.pipeline.models import RunModels
from engine.pipeline.router import Router
from engine.pipeline.stages import ExecutionMark, FeedMark, StageStats, put_records, run_stage
from engine.pipeline.wiring import (
    Lane,
    StrategyFactory,
    build_lane,
    build_portfolio_stages,
    instrument_rows,
    lane_strategies,
)
from engine.records import END
from engine.store import BatchWriter, CommittedPrefix
from feeds.base import Feed, batched


@dataclass
class RunOptions:
    no_ml: bool = False
    speed: float | None = None  # None = as fast as possible
    duration_s: float | None = None  # stop after this much event time
    strategies: StrategyFactory | None = None  # None: the strategies of the configuration ([strategies])
    progress: Callable[[int, int], None] | None = None  # (events so far, last ts_recv)
    models: RunModels | None = None  # verified registry champions (engine/pipeline/models.py); None: no models
    observer: TripObserver | None = None  # sees the execution stage's open trips (reference path only)
    cpu: dict[str, float] | None = None  # reference path only: CPU seconds per part added here (COST_PARTS)


@dataclass
class RunStats:
    events: int = 0
    batches: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    stopped_by: str = "end_of_data"  # end_of_data | duration | stop_request | cancelled | input_error
    feed_error: Exception | None = None  # what stopped the feed early; raised once the stages have drained
    stop_signal: str | None = None  # the signal behind a stop request (SIGINT, SIGTERM)
    wall_seconds: float = 0.0
    stages: dict[str, StageStats] = field(default_factory=dict)
    writer_rows: int = 0
    writer_batches: int = 0
    signals: int = 0
    orders_accepted: int = 0
    orders_rejected: int = 0
    fills: int = 0
    orders_refused: int = 0  # by the execution stage's guards (kill switch, drawdown, correlation)
    truth_labels: int = 0


def _limited(events: Iterator, duration_s: float | None, stats: RunStats) -> Iterator:
    """Pass events through, counting them, until ``duration_s`` of event time has elapsed.

    An error raised by the feed (damaged input) ends the stream like the end of data and is kept in
    ``stats.feed_error``: every event read before it flows through every stage and is saved, then
    the run raises it.
    """
    limit = None
    try:
        for ev in events:
            ts = ev.ts_recv
            if stats.first_ts is None:
                stats.first_ts = ts
                if duration_s is not None:
                    limit = ts + int(duration_s * 1e9)
            if limit is not None and ts >= limit:
                stats.stopped_by = "duration"
                return
            stats.last_ts = ts
            yield ev
    except Exception as exc:  # noqa: BLE001 - re-raised by the caller once everything read is processed
        stats.feed_error = exc
        stats.stopped_by = "input_error"


class Pipeline:
    """One run of the engine over one feed."""

    def __init__(self, feed: Feed, config: Config, db_path: str, run_id: str,
                 options: RunOptions | None = None, clock: WallClock | None = None,
                 skip: CommittedPrefix | None = None) -> None:
        """``skip``: the rows an interrupted run already committed (``--resume``), not written again."""
        self.feed = feed
        self.config = config
        self.db_path = db_path
        self.run_id = run_id
        self.options = options or RunOptions()
        self.clock = clock or WallClock()
        self.instruments: list[InstrumentDef] = feed.instruments()
        self.stats = RunStats()
        self.stop_requested = asyncio.Event()
        self.truth = TruthSink()
        factory = lane_strategies(config, self.options.strategies)
        self.lanes: list[Lane] = [build_lane(d, config, factory, self.options.models) for d in self.instruments]
        self.portfolio = build_portfolio_stages(self.instruments, config, self.options.no_ml, feed,
                                                self.options.models)
        self.feed_mark = FeedMark()
        self.execution_mark = ExecutionMark()
        self.execution_q: asyncio.Queue = asyncio.Queue(config.pipeline.queue_size)
        store = config.store
        self.writer = BatchWriter(db_path, run_id, store.batch_rows, store.batch_age_ms, store.busy_timeout_ms,
                                  self.clock.now, progress=lambda: self.stats.events, skip=skip,
                                  mode=store.writer)

    def request_stop(self, reason: str | None = None) -> None:
        """Ask the feed to stop at the next batch; everything accepted so far is processed and saved."""
        self.stats.stop_signal = reason
        self.stop_requested.set()

    async def run(self) -> RunStats:
        size = self.config.pipeline.queue_size
        records_q: asyncio.Queue = asyncio.Queue(self.config.pipeline.records_queue_size)
        merge_q: asyncio.Queue = asyncio.Queue(size)
        truth_q: asyncio.Queue = asyncio.Queue(size)
        writer = self.writer
        started = time.perf_counter()
        try:
            async with asyncio.TaskGroup() as group:
                store_task = group.create_task(writer.run(records_q), name="persistence")
                await records_q.put(instrument_rows(self.instruments))
                workers = self._start_stages(group, records_q, merge_q, truth_q)
                await asyncio.gather(*workers)
                await records_q.put(END)
                await store_task
        except BaseExceptionGroup as group_error:
            raise _first_cause(group_error) from None
        else:
            if self.stats.feed_error is not None:
                raise self.stats.feed_error
        finally:
            self.stats.wall_seconds = time.perf_counter() - started
            self.stats.writer_rows = writer.stats.rows
            self.stats.writer_batches = writer.stats.batches
            self._collect_counts()
        return self.stats

    def _start_stages(self, group: asyncio.TaskGroup, records_q, merge_q, truth_q) -> list[asyncio.Task]:
        size = self.config.pipeline.queue_size
        tasks = []
        lane_inputs: dict[int, asyncio.Queue] = {}
        for lane in self.lanes:
            q_in: asyncio.Queue = asyncio.Queue(size)
            lane_inputs[lane.instrument.instrument_id] = q_in
            for index, (name, core) in enumerate(lane.stages):
                last = index == len(lane.stages) - 1
                q_out = merge_q if last else asyncio.Queue(size)
                stats = self.stats.stages.setdefault(f"{lane.symbol}/{name}", StageStats(name))
                tasks.append(group.create_task(
                    _lane_stage(lane.symbol, name, core, q_in, q_out, records_q, stats, self.feed_mark),
                    name=f"{lane.symbol}/{name}",
                ))
                q_in = q_out
        q_in = asyncio.Queue(size)
        merge_stats = self.stats.stages.setdefault("merge", StageStats("merge"))
        tasks.append(group.create_task(
            _merge_stage(WatermarkMerge(list(lane_inputs)), merge_q, q_in, len(self.lanes), merge_stats),
            name="merge",
        ))
        for index, (name, core) in enumerate(self.portfolio):
            last = index == len(self.portfolio) - 1
            stats = self.stats.stages.setdefault(name, StageStats(name))
            if last:  # the execution stage: the intents and, from the feed, the market stream
                tasks.append(group.create_task(
                    _execution_stage(core, q_in, records_q, stats, self.feed_mark, self.execution_mark), name=name))
                self.execution_q = q_in
                break
            q_out = asyncio.Queue(size)
            tasks.append(group.create_task(
                _lane_stage("portfolio", name, core, q_in, q_out, records_q, stats, self.feed_mark), name=name
            ))
            q_in = q_out
        truth_stats = self.stats.stages.setdefault("truth", StageStats("truth"))
        tasks.append(group.create_task(run_stage(self.truth, truth_q, None, records_q, truth_stats), name="truth"))
        tasks.append(group.create_task(self._feed_stage(lane_inputs, truth_q), name="feed"))
        return tasks

    async def _feed_stage(self, lane_inputs: dict[int, asyncio.Queue], truth_q: asyncio.Queue) -> None:
        """Generate, pace, route. Every lane gets every watermark, so the merge never waits on a quiet lane."""
        if getattr(self.feed, "gated", False):
            await self._gated_feed_stage(lane_inputs, truth_q)
            return
        router = Router(list(lane_inputs))
        pacer = Pacer(self.clock, self.options.speed)
        events = _limited(self.feed.events(), self.options.duration_s, self.stats)
        batch_size = self.config.pipeline.batch_size
        source = batched(events, batch_size) if self.options.speed is None else self._paced(events, pacer)
        for batch in source:
            if self.options.speed is not None:
                await self.clock.sleep(pacer.delay(batch[0].ts_recv))
            if await self._dispatch(router, batch, batch[-1].ts_recv, lane_inputs, truth_q):
                break
            await asyncio.sleep(0)  # let the lanes run between batches of a synchronous feed
        for q_lane in lane_inputs.values():
            await q_lane.put(END)
        await truth_q.put(END)
        await self.execution_q.put(END)

    async def _gated_feed_stage(self, lane_inputs: dict[int, asyncio.Queue], truth_q: asyncio.Queue) -> None:
        """A gated simulator (``[execution] venue = "simulator"``): one step of simulated time at a time.

        Each step's events go out with the step's end as their watermark (an empty step too: time
        advances without events), then the feed waits until the execution stage has taken the
        market that far, so the orders it sends meanwhile reach the simulation before it runs on.
        """
        feed, router = self.feed, Router(list(lane_inputs))
        pacer = Pacer(self.clock, self.options.speed)
        step = int(self.config.execution.simulator_gate_us * 1000)
        t = self.config.simulator.session_start_ns
        stats, duration, limit, ended = self.stats, self.options.duration_s, None, False
        while not feed.finished:
            t += step
            batch = feed.resume(t)
            if batch and stats.first_ts is None:  # the run's duration counts from the first event, as _limited
                stats.first_ts = batch[0].ts_recv
                limit = None if duration is None else stats.first_ts + int(duration * 1e9)
            if limit is not None and batch and batch[-1].ts_recv >= limit:
                batch = [ev for ev in batch if ev.ts_recv < limit]
                stats.stopped_by, ended = "duration", True
            if batch:
                stats.last_ts = batch[-1].ts_recv
            watermark = t - 1
            if self.options.speed is not None:
                await self.clock.sleep(pacer.delay(watermark))
            if await self._dispatch(router, batch, watermark, lane_inputs, truth_q):
                break
            if ended:
                break
            if not feed.finished:
                await self.execution_mark.reached(watermark)
        for q_lane in lane_inputs.values():
            await q_lane.put(END)
        await truth_q.put(END)
        await self.execution_q.put(END)

    async def _dispatch(self, router: Router, batch: list, watermark: int, lane_inputs: dict[int, asyncio.Queue],
                        truth_q: asyncio.Queue) -> bool:
        """One batch to the execution stage (first: see _execution_stage), the lanes and the truth sink,
        all with ``watermark`` (an empty batch still advances the lanes' time); True: a stop was requested."""
        per_lane, truth = router.split(batch)
        self.feed_mark.ts = watermark
        if batch:
            await self.execution_q.put((MARKET, batch))
        for iid, q_lane in lane_inputs.items():
            await q_lane.put(((watermark, iid), per_lane[iid]))
        if truth:
            await truth_q.put((watermark, truth))
        self.stats.events += len(batch)
        self.stats.batches += 1
        progress = self.options.progress
        if progress is not None and batch:
            progress(self.stats.events, watermark)
        if self.stop_requested.is_set():
            self.stats.stopped_by = "stop_request"
            return True
        return False

    def _paced(self, events: Iterator, pacer: Pacer) -> Iterator[list]:
        """Batches of events due within 10 ms (wall) of the batch's first event (paced runs only)."""
        batch: list = []
        size = self.config.pipeline.batch_size
        horizon = 0.0
        for ev in events:
            due = pacer.due(ev.ts_recv)
            if batch and (len(batch) >= size or due > horizon):
                yield batch
                batch = []
            if not batch:
                horizon = due + 0.010
            batch.append(ev)
        if batch:
            yield batch

    def _collect_counts(self) -> None:
        for lane in self.lanes:
            signals = dict(lane.stages)["signals"]
            self.stats.signals += signals.signals
        _, risk = self.portfolio[1]
        _, execution = self.portfolio[2]
        self.stats.orders_accepted = risk.accepted
        self.stats.orders_rejected = risk.rejected
        self.stats.fills = execution.fills
        self.stats.orders_refused = execution.rejected
        self.stats.truth_labels = self.truth.labels


def _first_cause(group: BaseExceptionGroup) -> BaseException:
    """The first real exception of a task group (LaneError when a lane failed)."""
    leaves = []
    stack = [group]
    while stack:
        for exc in stack.pop().exceptions:
            (stack if isinstance(exc, BaseExceptionGroup) else leaves).append(exc)
    lane_errors = [exc for exc in leaves if isinstance(exc, LaneError)]
    return (lane_errors or leaves)[0]


async def _lane_stage(symbol: str, stage: str, core, q_in, q_out, records_q, stats: StageStats,
                      feed: FeedMark) -> None:
    try:
        await run_stage(core, q_in, q_out, records_q, stats, feed)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        get_logger().error("lane_failed", instrument=symbol, stage=stage, error=f"{type(exc).__name__}: {exc}")
        raise LaneError(symbol, stage, exc) from exc


async def _merge_stage(merge: WatermarkMerge, q_in: asyncio.Queue, q_out: asyncio.Queue, lanes: int,
                       stats: StageStats) -> None:
    """Release the lanes' signals in canonical order (see engine/pipeline/merge.py)."""
    ended = 0
    sent = -1
    while ended < lanes:
        depth = q_in.qsize()
        item = await q_in.get()
        if item is END:
            ended += 1
            continue
        token, batch = item
        stats.observe(depth, None)
        stats.items += 1
        stats.events_in += len(batch)
        lane, watermark = (None, None) if token is None else (token[1], token[0])
        released = merge.push(lane, watermark, batch)
        if released or merge.low > sent:  # a bare watermark too: the execution stage advances the market by it
            sent = merge.low
            stats.events_out += len(released)
            await q_out.put(((merge.low, None), released))
    rest = merge.flush()
    stats.events_out += len(rest)
    if rest:
        await q_out.put((None, rest))
    await q_out.put(END)


class _Market:
    """Tags the feed's batches on the execution stage's queue (the risk stage's items carry watermarks)."""

    __slots__ = ()


MARKET = _Market()


async def _execution_stage(core, q_in: asyncio.Queue, records_q: asyncio.Queue, stats: StageStats,
                           feed: FeedMark, mark: ExecutionMark | None = None) -> None:
    """Two producers share the execution queue: the feed (market batches, put before the lanes get them)
    and the risk stage (intents with the merge's watermark). The feed's batches up to any watermark are
    therefore in the queue before that watermark's intents; the core processes market events only below
    the watermark, so its output does not depend on how the two interleave."""
    ended = 0
    try:
        while ended < 2:
            depth = q_in.qsize()
            item = await q_in.get()
            if item is END:
                ended += 1
                continue
            tag, batch = item
            if tag is None or feed.ts is None:
                stats.observe(depth, None)
            else:
                stats.observe(depth, feed.ts - (batch[-1].ts_recv if tag is MARKET else tag[0]))
            stats.items += 1
            if tag is MARKET:
                core.market(batch)
            else:
                stats.events_in += len(batch)
                core.orders_in(batch, None if tag is None else tag[0])
                if mark is not None and tag is not None:
                    mark.advance(tag[0])
            await put_records(core, records_q, stats)
        core.flush()
        await put_records(core, records_q, stats)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        get_logger().error("lane_failed", instrument="portfolio", stage="execution",
                           error=f"{type(exc).__name__}: {exc}")
        raise LaneError("portfolio", "execution", exc) from exc


COST_PARTS = ("simulation", "features", "strategies", "execution", "other")


def run_reference(feed: Feed, config: Config, options: RunOptions | None = None) -> tuple[list, list]:
    """The same cores in a plain loop: returns ``(signals, records)`` without touching the event loop.

    With ``options.cpu`` (a dict), the process CPU seconds of each part of the run are added to it under
    ``COST_PARTS``: ``simulation`` (the feed: generating or replaying events, routing them, truth labels),
    ``features`` (the market stage's book, accumulators and detectors, and the feature stage),
    ``strategies`` (the signal engine), ``execution`` (scoring, risk, the simulated exchange and portfolio)
    and ``other`` (the rest: building the stages, collecting records).
    """
    options = options or RunOptions()
    clock = _CpuClock(options.cpu)
    instruments = feed.instruments()
    factory = lane_strategies(config, options.strategies)
    lanes = [build_lane(d, config, factory, options.models) for d in instruments]
    portfolio = build_portfolio_stages(instruments, config, options.no_ml, models=options.models)
    truth = TruthSink()
    router = Router([d.instrument_id for d in instruments])
    records: list = list(instrument_rows(instruments))
    signals: list = []
    stats = RunStats()
    execution = portfolio[-1][1]
    if options.observer is not None:
        execution.observer = options.observer
    batches = batched(_limited(feed.events(), options.duration_s, stats), config.pipeline.batch_size)
    clock.lap("other")
    for batch in batches:
        clock.lap("simulation")
        execution.market(batch)
        clock.lap("execution")
        per_lane, labels = router.split(batch)
        clock.lap("simulation")
        for lane in lanes:
            signals += _drive(lane.stages, per_lane[lane.instrument.instrument_id], records, clock)
        truth.apply(labels)
        records += truth.take_records()
        clock.lap("simulation")
    clock.lap("other")
    for lane in lanes:
        signals += _drain(lane.stages, records, clock)
    records += truth.take_records()
    signals.sort(key=lambda s: s.sort_key())
    clock.lap("other")
    _drive(portfolio, signals, records, clock)
    _drain(portfolio, records, clock)
    clock.lap("other")
    if stats.feed_error is not None:
        raise stats.feed_error
    return signals, records


_PART = {"market": "features", "features": "features", "signals": "strategies",
         "scoring": "execution", "risk": "execution", "execution": "execution"}


class _CpuClock:
    """Adds the process CPU time since the last lap to a part of ``into``; does nothing without ``into``."""

    __slots__ = ("into", "last")

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into
        self.last = time.process_time() if into is not None else 0.0
        if into is not None:
            for part in COST_PARTS:
                into.setdefault(part, 0.0)

    def lap(self, part: str) -> None:
        if self.into is None:
            return
        now = time.process_time()
        self.into[part] += now - self.last
        self.last = now


_NO_CLOCK = _CpuClock(None)


def _drive(stages: list[tuple[str, object]], batch: list, records: list, clock: _CpuClock = _NO_CLOCK) -> list:
    for name, core in stages:
        batch = core.apply(batch)
        take = getattr(core, "take_records", None)
        if take is not None:
            records += take()
        clock.lap(_PART.get(name, "other"))
    return batch


def _drain(stages: list[tuple[str, object]], records: list, clock: _CpuClock = _NO_CLOCK) -> list:
    """End of stream, exactly as ``run_stage`` does it: each flush output goes through the rest."""
    out: list = []
    for index, (name, core) in enumerate(stages):
        flushed = core.flush()
        take = getattr(core, "take_records", None)
        if take is not None:
            records += take()
        clock.lap(_PART.get(name, "other"))
        if flushed:
            flushed = _drive(stages[index + 1:], flushed, records, clock)
        out += flushed
    return out


__all__ = ["COST_PARTS", "Pipeline", "RunOptions", "RunStats", "run_reference"]
