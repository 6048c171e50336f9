"""Market series for statistics: one pass over an event stream, numpy arrays out.

``extract_series`` replays any event iterator (a feed, the simulator, a tape) into one
``engine.book.OrderBook`` per instrument and records, with as little per-event work as possible:

- a time grid every ``sample_ms`` of event time (``ts_event``, multiples of the sample period since
  the epoch, so grids of different instruments align): best bid/ask, their sizes, depth within
  ``depth_ticks`` per side and the market state, each the *last value at or before* the grid time;
- every change of the L1 state ``(b, qb, a, qa)`` seen at a ``LAST`` boundary (the book is never
  observed half-applied);
- every trade print, and the truth labels (collected, never replayed into a book);
- the number of market events of each type (``event_counts``, by class name).

Everything else is derived after the pass with numpy: aggregated market orders (fills sharing a
``match_id``, or the same ``ts_event`` and sign when ``match_id`` is 0), the best-level OFI
increments ``e_n`` (SPEC F5) and per-grid-interval sums. Prices stay in ticks and mids in half ticks
(``mid2 = b + a``); grid values are float arrays with NaN where a side of the book was empty.

Invariants: an L1 record is valid when both sides are present and uncrossed; OFI increments and
mid moves are only taken between consecutive valid records. Record times are non-decreasing per
instrument (a stream in receive order may hold ``ts_event`` inversions of a few µs; they are
clamped), so step functions can be read with ``searchsorted``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from engine.book import OrderBook
from engine.events import LAST, InstrumentDef, MarketState, Regime, Status, Trade, TruthKind, TruthLabel

OPEN = int(MarketState.OPEN)


@dataclass(frozen=True, slots=True)
class MarketOrders:
    """Aggregated market orders: one row per aggressive order (arrays of equal length)."""

    ts: np.ndarray  # int64 ns of the first fill
    sign: np.ndarray  # int8 aggressor sign (+1 buy, -1 sell, 0 unknown)
    size: np.ndarray  # int64 total lots
    levels: np.ndarray  # int64 distinct prices touched
    vwap: np.ndarray  # float64 ticks
    first_trade: np.ndarray  # int64 index of the first fill in the trade arrays


@dataclass(frozen=True, slots=True)
class MarketSeries:
    """Arrays describing one instrument's session (see the module docstring)."""

    instrument_id: int
    symbol: str
    profile: str
    sample_ns: int
    grid_ts: np.ndarray  # int64 ns, multiples of sample_ns
    bid: np.ndarray  # float64 ticks, NaN when the side is empty
    ask: np.ndarray
    bid_size: np.ndarray  # float64 lots
    ask_size: np.ndarray
    depth_bid: np.ndarray  # float64 lots within depth_ticks of the best
    depth_ask: np.ndarray
    is_open: np.ndarray  # bool, market state OPEN at the grid time
    l1_ts: np.ndarray  # int64 ns of each L1 change
    l1_bid: np.ndarray  # int64 ticks (0 when empty)
    l1_ask: np.ndarray
    l1_bid_size: np.ndarray  # int64 lots (0 when empty)
    l1_ask_size: np.ndarray
    trade_ts: np.ndarray  # int64 ns
    trade_price: np.ndarray  # int64 ticks
    trade_size: np.ndarray  # int64 lots
    trade_aggressor: np.ndarray  # int8
    trade_match_id: np.ndarray  # int64
    trade_hidden: np.ndarray  # bool
    truth: list[TruthLabel] = field(default_factory=list)
    book_counters: dict[str, int] = field(default_factory=dict)
    event_counts: dict[str, int] = field(default_factory=dict)  # market events by class name
    tick_size: float = 0.01  # currency units per tick (prices are in ticks)

    @property
    def mid2(self) -> np.ndarray:
        """Grid mid in half ticks (``bid + ask``), NaN where a side is empty."""
        return self.bid + self.ask

    @property
    def spread(self) -> np.ndarray:
        """Grid spread in ticks."""
        return self.ask - self.bid

    @property
    def l1_valid(self) -> np.ndarray:
        """L1 records with both sides present and uncrossed."""
        return (self.l1_bid_size > 0) & (self.l1_ask_size > 0) & (self.l1_bid < self.l1_ask)

    @property
    def l1_mid2(self) -> np.ndarray:
        """Mid in half ticks at each L1 record (meaningful where ``l1_valid``)."""
        return self.l1_bid + self.l1_ask


