"""Liquidity that disappears: vacuums and spoofs (SPEC F18, F19, S4).

``VacuumAgent(side, ticks, duration_s)`` makes the market makers of one side step away: every
background order of ``side`` within ``ticks`` (N) of its best is cancelled at once, and background
limit orders of that side within N ticks of its (new) best are refused for ``duration_s`` (T). The
side's depth within N ticks therefore falls by the pulled volume, entirely by deletes. Label VACUUM
over the pulled zone ``[best, best -+ (N - 1)]`` for ``[start, start + T]`` with the depth before,
right after and at the end, and the number of orders cancelled. ``side`` is the side pulled: an ask
vacuum (SELL) lets the price travel up.

``SpoofAgent(side, distance, size, within)`` rests a large order ``distance`` ticks behind its own
side's best and cancels it as soon as the price comes within ``within`` ticks of it (the own best
moves toward it), or when any part of it is executed, or at ``max_s``. It polls every 10 ms. Label
SPOOF at its price with its size, the gap when pulled and the lots executed.
"""

from __future__ import annotations

from typing import Any

from engine.events import TruthKind
from feeds.simulator.agents.base import EpisodeAgent, Size, resolve_size

SPOOF_POLL_S = 0.01  # a spoofer watches the book this often (it must pull before it is hit)


class VacuumAgent(EpisodeAgent):
    """Pulls one side's background liquidity near the best and keeps it away for a while."""

    kind = TruthKind.VACUUM
    push = -1  # pulling a side lets the price travel toward it

    def __init__(self, side: int, ticks: int = 10, duration_s: float = 3.0, **kw: Any) -> None:
        kw.setdefault("max_s", duration_s + 1.0)
        super().__init__(side, **kw)
        if ticks < 1 or duration_s < 0:
            raise ValueError("a vacuum needs ticks >= 1 and duration_s >= 0")
        self.ticks, self.duration_s = ticks, duration_s
        self.facts: dict = {}
        self.best = 0

    def start(self, venue: Any) -> float | None:
        book, side, n = venue.book, self.side, self.ticks
        self.best = book.best_bid if side > 0 else book.best_ask
        before = book.depth_within(side, n)
        cancelled = venue.cancel_background(side, n)
        venue.suppress_adds(side, n, self.duration_s)
        self.facts = {"ticks": n, "duration_s": self.duration_s, "cancelled": cancelled, "depth_before": before,
                      "depth_after": book.depth_within(side, n), "best_before": self.best,
                      "best_after": book.best_bid if side > 0 else book.best_ask}
        self.mark(venue, self.best)
        return venue.now + self.duration_s

    def step(self, venue: Any) -> float | None:
        if venue.now >= self.t0 + self.duration_s - 1e-9:
            self.finish(venue, "done")
        return None

    def emit(self, venue: Any) -> None:
        facts = dict(self.facts, depth_end=venue.book.depth_within(self.side, self.ticks))
        far = self.best - self.side * (self.ticks - 1)
        self.label(venue, self.best, far, facts)


class SpoofAgent(EpisodeAgent):
    """A large resting order that is cancelled when the price comes near it."""

    kind = TruthKind.SPOOF
    push = -1

    def __init__(self, side: int, distance: int, size: Size, within: int | None = None, **kw: Any) -> None:
        super().__init__(side, **kw)
        within = distance - 1 if within is None else within
        if distance < 1 or not 0 <= within < distance:
            raise ValueError("a spoof needs distance >= 1 and 0 <= within < distance")
        self.distance, self.size, self.within = distance, size, within
        self.oid = self.at = self.lots = self.executed = 0
        self.gap = -1

    def start(self, venue: Any) -> float | None:
        book, side = venue.book, self.side
        best = book.best_bid if side > 0 else book.best_ask
        self.at = best - side * self.distance
        self.lots = resolve_size(venue, self.size)
        self.oid = venue.limit(side, self.at, self.lots)
        self.mark(venue, self.at)
        return venue.now + SPOOF_POLL_S

    def step(self, venue: Any) -> float | None:
        book, side = venue.book, self.side
        best = book.best_bid if side > 0 else book.best_ask
        gap = (best - self.at) * side
        if gap <= self.within:
            self.gap = gap
            self.finish(venue, "approached")
            return None
        return venue.now + SPOOF_POLL_S

    def on_fill(self, venue: Any, order_id: int, price: int, size: int) -> None:
        if order_id != self.oid or self.done:
            return
        self.executed += size
        self.gap = 0
        self.finish(venue, "hit")

    def withdraw(self, venue: Any) -> None:
        if self.oid and self.oid in venue.book.orders:
            venue.cancel(self.oid)
        self.oid = 0

    def emit(self, venue: Any) -> None:
        self.label(venue, self.at, self.at, {"size": self.lots, "distance": self.distance, "within": self.within,
                                             "gap_at_cancel": self.gap, "executed": self.executed})
