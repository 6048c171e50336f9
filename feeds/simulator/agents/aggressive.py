"""Aggressive flow: stop clusters, sweeps and market-order bursts (SPEC F22, F23, S1, S5).

``StopCluster(side, trigger, size)`` arms ``count`` stop orders at ``trigger``, ``trigger + side``,
... (``spacing`` ticks apart; a trigger not beyond the current touch is moved one tick beyond it),
``size`` lots split among them; each is a market order released right
after the first later trade at or beyond its trigger, so one print through the trigger releases a
burst of same-side market orders at that trade's time (and each can set off the next: a cascade).
Label STOP_CLUSTER over the trigger range with the stops fired, lots filled, first and last fire.

``SweepAgent(side, size)`` sends ONE market order sized to clear ``levels`` price levels of the
opposite side (or every level short of ``through`` plus one lot, so the sweep prints at
``through`` or just past it; or a fixed ``size``): one ``match_id`` executing at
several prices. With ``wait_within`` it first waits (polling every 100 ms, up to ``max_s``) until the
touch is within that many ticks of ``through``; a sweep that never fires emits no label. Label SWEEP
from the first to the last fill price with levels, volume and VWAP.

``BurstAgent(side, factor, duration_s)`` multiplies one side's market-order baseline (the Hawkes
flow itself, so the burst also excites) for a while. Label BURST (``TruthKind.BURST``, 8, once the
event vocabulary names it) with the mid before and after.
"""

from __future__ import annotations

from typing import Any

from engine.events import TruthKind
from feeds.simulator.agents.base import WATCH_DT, EpisodeAgent, Price, Size, mid_price, resolve_size

BURST = int(TruthKind.BURST)


class StopCluster(EpisodeAgent):
    """Stop market orders resting beyond a trigger price (released by the first trade through it)."""

    kind = TruthKind.STOP_CLUSTER
    push = 1

    def __init__(self, side: int, trigger: Price, size: Size, count: int = 3, spacing: int = 1, **kw: Any) -> None:
        super().__init__(side, **kw)
        if count < 1 or spacing < 0:
            raise ValueError("a stop cluster needs count >= 1 and spacing >= 0")
        self.trigger_expr, self.size, self.count, self.spacing = trigger, size, count, spacing
        self.refer(trigger)
        self.triggers: list[int] = []
        self.armed: dict[int, int] = {}  # stop id -> trigger
        self.fired = self.filled = 0
        self.t_first_ns = self.t_last_ns = 0
        self.fire_prices: list[int] = []
        self.moved = 0  # 1 when the trigger was moved beyond the touch

    def start(self, venue: Any) -> float | None:
        first = self.price(venue, self.trigger_expr)
        book, side = venue.book, self.side
        touch = book.best_ask if side > 0 else book.best_bid
        if (first - touch) * side <= 0:  # a stop must rest beyond the current price
            first, self.moved = touch + side, 1
        lots = resolve_size(venue, self.size)
        each, extra = divmod(lots, self.count)
        for i in range(self.count):
            trigger = first + self.side * i * self.spacing
            sid = venue.stop(self.side, trigger, each + (1 if i < extra else 0))
            self.armed[sid] = trigger
            self.triggers.append(trigger)
        self.mark(venue, first)
        return None

    def on_stop(self, venue: Any, stop_id: int, filled: int, price: int) -> None:
        """One of the stops fired (its market order filled ``filled`` lots, last at ``price``)."""
        if self.armed.pop(stop_id, None) is None:
            return
        self.fired += 1
        self.filled += filled
        self.t_first_ns = self.t_first_ns or venue.now_ns
        self.t_last_ns = venue.now_ns
        if filled:
            self.fire_prices.append(price)
        if not self.armed and not self.done:
            self.finish(venue, "fired")

    def withdraw(self, venue: Any) -> None:
        for sid in list(self.armed):
            venue.cancel_stop(sid)
        self.armed.clear()

    def emit(self, venue: Any) -> None:
        extreme = (max if self.side > 0 else min)(self.fire_prices, default=0)
        facts = {"count": self.count, "size": resolve_size(venue, self.size), "fired": self.fired,
                 "filled": self.filled, "trigger_moved": self.moved, "t_first_fire": self.t_first_ns,
                 "t_last_fire": self.t_last_ns, "extreme_fill_price": extreme}
        self.label(venue, min(self.triggers), max(self.triggers), facts, t_end_ns=self.t_last_ns or self.t_end_ns)


