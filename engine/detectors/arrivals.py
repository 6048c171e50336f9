"""Causal null-model estimators for detectors: how often something arrives by chance.

``ArrivalRate`` counts arrivals per *cell* (e.g. ticks from the own best, or a side) over a trailing
window of ``window_s`` seconds, in buckets rolled at bar closes (``roll``), and gives arrivals per
second per cell. ``RecentSizes`` keeps the sizes of the last ``n`` arrivals and answers what share
fell in a size band. ``ArrivalRate`` is O(1) per arrival; ``RecentSizes`` O(log n) per query and an
O(n) list insert per arrival (feed it only what a test samples, not every event).

The rate divides by the time actually covered: ``min(window, now - first arrival seen)``, floored
at ``min_span_s`` so that the first seconds of data do not give huge rates from a handful of
arrivals. Nothing here reads the wall clock.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque

NS = 1_000_000_000


class ArrivalRate:
    """Arrivals per second in each of ``cells`` cells over the last ``window_s`` seconds.

    Args:
        cells: number of cells (an arrival names its cell ``0 <= cell < cells``).
        window_s: trailing window.
        bucket_s: bucket length; ``roll(ts)`` closes the current bucket (call it at every bar close
            that is a multiple of ``bucket_s``; calling it more often only makes buckets shorter).
        min_span_s: the smallest time span a rate is divided by.
    """

    __slots__ = ("cells", "window_ns", "min_span_ns", "current", "totals", "ring", "first_ts")

    def __init__(self, cells: int, window_s: float, bucket_s: float = 10.0, min_span_s: float = 10.0) -> None:
        self.cells = cells
        self.window_ns = int(window_s * NS)
        self.min_span_ns = int(min_span_s * NS)
        self.current = [0] * cells
        self.totals = [0] * cells  # sums of the buckets in ``ring`` (the current one excluded)
        self.ring: deque[tuple[int, list[int]]] = deque()  # (bucket end ts, counts), oldest first
        self.first_ts: int | None = None

    def add(self, cell: int, ts: int) -> None:
        """One arrival in ``cell`` at ``ts``."""
        if self.first_ts is None:
            self.first_ts = ts
        self.current[cell] += 1

    def roll(self, ts: int) -> None:
        """Close the current bucket at ``ts`` and forget buckets that ended before the window."""
        if any(self.current):
            totals = self.totals
            for cell, count in enumerate(self.current):
                totals[cell] += count
            self.ring.append((ts, self.current))
            self.current = [0] * self.cells
        horizon = ts - self.window_ns
        ring, totals = self.ring, self.totals
        while ring and ring[0][0] <= horizon:
            _, counts = ring.popleft()
            for cell, count in enumerate(counts):
                totals[cell] -= count

    def count(self, cell: int) -> int:
        """Arrivals in ``cell`` within the window (bucket granularity)."""
        return self.totals[cell] + self.current[cell]

    def rate(self, cell: int, now: int) -> float:
        """Arrivals per second in ``cell``; 0.0 before any arrival."""
        if self.first_ts is None:
            return 0.0
        span = min(self.window_ns, max(now - self.first_ts, self.min_span_ns))
        return self.count(cell) * NS / span


class RecentSizes:
    """The sizes of the last ``n`` arrivals, for the share that falls in a band (O(log n))."""

    __slots__ = ("order", "ranked")

    def __init__(self, n: int) -> None:
        self.order: deque[int] = deque(maxlen=n)  # arrival order, for eviction
        self.ranked: list[int] = []  # the same sizes, sorted

    def add(self, size: int) -> None:
        order, ranked = self.order, self.ranked
        if len(order) == order.maxlen:
            del ranked[bisect_left(ranked, order[0])]
        order.append(size)
        insort(ranked, size)

    def __len__(self) -> int:
        return len(self.order)

    def count(self, lo: float, hi: float) -> int:
        """Kept sizes within ``[lo, hi]``."""
        ranked = self.ranked
        return bisect_right(ranked, hi) - bisect_left(ranked, lo)

    def share(self, lo: float, hi: float) -> float:
        """Share of the kept sizes within ``[lo, hi]`` (0.0 when none is kept)."""
        n = len(self.order)
        return self.count(lo, hi) / n if n else 0.0
