"""A seeded zero-intelligence multi-instrument L3 feed (Smith, Farmer, Gillemot & Krishnamurthy 2003).

Per instrument: Poisson limit-order adds at a geometric distance behind a random-walk fair price,
per-order Poisson cancellations, and Poisson market orders that execute against the FIFO queues of
the feed's own ``OrderBook``. Events are valid L3 (every cancel and execution refers to a live
order), stamped with a constant feed latency, consecutive ``seq`` per instrument, ``LAST`` on the
last record of each atomic event and the ``SIM`` flag. Instruments are merged in
``(ts_recv, instrument_id, seq)`` order. Same seed -> same stream.

Kept as the minimal live feed and as a fast, dependency-free source for tests; the realistic
market simulator (feeds/simulator) is the default of ``run`` and ``demo``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from decimal import Decimal

import numpy as np

from engine.book import OrderBook
from engine.config import InstrumentSpec
from engine.events import (
    BUY,
    LAST,
    SELL,
    SIM,
    InstrumentDef,
    MarketState,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Status,
    Trade,
)

NS = 1_000_000_000
SESSION_START_NS = 1_700_000_000 * NS  # a fixed epoch so that same seed -> same timestamps


class _Draws:
    """Block-drawn random numbers consumed one at a time (numpy per-call overhead amortised)."""

    def __init__(self, rng: np.random.Generator, block: int = 4096) -> None:
        self.rng = rng
        self.block = block
        self._u = self._e = self._n = []
        self._iu = self._ie = self._in = 0
        self._refill()

    def _refill(self) -> None:
        self._u = self.rng.random(self.block).tolist()
        self._e = self.rng.standard_exponential(self.block).tolist()
        self._n = self.rng.standard_normal(self.block).tolist()
        self._iu = self._ie = self._in = 0

    def uniform(self) -> float:
        if self._iu == self.block:
            self._u, self._iu = self.rng.random(self.block).tolist(), 0
        self._iu += 1
        return self._u[self._iu - 1]

    def exponential(self) -> float:
        if self._ie == self.block:
            self._e, self._ie = self.rng.standard_exponential(self.block).tolist(), 0
        self._ie += 1
        return self._e[self._ie - 1]

    def normal(self) -> float:
        if self._in == self.block:
            self._n, self._in = self.rng.standard_normal(self.block).tolist(), 0
        self._in += 1
        return self._n[self._in - 1]


class _Instrument:
    """Event generator of one instrument."""

    def __init__(self, iid: int, spec: InstrumentSpec, rng: np.random.Generator, duration_ns: int,
                 latency_ns: int) -> None:
        self.iid = iid
        self.draws = _Draws(rng)
        self.book = OrderBook(iid)
        self.duration_ns = duration_ns
        self.latency_ns = latency_ns
        tick = Decimal(spec.tick_size)
        self.fair = float(Decimal(str(spec.start_price)) / tick)
        self.sigma = 0.5 * spec.volatility * (1.0 if spec.profile == "large_tick" else 3.0)  # ticks/sqrt(s)
        self.depth = 2 if spec.profile == "large_tick" else 8  # mean placement distance, ticks
        self.add_rate = 25.0 * spec.liquidity
        self.cancel_rate = 0.08  # per resting order per second
        self.market_rate = 4.0
        self.seq = 0
        self.next_order_id = iid * 10**12 + 1
        self.live: list[int] = []
        self.live_index: dict[int, int] = {}

    def _emit(self, events: list, ts: int) -> list:
        out = []
        for i, (cls, args) in enumerate(events):
            flags = SIM | (LAST if i == len(events) - 1 else 0)
            ev = cls(self.iid, ts, ts + self.latency_ns, self.seq, flags, *args)
            self.seq += 1
            self.book.update(ev)
            out.append(ev)
        return out

    def _track(self, oid: int) -> None:
        self.live_index[oid] = len(self.live)
        self.live.append(oid)

    def _untrack(self, oid: int) -> None:
        i = self.live_index.pop(oid)
        last = self.live.pop()
        if last != oid:
            self.live[i] = last
            self.live_index[last] = i

    def events(self) -> Iterator:
        d = self.draws
        t = SESSION_START_NS
        end = SESSION_START_NS + self.duration_ns
        yield from self._emit([(Status, (MarketState.OPEN, "open"))], t)
        for _ in range(40):  # an initial book around the fair price
            yield from self._add(t)
        while True:
            total = self.add_rate + self.cancel_rate * len(self.live) + self.market_rate
            dt = d.exponential() / total
            t += int(dt * NS)
            if t >= end:
                return
            self.fair += self.sigma * (dt**0.5) * d.normal()
            u = d.uniform() * total
            if u < self.add_rate:
                yield from self._add(t)
            elif u < self.add_rate + self.market_rate:
                yield from self._market(t)
            elif self.live:
                yield from self._cancel(t)

    def _add(self, t: int) -> list:
        d = self.draws
        side = BUY if d.uniform() < 0.5 else SELL
        distance = 1 + int(d.exponential() * self.depth)
        price = round(self.fair) - side * distance
        best_opposite = self.book.best_ask if side == BUY else self.book.best_bid
        if best_opposite is not None and (price - best_opposite) * side >= 0:
            price = best_opposite - side  # never marketable: a resting order one tick inside
        size = 100 * (1 + int(d.exponential() * 2)) if d.uniform() < 0.5 else 1 + int(d.exponential() * 150)
        oid = self.next_order_id
        self.next_order_id += 1
        self._track(oid)
        return self._emit([(OrderAdd, (oid, side, price, size))], t)

    def _cancel(self, t: int) -> list:
        d = self.draws
        oid = self.live[int(d.uniform() * len(self.live))]
        side, price, size = self.book.order(oid)
        if d.uniform() < 0.2 and size > 1:
            part = 1 + int(d.uniform() * (size - 1))
            return self._emit([(OrderCancel, (oid, side, price, part, size - part))], t)
        self._untrack(oid)
        return self._emit([(OrderDelete, (oid, side, price, size))], t)

    def _market(self, t: int) -> list:
        d = self.draws
        mid2 = self.book.mid2()
        lean = 0.0 if mid2 is None else max(-0.3, min(0.3, (self.fair - mid2 / 2) / 10))
        aggressor = BUY if d.uniform() < 0.5 + lean else SELL
        size = 1 + int(d.exponential() * 120)
        resting_side = -aggressor
        records = []
        match_id = self.seq
        for price, _ in self.book.top(resting_side, 50):
            for oid, available in self.book.queue(resting_side, price):
                take = min(size, available)
                records.append((OrderExecute, (oid, resting_side, price, take, match_id)))
                records.append((Trade, (price, take, aggressor, match_id, match_id, False)))
                if take == available:
                    self._untrack(oid)
                size -= take
                if size == 0:
                    break
            if size == 0:
                break
        return self._emit(records, t) if records else []


class ZeroIntelligenceFeed:
    """The Feed of several independent zero-intelligence instruments."""

    def __init__(self, symbols: list[str], specs: dict[str, InstrumentSpec], seed: int, duration_s: float,
                 latency_us: float = 200.0) -> None:
        self.symbols = list(symbols)
        self.specs = specs
        self.seed = seed
        self.duration_ns = int(duration_s * NS)
        self.latency_ns = int(latency_us * 1000)
        self._stats = {"events": 0}

    def instruments(self) -> list[InstrumentDef]:
        out = []
        for iid, symbol in enumerate(self.symbols):
            spec = self.specs.get(symbol, InstrumentSpec())
            out.append(InstrumentDef(
                iid, SESSION_START_NS, SESSION_START_NS, 0, 0, symbol, "SIM", spec.tick_size,
                1, spec.lot_size, "1", "USD", SESSION_START_NS, SESSION_START_NS + self.duration_ns,
                "default", spec.profile,
            ))
        return out

    def events(self) -> Iterator:
        children = np.random.SeedSequence(self.seed).spawn(len(self.symbols))
        generators = [
            _Instrument(iid, self.specs.get(symbol, InstrumentSpec()), np.random.default_rng(child),
                        self.duration_ns, self.latency_ns).events()
            for iid, (symbol, child) in enumerate(zip(self.symbols, children, strict=True))
        ]
        for ev in heapq.merge(*generators, key=lambda e: (e.ts_recv, e.instrument_id, e.seq)):
            self._stats["events"] += 1
            yield ev

    def stats(self) -> dict[str, int]:
        return dict(self._stats)
