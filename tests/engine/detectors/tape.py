"""One hand-built tape for every detector test: L3 orders the builder tracks in FIFO queues of its own
(so market orders fill the queues as an exchange would, without using the book under test), bare
prints, L2 deltas, and an L2 mode in which adds, hits and deletes become level updates."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from engine.events import (
    ADD,
    BUY,
    DELETE,
    LAST,
    UPDATE,
    BookDelta,
    Clock,
    Detection,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Trade,
)
from engine.testing import instrument, run_market

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_000 * NS
INST = instrument(1, "TEST")


class Tape:
    """Events of instrument 1 with consecutive ``seq``: ``at(t)`` sets the time in seconds after T0,
    ``at_ns`` in nanoseconds; L3 by default, L2 level updates with ``l2=True``."""

    def __init__(self, l2: bool = False) -> None:
        self.events: list = []
        self.ts = T0
        self.seq = 1  # the next event's
        self.l2 = l2
        self.next_oid = 1
        self.next_match = 1
        self.next_trade = 1
        self.orders: dict[int, list[int]] = {}  # order id -> [side, price, size]
        self.queues: dict[tuple[int, int], list[int]] = {}  # (side, price) -> order ids, front first

    def at(self, t: float) -> Tape:
        ts = T0 + round(t * NS)
        assert ts >= self.ts, "time goes forward"
        return self.at_ns(ts)

    def at_ns(self, ts: int) -> Tape:
        """Set the time of the next events (any time: a test may start before T0)."""
        self.ts = ts
        return self

    def emit(self, cls, *fields, last: bool = True) -> None:
        self.events.append(cls(1, self.ts, self.ts, self.seq, LAST if last else 0, *fields))
        self.seq += 1

    def gap(self) -> None:
        """Skip one sequence number (the book marks itself STALE)."""
        self.seq += 1

    def level(self, side: int, price: int) -> int:
        """The size resting at ``side``/``price`` by the tape's own orders."""
        return sum(self.orders[oid][2] for oid in self.queues.get((side, price), ()))

    def best(self, side: int) -> int | None:
        """The best price of ``side`` among the tape's resting orders."""
        prices = [p for (s, p), q in self.queues.items() if s == side and q]
        return (max if side == BUY else min)(prices) if prices else None

    def order_at(self, side: int, price: int, which: int = 0) -> int:
        """The id of the ``which``-th order in the queue at ``side``/``price`` (0 = the front)."""
        return self.queues[side, price][which]

    # ---- resting orders ----------------------------------------------------------------------------------
    def add(self, side: int, price: int, size: int) -> int:
        """A resting order at the back of its queue (L2: the level grows by ``size``); returns its id."""
        oid = self.next_oid
        self.next_oid += 1
        self.orders[oid] = [side, price, size]
        self.queues.setdefault((side, price), []).append(oid)
        if self.l2:
            self.emit(BookDelta, side, price, self.level(side, price), ADD)
        else:
            self.emit(OrderAdd, oid, side, price, size)
        return oid

    def ladder(self, side: int, prices, size: int) -> list[int]:
        return [self.add(side, p, size) for p in prices]

    def delete(self, oid: int) -> None:
        side, price, size = self._remove(oid)
        if self.l2:
            self._level_update(side, price)
        else:
            self.emit(OrderDelete, oid, side, price, size)

    def cancel(self, oid: int, size: int) -> None:
        """A partial cancel: the order keeps its place with ``size`` lots fewer (L3 only)."""
        order = self.orders[oid]
        order[2] -= size
        self.emit(OrderCancel, oid, order[0], order[1], size, order[2])

    def _remove(self, oid: int) -> tuple[int, int, int]:
        side, price, size = self.orders.pop(oid)
        self.queues[side, price].remove(oid)
        return side, price, size

    def _level_update(self, side: int, price: int, last: bool = True) -> None:
        size = self.level(side, price)
        self.emit(BookDelta, side, price, size, UPDATE if size else DELETE, last=last)

    # ---- aggressive flow ---------------------------------------------------------------------------------
    def market(self, side: int, size: int, match: bool = True) -> None:
        """A market order of ``side`` walking the opposite side's queues, best price first (one atomic
        event); ``match=False`` leaves ``match_id`` 0 (feeds without ids)."""
        prices = sorted((p for (s, p), q in self.queues.items() if s == -side and q), reverse=side < 0)
        fills: list[tuple[int, int]] = []
        for price in prices:
            for oid in self.queues[-side, price]:
                take = min(self.orders[oid][2], size)
                fills.append((oid, take))
                size -= take
                if not size:
                    break
            if not size:
                break
        if fills:  # an order larger than the book takes what rests
            self._fill(side, fills, match)

    def hit(self, side: int, price: int, fills: list[tuple[int, int]]) -> None:
        """One aggressive order against resting ``side`` at ``price``: ``fills`` = [(order id, size)]."""
        assert all(self.orders[oid][:2] == [side, price] for oid, _ in fills)
        self._fill(-side, fills, match=True)

    def walk(self, side: int, fills: list[tuple[int, int]]) -> None:
        """One aggressive order against resting ``side`` through several prices: ``fills`` = [(order id, size)]
        in the order they execute."""
        assert all(self.orders[oid][0] == side for oid, _ in fills)
        self._fill(-side, fills, match=True)

    def _fill(self, aggressor: int, fills: list[tuple[int, int]], match: bool) -> None:
        match_id = self.next_match if match else 0
        self.next_match += 1
        touched: list[tuple[int, int]] = []
        for i, (oid, take) in enumerate(fills):
            side, price, rest = self.orders[oid]
            trade_id = self.next_trade
            self.next_trade += 1
            last = i == len(fills) - 1
            if not self.l2:
                self.emit(OrderExecute, oid, side, price, take, trade_id, last=False)
            self.emit(Trade, price, take, aggressor, trade_id, match_id, last=last and not self.l2)
            if take == rest:
                self._remove(oid)
            else:
                self.orders[oid][2] -= take
            if (side, price) not in touched:
                touched.append((side, price))
        if self.l2:
            for i, (side, price) in enumerate(touched):
                self._level_update(side, price, last=i == len(touched) - 1)

    def trade(self, price: int, size: int, aggressor: int, match_id: int = 0, hidden: bool = False) -> None:
        """A print without a book change (an L2 feed's trade, or a hidden execution)."""
        self.emit(Trade, price, size, aggressor, self.next_trade, match_id, hidden)
        self.next_trade += 1

    def hidden(self, side: int, price: int, size: int) -> None:
        """An execution of hidden liquidity resting on ``side`` (no book change)."""
        self.trade(price, size, -side, hidden=True)

    # ---- L2 and time -------------------------------------------------------------------------------------
    def delta(self, side: int, price: int, size: int, action: int = UPDATE) -> None:
        """An L2 level update (absolute size), independent of the tape's own orders."""
        self.emit(BookDelta, side, price, size, action)

    def clock(self) -> None:
        self.emit(Clock)


