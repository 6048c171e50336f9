"""F19 liquidity concentration: walls (outsized resting size near the best) and the HHI of the book.

The idea: a level holding many times the size of its neighbours is a wall the price has to eat
through; a wall that appears and vanishes within a second or two is more likely a spoof than
support, so a wall counts only once it has persisted.

Definition (SPEC F19; every statistic on bins of ``w = context.bin_ticks`` ticks, anchored at
absolute prices: bin ``j`` holds prices ``[j*w, j*w + w - 1]``). At each TF1 close, per side, over
the ``levels`` (N = 20) bins from the one holding the best: with ``m`` the median and ``MAD`` the
median absolute deviation of the occupied bins' sizes (at least ``min_levels`` occupied bins), a
bin of size ``q`` is a wall candidate if

    q >= max(k * m, Q_abs)   and   z = (q - m) / (1.4826 * max(MAD, 1)) >= z_min     (k = 5, z_min = 3)

(the MAD is floored at one lot: sizes are whole lots, and half the bins holding the same size would
otherwise make every larger bin infinitely significant). A candidate that is a candidate again at
every TF1 close and has been one for ``persist_ms`` (2 s) is a wall (the spoof filter); the
detection is emitted at the close where it becomes one, once per wall. Between closes, each
cancel, delete, execution or L2 delta at a candidate's bin re-checks the bin's size against the
smallest size that qualified at the last close; below it, the candidate is dropped and its
persistence restarts (a wall pulled and put back within a second does not persist).

Evidence (``WallDetection``): ``size`` (lots in the bin), ``median`` (m), ``ratio`` (q / m),
``robust_z`` (z), ``distance`` (ticks from the best to the bin's near edge, 0 when the best is
in it), ``persisted_ms`` (since the first close it qualified at), ``levels`` (occupied bins in the
window), ``share`` (q / D_N) and ``hhi``. ``strength`` = q / (the smallest qualifying size).

Per-sample values (``WallAccumulator.values``, names per side ``bid``/``ask``):
``wall_dist_*`` ticks from the best to the nearest wall (``N * w``, the edge of the window, when
there is none), ``wall_size_*`` its size (0 when none) and ``hhi_*`` = sum over the N bins of
``(q_j / D_N)^2`` (0 on an empty side; 1 when all the depth is in one bin).

``WallDetector`` is a ``WallAccumulator`` that also emits: install one or the other. Persistence
moves only at TF1 closes and with the per-event re-checks, never at samples, so the values do not
depend on which other detectors are installed (their detections add samples).

Cost: the scan of the N bins at TF1 closes and at samples (for the HHI), cached until the book
changes; with bins wider than a tick, each bin's size is a slice sum between bisected edges, so a
scan is O(N log L) whatever the number of levels. Per event a dict lookup (and, at a candidate's
bin, ``w`` size lookups). State: at most N candidates per side. No wall is reported from a STALE,
CROSSED or HALTED book (its candidates are dropped).

On L2 the same definition holds (it reads level sizes only).

Measured on the simulator: the spoof_pull preset's 104-lot offer (20 times the median level) is
reported as a wall 2-3 s after it is shown in seeds 1-5; background sessions give about six walls a
minute large-tick (mostly the occasional 50-lot order among levels of 5-15 lots) and two small-tick.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import msgspec

from engine.book import UNUSABLE
from engine.config.detectors import WallParams
from engine.detectors.base import Detector, DetectorContext
from engine.events import BUY, CLEAR, SELL, BookDelta, BookSnapshot, Detection, OrderCancel, OrderDelete, OrderExecute
from engine.features.listener import Accumulator

MS = 1_000_000
MAD_SCALE = 1.4826  # MAD of a normal sample times this is its standard deviation


def _median(values: list) -> float:
    """Median of a non-empty list (``statistics.median`` without its overhead)."""
    ordered = sorted(values)
    n = len(ordered)
    half = n // 2
    return ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2


class WallDetection(Detection, frozen=True):
    """A wall that has persisted (SPEC F19)."""

    size: int
    median: float
    ratio: float
    robust_z: float
    distance: int
    persisted_ms: float
    levels: int
    share: float
    hhi: float


class _Candidate:
    """A bin that qualified at the last close(s)."""

    __slots__ = ("since", "need", "emitted")

    def __init__(self, since: int, need: float) -> None:
        self.since, self.need, self.emitted = since, need, False


class _Scan(msgspec.Struct, frozen=True, gc=False):
    """One side's window at one moment: bins (near first) and their statistics."""

    best: int
    bins: dict[int, int]
    total: int
    median: float
    spread: float  # 1.4826 * max(MAD, 1)
    need: float  # the smallest size that qualifies (inf when too few bins are occupied)
    hhi: float  # sum of (q_j / total)^2 (0 on an empty window)


