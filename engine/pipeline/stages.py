"""The one generic coroutine that drives every synchronous core (the end-of-stream sentinel ``END``
lives in ``engine.records`` so that the store needs nothing from the shell).

A *core* is any object with ``apply(batch: list) -> list`` and ``flush() -> list`` and, optionally,
``take_records() -> list`` returning rows for the store (``(table, row_tuple)`` pairs). Items on
the queues between stages are ``(watermark, batch)`` pairs: ``watermark`` is ``(ts, lane)`` with ``ts``
the largest ``ts_recv`` the feed had released with this batch, carried unchanged through every stage
so the merge in front of the portfolio stages can order the lanes' outputs canonically (after the
merge, ``lane`` is None and ``ts`` the merge's low watermark); ``None`` marks a flush at end of
stream. A stage's lag is the feed's newest ``ts`` minus the ``ts`` of the batch it takes. Nothing
stage-specific lives here.
"""

from __future__ import annotations

import asyncio
from array import array
from typing import Any, Protocol

from engine.records import END


class Core(Protocol):
    def apply(self, batch: list) -> list: ...

    def flush(self) -> list: ...


class FeedMark:
    """The largest ``ts_recv`` the feed has released so far (the reference of every stage's lag)."""

    __slots__ = ("ts",)

    def __init__(self) -> None:
        self.ts: int | None = None


class ExecutionMark:
    """How far the execution stage has taken the market (its intent watermark): a gated feed waits on it."""

    __slots__ = ("ts", "changed")

    def __init__(self) -> None:
        self.ts = -1
        self.changed = asyncio.Event()

    def advance(self, ts: int) -> None:
        if ts > self.ts:
            self.ts = ts
            self.changed.set()

    async def reached(self, ts: int) -> None:
        """Return once the execution stage has processed the market below ``ts``."""
        while self.ts < ts:
            self.changed.clear()
            await self.changed.wait()


LAG_WINDOW = 4096  # lag samples kept per stage (one per batch): the p99 is over the latest ones


class StageStats:
    """Counters of one stage, for the run summary: items, events in and out, rows, the deepest input
    queue seen, and the stage's lag (event time behind the feed, one sample per batch, bounded)."""

    __slots__ = ("name", "items", "events_in", "events_out", "records", "depth", "max_depth", "lags", "_next_lag")

    def __init__(self, name: str) -> None:
        self.name = name
        self.items = 0
        self.events_in = 0
        self.events_out = 0
        self.records = 0
        self.depth = 0  # input-queue depth at the latest take
        self.max_depth = 0
        self.lags = array("q")  # ns; 8 bytes a sample (a list of ints took about 36)
        self._next_lag = 0

    def observe(self, depth: int, lag_ns: int | None) -> None:
        """One item taken from the input queue, which held ``depth`` items before the take."""
        self.depth = depth
        if depth > self.max_depth:
            self.max_depth = depth
        if lag_ns is None:
            return
        if len(self.lags) < LAG_WINDOW:
            self.lags.append(lag_ns)
        else:
            self.lags[self._next_lag] = lag_ns
            self._next_lag = (self._next_lag + 1) % LAG_WINDOW

    def as_dict(self) -> dict[str, int]:
        return {"items": self.items, "in": self.events_in, "out": self.events_out, "records": self.records}


async def put_records(core: Any, records_q: asyncio.Queue | None, stats: StageStats) -> None:
    """Move the rows a core produced into the records queue (waits when it is full)."""
    take = getattr(core, "take_records", None)
    if take is None or records_q is None:
        return
    rows = take()
    if rows:
        stats.records += len(rows)
        await records_q.put(rows)


async def run_stage(
    core: Core,
    q_in: asyncio.Queue,
    q_out: asyncio.Queue | None,
    records_q: asyncio.Queue | None,
    stats: StageStats,
    feed: FeedMark | None = None,
) -> None:
    """Drive ``core`` until the end-of-stream sentinel: get, apply, put; then flush and forward END."""
    while True:
        depth = q_in.qsize()
        item = await q_in.get()
        if item is END:
            break
        watermark, batch = item
        if feed is not None and watermark is not None and feed.ts is not None:
            stats.observe(depth, feed.ts - watermark[0])
        else:
            stats.observe(depth, None)
        stats.items += 1
        stats.events_in += len(batch)
        out = core.apply(batch)
        stats.events_out += len(out)
        await put_records(core, records_q, stats)
        if q_out is not None:
            await q_out.put((watermark, out))
    out = core.flush()
    stats.events_out += len(out)
    await put_records(core, records_q, stats)
    if q_out is not None:
        if out:
            await q_out.put((None, out))
        await q_out.put(END)