def book_around(tape: Tape, bid: int = 999, ask: int = 1000, levels: int = 10, size: int = 100) -> None:
    """A symmetric ladder: bids ``bid`` down, asks ``ask`` up, ``levels`` levels of ``size``."""
    tape.ladder(BUY, range(bid, bid - levels, -1), size)
    tape.ladder(-BUY, range(ask, ask + levels), size)


def detections(events: list, *factories: Callable, batch_size: int = 1_000_000, bin_ticks: int = 1,
               instrument_def=INST) -> list[Detection]:
    """Every detection of a fresh market stage over ``events`` with the listeners the factories build
    (each given a context of ``bin_ticks``)."""
    def binned(factory: Callable) -> Callable:
        return lambda context: factory(dataclasses.replace(context, bin_ticks=bin_ticks))
    _, samples = run_market(instrument_def, events, *map(binned, factories), batch_size=batch_size)
    return [d for s in samples for d in s.detections]


def of_kind(found, kind: type) -> list:
    """The detections of ``kind`` (samples or detections), in order."""
    items = [d for s in found for d in s.detections] if found and not isinstance(found[0], Detection) else found
    return [d for d in items if isinstance(d, kind)]


def finite(*found: Detection) -> bool:
    """Every number in the detections (strength and evidence) is finite."""
    return all(math.isfinite(v) for d in found for v in (d.strength, *d.evidence().values())
               if isinstance(v, int | float))