class SweepAgent(EpisodeAgent):
    """One market order sized to clear ``levels`` levels (or up to ``through``, or ``size`` lots)."""

    kind = TruthKind.SWEEP
    push = 1

    def __init__(self, side: int, size: Size | None = None, levels: int = 3, through: Price | None = None,
                 wait_within: int | None = None, **kw: Any) -> None:
        super().__init__(side, **kw)
        if levels < 1:
            raise ValueError("a sweep clears at least one level")
        if wait_within is not None and through is None:
            raise ValueError("wait_within needs a through price")
        self.size, self.levels, self.through, self.wait_within = size, levels, through, wait_within
        self.refer(through)
        self.limit: int | None = None
        self.facts: dict = {"volume": 0}

    def start(self, venue: Any) -> float | None:
        if self.through is not None:
            self.limit = self.price(venue, self.through)
        return self.step(venue)

    def step(self, venue: Any) -> float | None:
        book, side = venue.book, self.side
        touch = book.best_ask if side > 0 else book.best_bid
        if self.wait_within is not None and (self.limit - touch) * side > self.wait_within:
            return venue.now + WATCH_DT  # wait for the price to come within reach of ``through``
        self._sweep(venue)
        return None

    def _sweep(self, venue: Any) -> None:
        side = self.side
        opposite = venue.book.levels(-side)
        if self.limit is not None:  # every level short of the limit, and one lot at or beyond it
            short = [q for p, q in opposite if (self.limit - p) * side > 0]
            needed = sum(short) + 1
        else:
            needed = sum(q for _, q in opposite[:self.levels])
        lots = resolve_size(venue, self.size) if self.size is not None else needed
        filled, last = venue.market(side, lots)
        walk, left = [], filled
        for p, q in opposite:
            if left <= 0:
                break
            take = min(q, left)
            walk.append((p, take))
            left -= take
        first = walk[0][0] if walk else last
        self.facts = {"levels": len(walk), "volume": filled, "size": lots, "first_price": first, "last_price": last,
                      "vwap": round(sum(p * q for p, q in walk) / filled, 3) if filled else 0.0}
        self.mark(venue, last or first)
        self.finish(venue, "done")

    def emit(self, venue: Any) -> None:
        if self.facts["volume"]:
            self.label(venue, self.facts["first_price"], self.facts["last_price"], self.facts)


class BurstAgent(EpisodeAgent):
    """A one-sided market-order burst: the side's Hawkes baseline times ``factor`` for ``duration_s``."""

    kind = BURST
    push = 1

    def __init__(self, side: int, factor: float = 5.0, duration_s: float = 20.0, **kw: Any) -> None:
        kw.setdefault("max_s", duration_s + 1.0)
        super().__init__(side, **kw)
        self.factor, self.duration_s = factor, duration_s
        self.mid0 = 0

    def start(self, venue: Any) -> float | None:
        venue.boost_market_orders(self.side, self.factor, self.duration_s)
        self.mid0 = venue.book.mid2()
        self.mark(venue, mid_price(venue))
        return venue.now + self.duration_s

    def step(self, venue: Any) -> float | None:
        self.finish(venue, "done")
        return None

    def withdraw(self, venue: Any) -> None:
        venue.boost_market_orders(self.side, 1.0, 0.0)

    def emit(self, venue: Any) -> None:
        mid1 = venue.book.mid2()
        lo, hi = sorted((self.mid0 // 2, mid1 // 2))
        self.label(venue, lo, hi, {"factor": self.factor, "duration_s": self.duration_s,
                                   "mid2_start": self.mid0, "mid2_end": mid1})
