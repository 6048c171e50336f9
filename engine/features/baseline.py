"""Causal baselines (SPEC section 0): the mean and standard deviation of a statistic sampled at TF2
closes over the last ``W_base`` (30 min = 180 samples), its z-score and the auto threshold
``mean + k * std`` (Bookmap's automatic mode).

O(1) per sample: running sums over a ring, recomputed from the ring every ``REFRESH`` samples so
rounding never accumulates.
"""

from __future__ import annotations

import math
from collections import deque

REFRESH = 1024


class RollingBaseline:
    """Mean and std of the last ``window`` samples; nothing until ``min_samples`` have been seen."""

    __slots__ = ("window", "min_samples", "floor", "values", "total", "squares", "added")

    def __init__(self, window: int = 180, min_samples: int = 30, floor: float = 1e-9) -> None:
        self.window = window
        self.min_samples = min_samples
        self.floor = floor
        self.values: deque[float] = deque(maxlen=window)
        self.total = 0.0
        self.squares = 0.0
        self.added = 0

    def add(self, x: float) -> None:
        values = self.values
        if len(values) == self.window:
            old = values[0]
            self.total -= old
            self.squares -= old * old
        values.append(x)
        self.total += x
        self.squares += x * x
        self.added += 1
        if self.added % REFRESH == 0:
            self.total = math.fsum(values)
            self.squares = math.fsum(v * v for v in values)

    @property
    def ready(self) -> bool:
        return len(self.values) >= self.min_samples

    def mean(self) -> float:
        n = len(self.values)
        return self.total / n if n else 0.0

    def std(self) -> float:
        """Population standard deviation of the window (0 with fewer than two samples)."""
        n = len(self.values)
        if n < 2:
            return 0.0
        mean = self.total / n
        return math.sqrt(max(self.squares / n - mean * mean, 0.0))

    def z(self, x: float) -> float:
        """``(x - mean) / max(std, floor)``; 0 until the baseline is ready."""
        if not self.ready:
            return 0.0
        return (x - self.mean()) / max(self.std(), self.floor)

    def threshold(self, k: float = 2.0) -> float | None:
        """The auto threshold ``mean + k * std``, or None until the baseline is ready."""
        return self.mean() + k * self.std() if self.ready else None
