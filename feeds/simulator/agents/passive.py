"""Passive liquidity that absorbs aggressive flow: synthetic icebergs and absorbers (SPEC F20, F21).

A ``RestingLevel`` is one price where an agent holds ``total`` lots behind a displayed ``peak``:
it shows ``min(peak, reserve)`` as an ordinary limit order; when that order has been fully executed
it shows the next peak as a NEW order (new id, back of the queue) after a refill delay drawn
uniformly from ``refill_delay`` seconds (0.5-5 ms). While the price is not passive (the opposite
best is at or through it) the refill waits, retried every 100 ms; after 10 s the level is abandoned
(``blocked``). ``peak >= total`` is a plain displayed order (no refill).

``IcebergAgent(side, price, total, peak)`` holds one such level; ``AbsorberAgent(side, prices,
sizes, iceberg)`` holds one per price (stacked absorption: 2-3 adjacent prices), each absorbing up
to its size behind its peak (one peak for all, or one per price). Both end when every level is
exhausted or blocked, or at ``max_s``; the displayed remainder is then cancelled. Labels: ICEBERG
(one) or ABSORPTION (one per level that traded, same episode id), ``price_lo = price_hi`` = the
level, measured facts in ``params``: lots executed, displayed, refills, the time of the last
execution, whether the level was traded through.
"""

from __future__ import annotations

from typing import Any

from engine.events import TruthKind
from feeds.simulator.agents.base import EpisodeAgent, Price, Size, resolve_size

REFILL_DELAY = (0.0005, 0.005)
RETRY_S = 0.1  # a refill that would be marketable is retried this often...
RETRY_MAX_S = 10.0  # ...for this long, then the level is abandoned (blocked)


class RestingLevel:
    """One price where an agent rests ``total`` lots behind a displayed ``peak``."""

    __slots__ = ("price", "total", "peak", "reserve", "oid", "executed", "shown", "refills", "t_refill",
                 "t_first_ns", "t_last_ns", "blocked", "t_wait")

    def __init__(self, price: int, total: int, peak: int) -> None:
        self.price, self.total, self.peak = price, total, max(1, min(peak, total))
        self.reserve = total  # lots not yet displayed
        self.oid = 0
        self.executed = self.shown = self.refills = 0
        self.t_refill: float | None = None
        self.t_first_ns = self.t_last_ns = 0
        self.blocked = False
        self.t_wait: float | None = None  # since when a refill waits for the price to be passive again

    @property
    def live(self) -> bool:
        """True while the level still rests or will refill."""
        return not self.blocked and (self.oid != 0 or self.reserve > 0)

    def show(self, venue: Any, side: int) -> None:
        """Display the next peak (a new order at the back of the queue); wait while the price is marketable."""
        book, now = venue.book, venue.now
        opposite = book.best_ask if side > 0 else book.best_bid
        if opposite is not None and (opposite - self.price) * side <= 0:
            if self.t_wait is None:
                self.t_wait = now
            if now - self.t_wait >= RETRY_MAX_S:
                self.blocked, self.t_refill = True, None
            else:
                self.t_refill = now + RETRY_S
            return
        if self.shown:
            self.refills += 1
        size = min(self.peak, self.reserve)
        self.oid = venue.limit(side, self.price, size)
        self.reserve -= size
        self.shown += size
        self.t_refill = self.t_wait = None

    def filled(self, venue: Any, order_id: int, size: int, delay: float) -> None:
        """Record an execution; schedule the refill when the displayed order is gone."""
        self.executed += size
        now_ns = venue.now_ns
        self.t_first_ns = self.t_first_ns or now_ns
        self.t_last_ns = now_ns
        if order_id == self.oid and order_id not in venue.book.orders:
            self.oid = 0
            if self.reserve > 0:
                self.t_refill = venue.now + delay

    def facts(self) -> dict:
        """Measured facts of the level for a truth label."""
        return {"total": self.total, "peak": self.peak, "executed": self.executed, "displayed": self.shown,
                "refills": self.refills, "t_first_fill": self.t_first_ns, "t_last_fill": self.t_last_ns,
                "blocked": int(self.blocked)}


