"""Small building blocks of the bar features: the usable mid of a sample, rolling sums over several
trailing windows of one bar series, a ring of cumulative counters, an EWMA, a rolling median, a
bar-boundary trigger for accumulators, and window names.

Conventions shared by every bar feature (engine/features/volatility.py, trend.py, impact.py, ...):

- A sample's mid is *usable* when both sides are present, the book is not crossed (bid < ask) and
  neither STALE nor CROSSED is flagged; a halted book keeps its (frozen) mid. The bar series carry
  the last usable mid forward over a bar whose mid is not usable, and start at the first usable one,
  so a one-sided moment gives a zero change, then the catch-up change.
- Mids are kept in half ticks (``mid2 = bid + ask``, an int), so sums of changes and of their squares
  are exact integers.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections import deque

from engine.book import CROSSED, STALE, BookView

REFRESH = 4096  # float running sums are recomputed from the ring every this many pushes


def usable_mid2(view: BookView) -> int | None:
    """``bid + ask`` (half ticks) when the view has a usable two-sided book, else None."""
    if not view.bid_px or not view.ask_px or view.state & (STALE | CROSSED):
        return None
    bid, ask = view.bid_px[0], view.ask_px[0]
    return bid + ask if bid < ask else None


class CarriedMid:
    """The last usable mid (half ticks), carried over samples whose mid is not usable."""

    __slots__ = ("mid2",)

    def __init__(self) -> None:
        self.mid2: int | None = None

    def update(self, view: BookView) -> int | None:
        mid2 = usable_mid2(view)
        if mid2 is not None:
            self.mid2 = mid2
        return self.mid2


class RollingSums:
    """Sums of a few quantities over several trailing windows (counted in pushes) of one series.

    O(windows x quantities) per push: the value leaving each window is read from one ring sized to the
    longest window. Integer quantities stay exact; float sums are recomputed every ``REFRESH`` pushes
    so rounding never accumulates.
    """

    __slots__ = ("windows", "width", "size", "ring", "pos", "count", "sums")

    def __init__(self, windows: tuple[int, ...], width: int) -> None:
        self.windows = tuple(windows)
        self.width = width
        self.size = max(self.windows)
        self.ring: list[tuple] = [()] * self.size
        self.pos = 0  # where the next push goes
        self.count = 0
        self.sums: list[list] = [[0] * width for _ in self.windows]

    def push(self, values: tuple) -> None:
        ring, count, pos = self.ring, self.count, self.pos
        sums = self.sums
        for index, window in enumerate(self.windows):
            if count >= window:  # the push leaving the window is ``window`` places back (a negative index wraps)
                old = ring[pos - window]
                sums[index] = [t + v - o for t, v, o in zip(sums[index], values, old, strict=True)]
            else:
                sums[index] = [t + v for t, v in zip(sums[index], values, strict=True)]
        ring[pos] = values
        self.pos = pos + 1 if pos + 1 < self.size else 0
        self.count = count + 1
        if self.count % REFRESH == 0:
            self._recompute()

    def filled(self, index: int) -> int:
        """How many pushes window ``index`` holds now (at most its length)."""
        return min(self.count, self.windows[index])

    def total(self, index: int) -> list:
        """The sums of window ``index`` (one per quantity)."""
        return self.sums[index]

    def last(self, n: int) -> list[tuple]:
        """The last ``n`` pushes, oldest first (n at most the longest window)."""
        n = min(n, self.count)
        return [self.ring[(self.pos - n + i) % self.size] for i in range(n)]

    def _recompute(self) -> None:
        for index, window in enumerate(self.windows):
            items = self.last(window)
            self.sums[index] = [sum(item[k] for item in items) for k in range(self.width)]


class CumulativeRing:
    """A cumulative counter read at the last ``n + 1`` bar closes: the change over the last k bars."""

    __slots__ = ("values",)

    def __init__(self, n: int) -> None:
        self.values: deque[float] = deque(maxlen=n + 1)

    def push(self, value: float) -> None:
        self.values.append(value)

    def bars(self) -> int:
        """How many whole bars of history are held."""
        return max(len(self.values) - 1, 0)

    def change(self, k: int) -> float:
        """``value(now) - value(k bars ago)`` (over the bars held, when fewer than k)."""
        values = self.values
        if len(values) < 2:
            return 0
        k = min(k, len(values) - 1)
        return values[-1] - values[-1 - k]


class Ewma:
    """Exponentially weighted mean with a half-life in steps, bias-corrected (the weights of the
    steps seen sum to one, so the first value is not pulled toward zero)."""

    __slots__ = ("decay", "weighted", "weight", "steps")

    def __init__(self, half_life_steps: float) -> None:
        self.decay = 0.5 ** (1.0 / half_life_steps)
        self.weighted = 0.0
        self.weight = 0.0
        self.steps = 0

    def add(self, x: float) -> float:
        decay = self.decay
        self.weighted = decay * self.weighted + (1.0 - decay) * x
        self.weight = decay * self.weight + (1.0 - decay)
        self.steps += 1
        return self.weighted / self.weight

    def value(self) -> float:
        return self.weighted / self.weight if self.weight else 0.0


class BoundaryTrigger:
    """For accumulators that finish a bar inside ``values(ts)``: true once per bar boundary.

    The market stage asks every accumulator for its values at each bar close, stamped with the
    boundary and before the crossing event is applied, and a detection sample comes after the close
    of its own instant; so ``values(ts)`` with ``ts`` on a boundary not seen before is that bar's
    close, and the bar's state then holds exactly the events before the boundary.
    """

    __slots__ = ("step", "last")

    def __init__(self, step_ns: int) -> None:
        self.step = step_ns
        self.last = -1

    def crossed(self, ts: int) -> bool:
        if ts % self.step == 0 and ts > self.last:
            self.last = ts
            return True
        return False


def span_name(seconds: int) -> str:
    """A window's name: ``300 -> "5m"``, ``3600 -> "60m"``, ``45 -> "45s"``."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


class RollingMedian:
    """Median of the integers added over a trailing window of event time, O(log n) per value (a sorted
    array kept beside the arrival order; the memmove of an insertion is C-fast). int64 columns: 24 bytes
    a value, where tuples in a deque and a list took about 150 (a 30-minute window fills for 30 minutes)."""

    __slots__ = ("window_ns", "times", "values", "head", "ordered")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.times = array("q")  # arrival order
        self.values = array("q")
        self.head = 0  # arrivals before this index have left the window
        self.ordered = array("q")

    def add(self, ts: int, value: int) -> None:
        self.times.append(ts)
        self.values.append(value)
        insort(self.ordered, value)

    def median(self, now: int) -> float | None:
        """The median of the values added in ``(now - window, now]``; None when there are none."""
        cutoff = now - self.window_ns
        times, values, ordered = self.times, self.values, self.ordered
        i, n = self.head, len(times)
        while i < n and times[i] <= cutoff:
            del ordered[bisect_left(ordered, values[i])]
            i += 1
        if i > 1024 and 2 * i > n:  # compact the dead front
            del times[:i]
            del values[:i]
            i = 0
        self.head = i
        n = len(ordered)
        if not n:
            return None
        middle = n // 2
        return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