class _Collector:
    """Per-instrument state of the pass: the book, the grid cursor and the record lists."""

    __slots__ = ("definition", "book", "sample_ns", "depth_ticks", "next_grid", "grid", "l1",
                 "trades", "truth", "is_open", "last_ts", "b", "qb", "a", "qa", "counts")

    def __init__(self, definition: InstrumentDef, sample_ns: int, depth_ticks: int) -> None:
        self.definition = definition
        self.book = OrderBook(definition.instrument_id)
        self.sample_ns = sample_ns
        self.depth_ticks = depth_ticks
        self.next_grid = -1  # first grid time not yet sampled; -1 before the first event
        self.grid: list[tuple] = []  # (first grid time, count, b, qb, a, qa, depth_b, depth_a, open)
        self.l1: list[tuple[int, int, int, int, int]] = []
        self.trades: list[tuple] = []
        self.truth: list[TruthLabel] = []
        self.is_open = True
        self.last_ts = -1
        self.b = self.qb = self.a = self.qa = 0
        self.counts: dict[type, int] = {}

    def push(self, ev, kind: type) -> None:
        ts = ev.ts_event
        if ts > self.next_grid:
            self._sample(ts)
        if ts > self.last_ts:
            self.last_ts = ts
        self.book.update(ev)
        counts = self.counts
        counts[kind] = counts.get(kind, 0) + 1
        if kind is Trade:
            self.trades.append((ts, ev.price, ev.size, ev.aggressor, ev.match_id, ev.hidden))
        elif kind is Status:
            self.is_open = ev.state == OPEN
        if ev.flags & LAST:
            book = self.book
            bids, asks = book.bid_prices, book.ask_prices
            if bids:
                b, qb = bids[-1], book.bid_sizes[-1]
            else:
                b = qb = 0
            if asks:
                a, qa = asks[0], book.ask_sizes[0]
            else:
                a = qa = 0
            if b != self.b or qb != self.qb or a != self.a or qa != self.qa:
                self.b, self.qb, self.a, self.qa = b, qb, a, qa
                self.l1.append((ts, b, qb, a, qa))

    def _sample(self, ts: int) -> None:
        """Record the state for every grid time in ``[next_grid, ts)`` (run-length encoded)."""
        step = self.sample_ns
        if self.next_grid < 0:
            self.next_grid = -(-ts // step) * step
            return
        count = (ts - 1 - self.next_grid) // step + 1
        self.grid.append(self._state(self.next_grid, count))
        self.next_grid += count * step

    def _state(self, t: int, count: int) -> tuple:
        book, n = self.book, self.depth_ticks
        return (t, count, self.b, self.qb, self.a, self.qa,
                book.depth_within(1, n), book.depth_within(-1, n), self.is_open)

    def finish(self) -> MarketSeries:
        """Close the grid at the last event time and convert the records to arrays."""
        last = self.last_ts
        if self.next_grid >= 0 and self.next_grid <= last:
            self.grid.append(self._state(self.next_grid, (last - self.next_grid) // self.sample_ns + 1))
        return _to_series(self)


def extract_series(
    events: Iterable, instruments: Iterable[InstrumentDef], *, sample_ms: int = 1000, depth_ticks: int = 10
) -> dict[int, MarketSeries]:
    """Replay ``events`` once into per-instrument books and return their ``MarketSeries``."""
    sample_ns = int(sample_ms) * 1_000_000
    collectors = {d.instrument_id: _Collector(d, sample_ns, depth_ticks) for d in instruments}
    stray_truth: list[TruthLabel] = []
    get = collectors.get
    for ev in events:
        kind = type(ev)
        col = get(ev.instrument_id)
        if kind is TruthLabel:
            (col.truth if col is not None else stray_truth).append(ev)
            continue
        if col is None:
            if kind is not InstrumentDef:
                continue
            col = collectors[ev.instrument_id] = _Collector(ev, sample_ns, depth_ticks)
        col.push(ev, kind)
    for col in collectors.values():  # labels of no known instrument (market-wide) go to every one
        col.truth.extend(stray_truth)
    return {iid: col.finish() for iid, col in collectors.items()}


def _to_series(col: _Collector) -> MarketSeries:
    grid = _grid_arrays(col.grid, col.sample_ns)
    l1 = np.array(col.l1, dtype=np.int64).reshape(-1, 5)
    np.maximum.accumulate(l1[:, 0], out=l1[:, 0])
    trades = _trade_arrays(col.trades)
    d = col.definition
    return MarketSeries(
        instrument_id=d.instrument_id, symbol=d.symbol, profile=d.profile, sample_ns=col.sample_ns,
        **grid, l1_ts=l1[:, 0], l1_bid=l1[:, 1], l1_bid_size=l1[:, 2], l1_ask=l1[:, 3],
        l1_ask_size=l1[:, 4], **trades, truth=sorted(col.truth, key=lambda t: (t.ts_event, t.seq)),
        book_counters={k: getattr(col.book.counters, k) for k in col.book.counters.__struct_fields__},
        event_counts={kind.__name__: n for kind, n in col.counts.items()}, tick_size=float(d.tick_size),
    )


def _grid_arrays(rows: list[tuple], sample_ns: int) -> dict[str, np.ndarray]:
    """Expand the run-length encoded grid samples into one row per grid time."""
    raw = np.array([r[:8] for r in rows], dtype=np.int64).reshape(-1, 8)
    counts = raw[:, 1]
    start = np.repeat(raw[:, 0], counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rep = np.repeat(raw, counts, axis=0).astype(np.float64)
    qb, qa = rep[:, 3], rep[:, 5]
    return {
        "grid_ts": start + offset * sample_ns,
        "bid": np.where(qb > 0, rep[:, 2], np.nan),
        "bid_size": qb,
        "ask": np.where(qa > 0, rep[:, 4], np.nan),
        "ask_size": qa,
        "depth_bid": rep[:, 6],
        "depth_ask": rep[:, 7],
        "is_open": np.repeat(np.array([r[8] for r in rows], dtype=bool), counts),
    }


def _trade_arrays(rows: list[tuple]) -> dict[str, np.ndarray]:
    raw = np.array([r[:5] for r in rows], dtype=np.int64).reshape(-1, 5)
    return {
        "trade_ts": np.maximum.accumulate(raw[:, 0]) if len(raw) else raw[:, 0],
        "trade_price": raw[:, 1],
        "trade_size": raw[:, 2],
        "trade_aggressor": raw[:, 3].astype(np.int8),
        "trade_match_id": raw[:, 4],
        "trade_hidden": np.array([r[5] for r in rows], dtype=bool),
    }


# ---- derived arrays (vectorised) -------------------------------------------------------------------
def market_orders(s: MarketSeries) -> MarketOrders:
    """Group fills into aggressive orders: same ``match_id``, or same ts and sign when it is 0."""
    ts, sign, match, price, size = (s.trade_ts, s.trade_aggressor, s.trade_match_id, s.trade_price,
                                    s.trade_size)
    n = len(ts)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return MarketOrders(empty, empty.astype(np.int8), empty, empty, empty.astype(float), empty)
    start = np.ones(n, dtype=bool)
    same_match = (match[1:] == match[:-1]) & (match[1:] != 0)
    same_tick = (match[1:] == 0) & (match[:-1] == 0) & (ts[1:] == ts[:-1]) & (sign[1:] == sign[:-1])
    start[1:] = ~(same_match | same_tick)
    first = np.flatnonzero(start)
    total = np.add.reduceat(size, first)
    new_price = np.ones(n, dtype=np.int64)
    new_price[1:] = (price[1:] != price[:-1]).astype(np.int64)
    new_price[first] = 1
    notional = np.add.reduceat(price.astype(np.float64) * size, first)
    return MarketOrders(
        ts=ts[first], sign=sign[first], size=total, levels=np.add.reduceat(new_price, first),
        vwap=notional / np.maximum(total, 1), first_trade=first,
    )


def ofi_increments(s: MarketSeries) -> np.ndarray:
    """Best-level OFI ``e_n`` of SPEC F5 at each L1 record (0 for the first and around invalid ones)."""
    b, a = s.l1_bid, s.l1_ask
    qb, qa = s.l1_bid_size, s.l1_ask_size
    e = np.zeros(len(b), dtype=np.int64)
    if len(b) < 2:
        return e
    bp, ap, qbp, qap = b[:-1], a[:-1], qb[:-1], qa[:-1]
    inc = (qb[1:] * (b[1:] >= bp) - qbp * (b[1:] <= bp)
           - qa[1:] * (a[1:] <= ap) + qap * (a[1:] >= ap))
    valid = s.l1_valid
    e[1:] = np.where(valid[1:] & valid[:-1], inc, 0)
    return e


def at_grid(s: MarketSeries, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Value of a step series (``times`` sorted) at each grid time: last at or before, else 0."""
    idx = np.searchsorted(times, s.grid_ts, side="right") - 1
    out = np.zeros(len(s.grid_ts), dtype=np.result_type(values, np.int64))
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def cumulative_at_grid(s: MarketSeries, times: np.ndarray, increments: np.ndarray) -> np.ndarray:
    """Running sum of ``increments`` (at sorted ``times``) evaluated at each grid time."""
    return at_grid(s, times, np.cumsum(increments))


def volume_per_interval(s: MarketSeries) -> np.ndarray:
    """Traded lots in each grid interval ``(t_{k-1}, t_k]`` (the first interval starts at -inf)."""
    cum = cumulative_at_grid(s, s.trade_ts, s.trade_size)
    return np.diff(cum, prepend=0)


def regime_path(s: MarketSeries) -> tuple[np.ndarray, np.ndarray]:
    """Truth regime step function ``(ts_event, regime)`` from the REGIME truth labels."""
    rows = []
    for label in s.truth:
        if label.kind != TruthKind.REGIME or "regime" not in label.params:
            continue
        value = label.params["regime"]
        rows.append((label.ts_event, int(Regime[value]) if isinstance(value, str) else int(value)))
    arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


__all__ = [
    "MarketSeries",
    "MarketOrders",
    "extract_series",
    "market_orders",
    "ofi_increments",
    "at_grid",
    "cumulative_at_grid",
    "volume_per_interval",
    "regime_path",
]
