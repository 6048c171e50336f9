"""Per-instrument limit order book: L3 order map with FIFO queues, L2 levels derived from it.

Invariants (checked by ``check_invariants`` and by the property tests against a naive book):
- every price level's ``total`` equals ``anon`` (size known only at L2, e.g. from a snapshot or
  from orders added before the data started) plus the sizes of its L3 orders, and is > 0;
- a level's ``orders`` dict is its FIFO queue (insertion order = time priority);
- ``bid_prices`` / ``ask_prices`` are the sorted occupied prices of each side.

Integrity is never silent: a ``seq`` gap marks the book STALE, a crossed book at a ``LAST``
boundary marks it CROSSED; both are counted and both clear on the next ``BookSnapshot``. Events
with a ``seq`` at or below the last one seen are dropped and counted; a snapshot always applies and
resets the sequence baseline (a reconnecting feed may restart its numbering). Operations on unknown order
ids are applied to the L2 level at their price (LOBSTER has orders added before 09:30) and counted.

The core is synchronous and allocation-light: ``update(event)`` changes state only; ``apply(batch)``
is the stage API and, at each ``LAST`` boundary, appends an immutable ``BookView`` (top-N arrays
plus state bits) after the events it passes through. ``rest``, ``remove`` and ``take`` are the
public L3 mutations, for a matching engine that owns its book (the simulator's); the event handlers
use them too, and they keep the price and size indexes and the cached view parts right.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable

import msgspec

from engine.events import (
    BUY,
    CLEAR,
    DELETE,
    LAST,
    BookDelta,
    BookSnapshot,
    Clock,
    InstrumentDef,
    MarketState,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    OrderModify,
    Status,
    Trade,
)

# ---- book state bits (BookView.state) ----------------------------------------------------------------
STALE = 0x1  # a sequence gap was seen; waits for the next snapshot
CROSSED = 0x2  # best bid >= best ask at a LAST boundary; waits for the next snapshot
HALTED = 0x4  # market not OPEN (halt, quote-only, closed)
UNUSABLE = STALE | CROSSED | HALTED


class BookView(msgspec.Struct, frozen=True, gc=False, array_like=True, tag="view"):
    """Immutable top-N picture of one book at a ``LAST`` boundary (best level first)."""

    instrument_id: int
    ts_event: int
    ts_recv: int
    seq: int
    state: int
    bid_px: tuple[int, ...]
    bid_sz: tuple[int, ...]
    ask_px: tuple[int, ...]
    ask_sz: tuple[int, ...]
    bid_depth: tuple[int, ...] = ()  # size within each of the book's depth windows of the best bid
    ask_depth: tuple[int, ...] = ()


class Level:
    """One price level: total displayed size and the FIFO queue of its L3 orders."""

    __slots__ = ("side", "price", "total", "anon", "orders")

    def __init__(self, side: int, price: int) -> None:
        self.side = side
        self.price = price
        self.total = 0
        self.anon = 0
        self.orders: dict[int, int] = {}


class BookCounters(msgspec.Struct):
    """Integrity counters of one book; all zero on clean data."""

    gaps: int = 0
    out_of_order: int = 0
    crossed: int = 0
    unknown_orders: int = 0
    missing_levels: int = 0
    overdrawn: int = 0
    duplicate_orders: int = 0
    snapshots: int = 0


class OrderBook:
    """L3/L2 order book of one instrument.

    Args:
        instrument_id: the instrument this book belongs to; events for others are a bug upstream.
        view_levels: number of levels per side in each emitted ``BookView``.
        depth_windows: ticks from the best; each view carries the size within each window per side.
    """

    __slots__ = (
        "instrument_id",
        "view_levels",
        "depth_windows",
        "bids",
        "asks",
        "bid_prices",
        "ask_prices",
        "bid_sizes",
        "ask_sizes",
        "orders",
        "state",
        "last_seq",
        "ts_event",
        "ts_recv",
        "counters",
        "_dispatch",
        "_bid_part",
        "_ask_part",
        "_bid_floor",
        "_ask_ceiling",
        "_reach",
    )

    def __init__(self, instrument_id: int, view_levels: int = 10, depth_windows: tuple[int, ...] = (5, 10)) -> None:
        self.instrument_id = instrument_id
        self.view_levels = view_levels
        self.depth_windows = tuple(depth_windows)
        self._reach = max(self.depth_windows, default=1) - 1  # ticks behind the best a depth window covers
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_prices: list[int] = []  # ascending; best bid is the last (lists are never rebound)
        self.ask_prices: list[int] = []  # ascending; best ask is the first
        self.bid_sizes: list[int] = []  # level totals aligned with bid_prices (for cheap views)
        self.ask_sizes: list[int] = []  # level totals aligned with ask_prices
        self.orders: dict[int, Level] = {}
        self.state = 0
        self.last_seq = -1
        self.ts_event = 0
        self.ts_recv = 0
        self.counters = BookCounters()
        # Cached (prices, sizes, depths) of each side's view; dropped when a level at or inside
        # the floor/ceiling (the N-th level or the deepest depth window, whichever is farther)
        # changes, so untouched deep levels do not cost a rebuild.
        self._bid_part: tuple | None = None
        self._ask_part: tuple | None = None
        self._bid_floor = 0
        self._ask_ceiling = 0
        self._dispatch: dict[type, Callable[..., None]] = {
            OrderAdd: self._add,
            OrderCancel: self._cancel,
            OrderDelete: self._delete,
            OrderExecute: self._execute,
            OrderModify: self._modify,
            BookDelta: self._delta,
            BookSnapshot: self._snapshot,
            Status: self._status,
            Trade: _ignore,
            Clock: _ignore,
            InstrumentDef: _ignore,
        }

    # ---- stage API ------------------------------------------------------------------------------
    def apply(self, batch: list) -> list:
        """Apply a batch of events; return them with a ``BookView`` after each ``LAST`` event."""
        out: list = []
        append = out.append
        dispatch = self._dispatch
        view = self.view
        bid_prices, ask_prices = self.bid_prices, self.ask_prices  # mutated in place, never rebound
        for ev in batch:
            seq = ev.seq
            if seq != self.last_seq + 1 and not self._sequence_ok(ev):
                continue
            self.last_seq = seq
            dispatch[type(ev)](ev)
            append(ev)
            if ev.flags & LAST:
                self.ts_event = ev.ts_event
                self.ts_recv = ev.ts_recv
                if bid_prices and ask_prices and bid_prices[-1] >= ask_prices[0]:
                    self._check_crossed()
                append(view())
        return out

    def flush(self) -> list:
        """End of stream: nothing is buffered in the book."""
        return []

    def update(self, ev) -> bool:
        """Apply one event (no view); same integrity rules as ``apply``. False when the event was
        dropped (a duplicate or out-of-order ``seq``)."""
        seq = ev.seq
        if seq != self.last_seq + 1 and not self._sequence_ok(ev):
            return False
        self.last_seq = seq
        self._dispatch[type(ev)](ev)
        if ev.flags & LAST:
            self.ts_event = ev.ts_event
            self.ts_recv = ev.ts_recv
            bp, ap = self.bid_prices, self.ask_prices
            if bp and ap and bp[-1] >= ap[0]:
                self._check_crossed()
        return True

    # ---- integrity ------------------------------------------------------------------------------
    def _sequence_ok(self, ev) -> bool:
        """Called only when ``seq`` is not the next one: first event, snapshot, gap or duplicate."""
        if self.last_seq < 0 or type(ev) is BookSnapshot:
            return True
        if ev.seq <= self.last_seq:
            self.counters.out_of_order += 1
            return False
        self.counters.gaps += 1
        self.state |= STALE
        return True

    def _check_crossed(self) -> None:
        bp, ap = self.bid_prices, self.ask_prices
        if bp and ap and bp[-1] >= ap[0] and not self.state & CROSSED:
            self.state |= CROSSED
            self.counters.crossed += 1

    # ---- views and queries ----------------------------------------------------------------------
    def view(self) -> BookView:
        """The immutable top-N picture of the book now, with the depth within each window."""
        bid = self._bid_part
        if bid is None:
            bid = self._bid_part = self._bid_view()
        ask = self._ask_part
        if ask is None:
            ask = self._ask_part = self._ask_view()
        return BookView(self.instrument_id, self.ts_event, self.ts_recv, self.last_seq, self.state,
                        bid[0], bid[1], ask[0], ask[1], bid[2], ask[2])

    def _bid_view(self) -> tuple:
        prices = self.bid_prices
        if not prices:
            self._bid_floor = -(1 << 62)
            return ((), (), ())
        n, sizes = self.view_levels, self.bid_sizes
        best = prices[-1]
        depth = tuple([sum(sizes[bisect_right(prices, best - ticks):]) for ticks in self.depth_windows])
        if len(prices) < n:  # every level is in the view
            self._bid_floor = -(1 << 62)
        else:
            floor = best - self._reach
            self._bid_floor = prices[-n] if prices[-n] < floor else floor
        return (tuple(prices[: -n - 1 : -1]), tuple(sizes[: -n - 1 : -1]), depth)

    def _ask_view(self) -> tuple:
        prices = self.ask_prices
        if not prices:
            self._ask_ceiling = 1 << 62
            return ((), (), ())
        n, sizes = self.view_levels, self.ask_sizes
        best = prices[0]
        depth = tuple([sum(sizes[: bisect_left(prices, best + ticks)]) for ticks in self.depth_windows])
        if len(prices) < n:
            self._ask_ceiling = 1 << 62
        else:
            ceiling = best + self._reach
            self._ask_ceiling = prices[n - 1] if prices[n - 1] > ceiling else ceiling
        return (tuple(prices[:n]), tuple(sizes[:n]), depth)

    @property
    def best_bid(self) -> int | None:
        return self.bid_prices[-1] if self.bid_prices else None

    @property
    def best_ask(self) -> int | None:
        return self.ask_prices[0] if self.ask_prices else None

    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        """Best ``n`` levels of one side as ``(price, size)``, best first."""
        if side == BUY:
            return [(p, self.bids[p].total) for p in self.bid_prices[: -n - 1 : -1]]
        return [(p, self.asks[p].total) for p in self.ask_prices[:n]]

    def size_at(self, side: int, price: int) -> int:
        level = (self.bids if side == BUY else self.asks).get(price)
        return level.total if level is not None else 0

    def depth_within(self, side: int, ticks: int) -> int:
        """Total size within ``ticks`` of the best on one side (best included, so ticks >= 1)."""
        if side == BUY:
            bp = self.bid_prices
            return sum(self.bid_sizes[bisect_right(bp, bp[-1] - ticks):]) if bp else 0
        ap = self.ask_prices
        return sum(self.ask_sizes[: bisect_left(ap, ap[0] + ticks)]) if ap else 0

    def mid2(self) -> int | None:
        """Mid price in half ticks (``bid + ask``), or None when a side is empty."""
        if not self.bid_prices or not self.ask_prices:
            return None
        return self.bid_prices[-1] + self.ask_prices[0]

    def weighted_mid(self) -> float | None:
        """Size-weighted mid ``b + s * qb / (qb + qa)`` in ticks."""
        if not self.bid_prices or not self.ask_prices:
            return None
        b, a = self.bid_prices[-1], self.ask_prices[0]
        qb, qa = self.bids[b].total, self.asks[a].total
        return b + (a - b) * qb / (qb + qa)

    def queue(self, side: int, price: int) -> list[tuple[int, int]]:
        """FIFO queue ``[(order_id, size), ...]`` at one price (front first); L2-only size omitted."""
        level = (self.bids if side == BUY else self.asks).get(price)
        return list(level.orders.items()) if level is not None else []

    def order(self, order_id: int) -> tuple[int, int, int] | None:
        """``(side, price, size)`` of a resting order, or None."""
        level = self.orders.get(order_id)
        if level is None:
            return None
        return (level.side, level.price, level.orders[order_id])

    def levels(self, side: int) -> list[tuple[int, int]]:
        """Every level of one side as ``(price, size)``, best first."""
        return self.top(side, len(self.bid_prices if side == BUY else self.ask_prices))

    def check_invariants(self) -> list[str]:
        """Return a description of every broken invariant (empty when the book is consistent)."""
        problems = []
        for side, levels, prices in ((BUY, self.bids, self.bid_prices), (-1, self.asks, self.ask_prices)):
            if prices != sorted(levels):
                problems.append(f"side {side}: price index {prices[:5]}... differs from levels")
            sizes = self.bid_sizes if side == BUY else self.ask_sizes
            if sizes != [levels[p].total for p in prices]:
                problems.append(f"side {side}: size index differs from level totals")
            for p, lv in levels.items():
                known = sum(lv.orders.values())
                if lv.total != lv.anon + known or lv.total <= 0 or lv.anon < 0:
                    problems.append(f"side {side} price {p}: total {lv.total} anon {lv.anon} known {known}")
                for oid in lv.orders:
                    if self.orders.get(oid) is not lv:
                        problems.append(f"order {oid} at {p} missing from the order map")
        for oid, lv in self.orders.items():
            if oid not in lv.orders:
                problems.append(f"order {oid} maps to level {lv.price} that does not hold it")
        return problems

    # ---- L3 mutations (public: the simulator's matching engine uses them) ------------------------
    # Each keeps the level map, the price and size indexes, the order map and the view cache right;
    # they are the hot path of the simulator, hence the inlined side branches and no allocation.
    def rest(self, order_id: int, side: int, price: int, size: int) -> None:
        """Queue a new order at the back of its price level, creating the level if needed.

        The caller guarantees a new ``order_id`` (not resting) and ``size > 0``.
        """
        if side == BUY:
            level = self.bids.get(price)
            if level is None:
                level = self.bids[price] = Level(side, price)
                prices = self.bid_prices
                i = bisect_left(prices, price)
                prices.insert(i, price)
                self.bid_sizes.insert(i, size)
                level.total = size
            else:
                level.total += size
                self.bid_sizes[bisect_left(self.bid_prices, price)] = level.total
            if price >= self._bid_floor:
                self._bid_part = None
        else:
            level = self.asks.get(price)
            if level is None:
                level = self.asks[price] = Level(side, price)
                prices = self.ask_prices
                i = bisect_left(prices, price)
                prices.insert(i, price)
                self.ask_sizes.insert(i, size)
                level.total = size
            else:
                level.total += size
                self.ask_sizes[bisect_left(self.ask_prices, price)] = level.total
            if price <= self._ask_ceiling:
                self._ask_part = None
        level.orders[order_id] = size
        self.orders[order_id] = level

    def remove(self, order_id: int) -> int:
        """Take a resting order out of the book (its level goes when nothing is left); returns its size.

        Raises:
            KeyError: ``order_id`` is not resting in the book.
        """
        level = self.orders.pop(order_id)
        size = level.orders.pop(order_id)
        total = level.total - size
        price = level.price
        if level.side == BUY:  # _set_total inlined (the simulator's hot path)
            prices = self.bid_prices
            i = bisect_left(prices, price)
            if total > 0:
                level.total = total
                self.bid_sizes[i] = total
            else:
                del self.bids[price]
                del prices[i]
                del self.bid_sizes[i]
            if price >= self._bid_floor:
                self._bid_part = None
        else:
            prices = self.ask_prices
            i = bisect_left(prices, price)
            if total > 0:
                level.total = total
                self.ask_sizes[i] = total
            else:
                del self.asks[price]
                del prices[i]
                del self.ask_sizes[i]
            if price <= self._ask_ceiling:
                self._ask_part = None
        return size

    def take(self, order_id: int, size: int) -> int:
        """Take up to ``size`` lots from a resting order, keeping its queue position (an execution or a
        partial cancel); the order leaves the book when nothing is left. Returns the lots taken.

        Raises:
            KeyError: ``order_id`` is not resting in the book.
        """
        level = self.orders[order_id]
        current = level.orders[order_id]
        if size >= current:
            del level.orders[order_id]
            del self.orders[order_id]
            size = current
        else:
            level.orders[order_id] = current - size
        total = level.total - size
        if total > 0 and level.side == BUY:  # the usual partial take, inlined
            level.total = total
            price = level.price
            self.bid_sizes[bisect_left(self.bid_prices, price)] = total
            if price >= self._bid_floor:
                self._bid_part = None
        elif total > 0:
            level.total = total
            price = level.price
            self.ask_sizes[bisect_left(self.ask_prices, price)] = total
            if price <= self._ask_ceiling:
                self._ask_part = None
        else:
            self._set_total(level, total)
        return size

    def _set_total(self, level: Level, total: int) -> None:
        """Give ``level`` a new total; a level with nothing left leaves the book."""
        price = level.price
        if level.side == BUY:
            prices = self.bid_prices
            i = bisect_left(prices, price)
            if total > 0:
                level.total = total
                self.bid_sizes[i] = total
            else:
                del self.bids[price]
                del prices[i]
                del self.bid_sizes[i]
            if price >= self._bid_floor:
                self._bid_part = None
        else:
            prices = self.ask_prices
            i = bisect_left(prices, price)
            if total > 0:
                level.total = total
                self.ask_sizes[i] = total
            else:
                del self.asks[price]
                del prices[i]
                del self.ask_sizes[i]
            if price <= self._ask_ceiling:
                self._ask_part = None

    def _level(self, side: int, price: int) -> Level:
        """The level at ``price``, created empty (total 0) if needed; follow with ``_set_total``."""
        levels = self.bids if side == BUY else self.asks
        level = levels.get(price)
        if level is None:
            level = levels[price] = Level(side, price)
            prices, sizes = (self.bid_prices, self.bid_sizes) if side == BUY else (self.ask_prices, self.ask_sizes)
            i = bisect_left(prices, price)
            prices.insert(i, price)
            sizes.insert(i, 0)
        return level

    # ---- L3 handlers ----------------------------------------------------------------------------
    def _add(self, ev: OrderAdd) -> None:
        oid = ev.order_id
        if oid in self.orders:
            self.counters.duplicate_orders += 1
            self.remove(oid)
        if ev.size > 0:
            self.rest(oid, ev.side, ev.price, ev.size)

    def _reduce(self, oid: int, side: int, price: int, size: int) -> None:
        """Take ``size`` from an order (partial cancel or execution); front position is kept."""
        if oid not in self.orders:
            self.counters.unknown_orders += 1
            self._reduce_anonymous(side, price, size)
        elif self.take(oid, size) < size:
            self.counters.overdrawn += 1

    def _cancel(self, ev: OrderCancel) -> None:
        self._reduce(ev.order_id, ev.side, ev.price, ev.size_cancelled)

    def _execute(self, ev: OrderExecute) -> None:
        self._reduce(ev.order_id, ev.side, ev.price, ev.size)

    def _delete(self, ev: OrderDelete) -> None:
        if ev.order_id in self.orders:
            self.remove(ev.order_id)
        else:
            self.counters.unknown_orders += 1
            self._reduce_anonymous(ev.side, ev.price, ev.size)

    def _modify(self, ev: OrderModify) -> None:
        oid = ev.order_id
        level = self.orders.get(oid)
        if level is None:
            self.counters.unknown_orders += 1
            self._add(OrderAdd(ev.instrument_id, ev.ts_event, ev.ts_recv, ev.seq, ev.flags, oid,
                               ev.side, ev.price, ev.size))
            return
        if ev.price == level.price and ev.side == level.side and ev.size <= level.orders[oid]:
            self.take(oid, level.orders[oid] - ev.size)  # keeps priority; a modify to 0 removes it
            return
        self.remove(oid)
        if ev.size > 0:
            self.rest(oid, ev.side, ev.price, ev.size)

    def _reduce_anonymous(self, side: int, price: int, size: int) -> None:
        level = (self.bids if side == BUY else self.asks).get(price)
        if level is None:
            self.counters.missing_levels += 1
            return
        take = size if size <= level.anon else level.anon
        if take < size:
            self.counters.overdrawn += 1
        level.anon -= take
        self._set_total(level, level.total - take)

    # ---- L2 handlers ----------------------------------------------------------------------------
    def set_level(self, side: int, price: int, size: int) -> None:
        """Force one level's total to ``size`` (L2 truth), trimming L3 orders from the back if needed."""
        levels = self.bids if side == BUY else self.asks
        level = levels.get(price)
        if size <= 0:
            if level is not None:
                for oid in level.orders:
                    del self.orders[oid]
                self._set_total(level, 0)
            return
        if level is None:
            level = self._level(side, price)
        known = level.total - level.anon
        while known > size:  # the newest orders are the least likely to still be there
            oid, osize = level.orders.popitem()
            del self.orders[oid]
            known -= osize
        level.anon = size - known
        self._set_total(level, size)

    def _delta(self, ev: BookDelta) -> None:
        if ev.action == CLEAR:
            self.clear()
        elif ev.action == DELETE:
            self.set_level(ev.side, ev.price, 0)
        else:
            self.set_level(ev.side, ev.price, ev.size)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.bid_prices.clear()
        self.ask_prices.clear()
        self.bid_sizes.clear()
        self.ask_sizes.clear()
        self._bid_part = self._ask_part = None
        self.orders.clear()

    def _snapshot(self, ev: BookSnapshot) -> None:
        self.clear()
        for side, levels in ((BUY, ev.bids), (-1, ev.asks)):
            for price, size, _count in levels:
                if size > 0:
                    self.set_level(side, price, size)
        self.state &= ~(STALE | CROSSED)
        self.counters.snapshots += 1

    def _status(self, ev: Status) -> None:
        if ev.state == MarketState.OPEN:
            self.state &= ~HALTED
        else:
            self.state |= HALTED


def _ignore(ev) -> None:
    return None


__all__ = ["BookView", "OrderBook", "Level", "STALE", "CROSSED", "HALTED", "UNUSABLE"]
