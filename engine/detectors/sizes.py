"""A causal rolling distribution of whole-lot sizes (order adds, cancel bursts) for auto thresholds.

SPEC section 0 samples a statistic at TF2 closes over the last ``W_base`` = 30 min. Sizes of
individual orders are not one value per bar, so this keeps every size seen in the window instead:
a histogram ``{size: count}`` per TF2 bar, the last ``bars`` of them summed, with exact integer
running sums of the sizes and their squares. ``add`` is O(1); ``roll`` (at each TF2 close) drops
the bar that left the window in O(distinct sizes in it); ``mean`` and ``std`` are O(1);
``quantile`` sorts the distinct sizes (meant for bar closes).

Sizes are whole lots, so the histogram stays small (the simulator uses a dozen distinct sizes; a
real day a few hundred in 30 min).
"""

from __future__ import annotations

import math
from collections import deque


class RollingSizes:
    """Counts of each size seen in the current bar and the ``bars - 1`` closed before it."""

    __slots__ = ("bars", "closed", "current", "totals", "count", "total", "squares")

    def __init__(self, bars: int = 180) -> None:
        self.bars = bars
        self.closed: deque[dict[int, int]] = deque()
        self.current: dict[int, int] = {}
        self.totals: dict[int, int] = {}
        self.count = 0
        self.total = 0  # sum of the sizes in the window (exact: sizes are ints)
        self.squares = 0  # sum of their squares

    def add(self, size: int) -> None:
        """Count one size in the current bar."""
        current, totals = self.current, self.totals
        current[size] = current.get(size, 0) + 1
        totals[size] = totals.get(size, 0) + 1
        self.count += 1
        self.total += size
        self.squares += size * size

    def roll(self) -> None:
        """Close the current bar (at a TF2 close); forget the bar that left the window."""
        self.closed.append(self.current)
        self.current = {}
        while len(self.closed) >= self.bars:
            totals = self.totals
            for size, n in self.closed.popleft().items():
                left = totals[size] - n
                if left:
                    totals[size] = left
                else:
                    del totals[size]
                self.count -= n
                self.total -= size * n
                self.squares -= size * size * n

    def quantile(self, q: float) -> int:
        """The smallest size ``s`` with at least a share ``q`` of the window at or below it (0 when empty)."""
        if not self.count:
            return 0
        need = q * self.count
        seen = 0
        size = 0
        for size in sorted(self.totals):
            seen += self.totals[size]
            if seen >= need:
                return size
        return size

    def mean(self) -> float:
        """Mean size in the window (0 when empty)."""
        return self.total / self.count if self.count else 0.0

    def std(self) -> float:
        """Population standard deviation of the sizes in the window (0 when empty)."""
        n = self.count
        if not n:
            return 0.0
        return math.sqrt(max(n * self.squares - self.total * self.total, 0) / (n * n))