class WallAccumulator(Accumulator):
    """Wall candidates with their persistence, and the per-sample F19 values (module docstring)."""

    def __init__(self, context: DetectorContext, params: WallParams | None = None) -> None:
        self.context = context
        self.book = context.book
        self.params = params or WallParams()
        self.w = max(1, context.bin_ticks)
        self.reach = self.params.levels * self.w
        self.candidates: dict[int, dict[int, _Candidate]] = {BUY: {}, SELL: {}}
        self.cached: dict[int, tuple[int, _Scan | None] | None] = {BUY: None, SELL: None}  # (book seq, scan)

    def handlers(self) -> dict:
        return {OrderCancel: self.on_reduce, OrderDelete: self.on_reduce, OrderExecute: self.on_reduce,
                BookDelta: self.on_reduce, BookSnapshot: self.on_snapshot}

    # ---- per event ------------------------------------------------------------------------------
    def on_reduce(self, ev: OrderCancel | OrderDelete | OrderExecute | BookDelta) -> None:
        """Drop a candidate whose bin fell below the size that qualified it."""
        candidates = self.candidates.get(ev.side)
        if not candidates:
            if type(ev) is BookDelta and ev.action == CLEAR:
                self.on_snapshot(ev)
            return
        j = ev.price // self.w
        candidate = candidates.get(j)
        if candidate is not None and self._bin_size(ev.side, j) < candidate.need:
            del candidates[j]

    def on_snapshot(self, ev: BookSnapshot | BookDelta) -> None:
        """A new book: nothing has persisted in it yet."""
        for side in (BUY, SELL):
            self.candidates[side].clear()

    def _bin_size(self, side: int, j: int) -> int:
        size_at, w = self.book.size_at, self.w
        return sum(size_at(side, p) for p in range(j * w, j * w + w))

    # ---- at closes ------------------------------------------------------------------------------
    def on_bar(self, ts: int, frames: int) -> None:
        usable = not self.book.state & UNUSABLE
        for side in (BUY, SELL):
            scan = self.scan(side) if usable else None
            if scan is None:
                self.candidates[side].clear()
                continue
            kept: dict[int, _Candidate] = {}
            old = self.candidates[side]
            for j, q in scan.bins.items():
                if q >= scan.need:
                    candidate = old.get(j) or _Candidate(ts, scan.need)
                    candidate.need = scan.need
                    kept[j] = candidate
                    if not candidate.emitted and ts - candidate.since >= self.params.persist_ms * MS:
                        candidate.emitted = True
                        self.appeared(ts, side, j, q, scan, candidate)
            self.candidates[side] = kept

    def appeared(self, ts: int, side: int, j: int, size: int, scan: _Scan, candidate: _Candidate) -> None:
        """A candidate became a wall (the detector emits it)."""

    def scan(self, side: int) -> _Scan | None:
        """The window of one side now: bin sizes and the wall threshold (None on an empty side).

        Cached until the book applies another event (a bar close and the samples at it share one).
        """
        seq = self.book.last_seq
        cached = self.cached[side]
        if cached is not None and cached[0] == seq:
            return cached[1]
        scan = self._scan(side)
        self.cached[side] = (seq, scan)
        return scan

    def _scan(self, side: int) -> _Scan | None:
        book, p, w = self.book, self.params, self.w
        prices, sizes = (book.bid_prices, book.bid_sizes) if side == BUY else (book.ask_prices, book.ask_sizes)
        if not prices:
            return None
        best = prices[-1] if side == BUY else prices[0]
        near = best // w
        lo, hi = (near - p.levels + 1, near) if side == BUY else (near, near + p.levels - 1)  # bins, ascending
        bins: dict[int, int] = {}
        if w == 1:
            a, b = bisect_left(prices, lo), bisect_right(prices, hi)
            bins = dict(zip(prices[a:b], sizes[a:b], strict=True))
        else:  # bin edges by bisection, sums in C: O(N log L), not O(levels in the window)
            a = bisect_left(prices, lo * w)
            for j in range(lo, hi + 1):
                b = bisect_left(prices, (j + 1) * w, a)
                if b > a:
                    bins[j] = sum(sizes[a:b])
                a = b
        values = list(bins.values())
        total = sum(values)
        hhi = sum([q * q for q in values]) / (total * total) if total else 0.0
        if len(values) < p.min_levels:
            return _Scan(best, bins, total, 0.0, 0.0, float("inf"), hhi)
        m = _median(values)
        spread = MAD_SCALE * max(_median([abs(q - m) for q in values]), 1.0)
        need = max(p.k * m, float(p.min_lots), m + p.z_min * spread)
        return _Scan(best, bins, total, float(m), spread, need, hhi)

    def distance(self, side: int, best: int, j: int) -> int:
        """Ticks from the best to the near edge of bin ``j`` (0 when the best is in it)."""
        near = j * self.w + (self.w - 1 if side == BUY else 0)
        return max(0, (best - near) * side)

    # ---- per sample -----------------------------------------------------------------------------
    def values(self, ts: int) -> dict[str, float]:
        out: dict[str, float] = {}
        persist = self.params.persist_ms * MS
        for side, dist_name, size_name, hhi_name in _VALUE_NAMES:
            scan = self.scan(side)
            dist, size, hhi = float(self.reach), 0.0, 0.0
            if scan is not None:
                hhi = scan.hhi
                candidates = self.candidates[side]
                if candidates:
                    walls = [j for j, c in candidates.items() if c.emitted or ts - c.since >= persist]
                    if walls:
                        j = max(walls) if side == BUY else min(walls)
                        dist = float(self.distance(side, scan.best, j))
                        size = float(scan.bins.get(j, 0))
            out[dist_name] = dist
            out[size_name] = size
            out[hhi_name] = hhi
        return out


_VALUE_NAMES = tuple((side, f"wall_dist_{name}", f"wall_size_{name}", f"hhi_{name}")
                     for side, name in ((BUY, "bid"), (SELL, "ask")))


class WallDetector(WallAccumulator, Detector):
    """Emits a ``WallDetection`` when a wall has persisted; contributes the F19 values to samples."""

    name = "walls"

    def __init__(self, context: DetectorContext, params: WallParams | None = None) -> None:
        Detector.__init__(self, context)
        WallAccumulator.__init__(self, context, params)

    def appeared(self, ts: int, side: int, j: int, size: int, scan: _Scan, candidate: _Candidate) -> None:
        w = self.w
        self.emit(WallDetection(
            instrument_id=self.context.instrument.instrument_id, ts_recv=ts, seq=self.book.last_seq, side=side,
            price_lo=j * w, price_hi=j * w + w - 1, strength=size / scan.need, t_start=candidate.since,
            size=size, median=scan.median, ratio=size / scan.median, robust_z=(size - scan.median) / scan.spread,
            distance=self.distance(side, scan.best, j), persisted_ms=(ts - candidate.since) / MS,
            levels=len(scan.bins), share=size / scan.total, hhi=scan.hhi))