class PassiveAgent(EpisodeAgent):
    """Resting levels that refill after full executions (shared by icebergs and absorbers)."""

    push = -1  # the aggressive flow that hits passive liquidity pushes against its side

    def __init__(self, side: int, prices: list[Price], sizes: list[Size], peak: Size | list[Size] | None,
                 refill_delay: tuple[float, float] = REFILL_DELAY, **kw: Any) -> None:
        super().__init__(side, **kw)
        peaks = peak if isinstance(peak, list) else [peak] * len(prices)
        if not prices or len(prices) != len(sizes) or len(peaks) != len(prices):
            raise ValueError("a passive agent needs one size (and one peak, if a list) per price")
        self.prices, self.sizes, self.peaks, self.refill_delay = list(prices), list(sizes), peaks, refill_delay
        self.refer(*self.prices)
        self.levels: list[RestingLevel] = []
        self.by_oid: dict[int, RestingLevel] = {}

    def start(self, venue: Any) -> float | None:
        for expr, size, peak in zip(self.prices, self.sizes, self.peaks, strict=True):
            total = resolve_size(venue, size)
            peak = total if peak is None else resolve_size(venue, peak)
            level = RestingLevel(self.price(venue, expr), total, peak)
            self.levels.append(level)
            self._show(venue, level)
        self.mark(venue, self.levels[0].price)
        return self._check(venue)

    def step(self, venue: Any) -> float | None:
        now = venue.now
        for level in self.levels:
            if level.t_refill is not None and level.t_refill <= now + 1e-9:
                self._show(venue, level)
        return self._check(venue)

    def on_fill(self, venue: Any, order_id: int, price: int, size: int) -> None:
        level = self.by_oid.get(order_id)
        if level is None or self.done:
            return
        shown = level.oid
        lo, hi = self.refill_delay
        level.filled(venue, order_id, size, float(venue.rng.uniform(lo, hi)))
        if shown and level.oid == 0:  # the displayed order is gone
            if level.t_refill is not None:
                venue.wake_at(self, level.t_refill)
            else:
                self._check(venue)

    def withdraw(self, venue: Any) -> None:
        for level in self.levels:
            if level.oid:
                venue.cancel(level.oid)
                level.oid = 0

    def _show(self, venue: Any, level: RestingLevel) -> None:
        level.show(venue, self.side)
        if level.oid:
            self.by_oid[level.oid] = level

    def _check(self, venue: Any) -> float | None:
        """Finish when no level is live; else the next refill time."""
        if not any(level.live for level in self.levels):
            blocked = any(level.blocked for level in self.levels)
            self.finish(venue, "blocked" if blocked else "exhausted")
            return None
        due = [level.t_refill for level in self.levels if level.t_refill is not None]
        return min(due) if due else None

    def _through(self, venue: Any, level: RestingLevel) -> int:
        """1 when the price now trades beyond the level (the opposite best is at or through it)."""
        book = venue.book
        opposite = book.best_ask if self.side > 0 else book.best_bid
        own = book.best_bid if self.side > 0 else book.best_ask
        beyond = own is not None and (level.price - own) * self.side > 0 and level.oid == 0
        return int(beyond or (opposite is not None and (opposite - level.price) * self.side <= 0))


class IcebergAgent(PassiveAgent):
    """A synthetic iceberg: ``total`` lots at ``price`` shown ``peak`` at a time (SPEC F21)."""

    kind = TruthKind.ICEBERG

    def __init__(self, side: int, price: Price, total: Size, peak: Size,
                 refill_delay: tuple[float, float] = REFILL_DELAY, **kw: Any) -> None:
        super().__init__(side, [price], [total], peak, refill_delay, **kw)

    def emit(self, venue: Any) -> None:
        level = self.levels[0] if self.levels else None
        if level is None:
            return
        facts = level.facts()
        facts["through"] = self._through(venue, level)
        self.label(venue, level.price, level.price, facts)


class AbsorberAgent(PassiveAgent):
    """Passive size at one or more adjacent prices absorbing aggressive flow (SPEC F20)."""

    kind = TruthKind.ABSORPTION

    def __init__(self, side: int, prices: list[Price], sizes: list[Size], iceberg: bool = False,
                 peak: Size | list[Size] = "1mo", refill_delay: tuple[float, float] = REFILL_DELAY, **kw: Any) -> None:
        super().__init__(side, prices, sizes, peak if iceberg else None, refill_delay, **kw)
        self.iceberg = iceberg

    def emit(self, venue: Any) -> None:
        for i, level in enumerate(self.levels):
            if level.executed == 0:
                continue
            facts = level.facts()
            facts.update(level=i, levels=len(self.levels), iceberg=int(self.iceberg),
                         through=self._through(venue, level))
            self.label(venue, level.price, level.price, facts)
