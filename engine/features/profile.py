"""Volume profile: POC, value area and significant high/low-volume nodes (SPEC F24), as a per-trade
accumulator over the session and over a rolling 2 h window.

Bins. Trades are binned by ``price // w`` (bin j covers ticks ``j w .. j w + w - 1``, its price is
the centre ``j w + (w - 1) / 2``). ``w`` is configured (``bin_ticks``) or fixed once, causally: the
median spread of the TF1 closes of the first 5 minutes, ``w = max(1, round(median))``; the trades of
those minutes wait in a buffer and are binned when w is fixed (bins never move after a trade is
binned), so the profiles are not ready before.

Per trade, O(1): ``V(j) += size``, ``N(j) += 1`` (fills, hidden executions included) in both
profiles; the session POC (argmax V; ties go to the bin closest to the range midpoint, then to the
VWAP, then the lower) is kept O(1) by the set of bins at the maximum. The rolling profile drops the
trades older than 2 h at TF2 closes and then rescans for its POC (O(B)).

At each TF2 close, O(B): the value area by the CBOT method (Dalton, *Mind Over Markets*): from the
POC, compare the summed volume of the next two bins above with the next two below, add the larger
pair (ties go up), until >= 70 % of the volume; VAH/VAL are the top tick of the highest bin and the
bottom tick of the lowest. And the node test on trade counts: local null ``N~(j)`` = Gaussian-kernel
(bandwidth h = 3 bins, |k - j| <= 3h, k != j) average of N(k) over the bins of the range;
over-dispersion ``phi = max(1, mean_j (N(j) - N~(j))^2 / N~(j))`` (quasi-Poisson); ``z(j) = (N(j) -
N~(j)) / sqrt(phi N~(j))``; one-sided normal p-values, Benjamini-Hochberg at alpha = 0.01 over the
tested bins (those with ``N~ > 0``), separately for the high and the low tail. HVN: a local maximum
of the smoothed profile (the kernel average with j included) whose high-tail test is significant;
LVN: a local minimum of the smoothed profile with an HVN on each side whose low-tail test is
significant. Node extent: the contiguous bins where the smoothed profile stays >= 50 % (HVN) or
<= 150 % (LVN) of its value at the node. Nothing is tested below ``min_trades`` trades. The node
test (a few numpy passes) runs at the TF2 closes on whole minutes (``node_every_s`` = 60 s); the
nodes hold in between, while POC and value area follow every TF2 close.

Values (prefix ``profile_`` for the session, ``profile_2h_`` for the rolling profile), ticks:
``poc``, ``vah``, ``val``, their distances ``*_dist = level - mid``, ``in_value_area`` (VAL <= mid <=
VAH), ``hvn_above``/``hvn_below``/``lvn_above``/``lvn_below`` (the nearest node centre strictly above
the mid, or at/below it; 0 when there is none) with ``*_dist = level - mid``, ``hvn_count``,
``lvn_count``, ``ready``; and ``profile_bin_ticks``. ``snapshot()`` returns the full profile (bins,
V, N, nodes) of the last TF2 close, immutable, for persistence.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from statistics import NormalDist

import msgspec
import numpy as np

from engine.book import OrderBook
from engine.config.features import VolumeProfileParams
from engine.events import Trade
from engine.features.bars import NS
from engine.features.listener import Accumulator
from engine.features.series import BoundaryTrigger

TF2_NS = 10 * NS


KEYS = ("ready", "poc", "vah", "val", "poc_dist", "vah_dist", "val_dist", "in_value_area", "hvn_above",
        "hvn_above_dist", "hvn_below", "hvn_below_dist", "lvn_above", "lvn_above_dist", "lvn_below", "lvn_below_dist",
        "hvn_count", "lvn_count")  # per profile, after its prefix


class Node(msgspec.Struct, frozen=True, gc=False):
    """A significant node: ``kind`` "hvn" or "lvn", centre price and extent (ticks), test z."""

    kind: str
    price: float
    lo: int
    hi: int
    z: float


class ProfileSnapshot(msgspec.Struct, frozen=True, gc=False):
    """One profile at a TF2 close: bins ``first_bin ..`` of ``bin_ticks`` ticks, their volume and
    trade counts, the POC and value area (ticks) and the nodes."""

    ts_recv: int
    window: str  # "session" or "rolling"
    bin_ticks: int
    first_bin: int
    volume: tuple[int, ...]
    count: tuple[int, ...]
    poc: float
    vah: int
    val: int
    nodes: tuple[Node, ...]


class Histogram:
    """V(j), N(j) of one profile; the POC kept O(1) per trade while no trade is removed."""

    __slots__ = ("volume", "count", "total", "trades", "notional", "lo", "hi", "top", "ties", "exact")

    def __init__(self) -> None:
        self.volume: dict[int, int] = {}
        self.count: dict[int, int] = {}
        self.total = self.trades = self.notional = 0
        self.lo = self.hi = 0
        self.top = 0
        self.ties: set[int] = set()
        self.exact = True  # ties/top/lo/hi are current (no removal since the last rescan)

    def add(self, j: int, price: int, size: int) -> None:
        volume = self.volume.get(j, 0) + size
        self.volume[j] = volume
        self.count[j] = self.count.get(j, 0) + 1
        if not self.trades:
            self.lo = self.hi = j
        elif j < self.lo:
            self.lo = j
        elif j > self.hi:
            self.hi = j
        self.total += size
        self.trades += 1
        self.notional += price * size
        if self.exact:
            if volume > self.top:
                self.top, self.ties = volume, {j}
            elif volume == self.top:
                self.ties.add(j)

    def remove(self, j: int, price: int, size: int) -> None:
        self.volume[j] -= size
        self.count[j] -= 1
        if not self.count[j]:
            del self.volume[j], self.count[j]
        self.total -= size
        self.trades -= 1
        self.notional -= price * size
        self.exact = False

    def rescan(self) -> None:
        if self.exact:
            return
        self.exact = True
        if not self.volume:
            self.top, self.ties, self.lo, self.hi = 0, set(), 0, 0
            return
        self.lo, self.hi = min(self.volume), max(self.volume)
        self.top = max(self.volume.values())
        self.ties = {j for j, v in self.volume.items() if v == self.top}

    def poc(self, width: int) -> int | None:
        """The POC bin (ties: closest to the range midpoint, then to the VWAP, then the lower)."""
        self.rescan()
        if not self.trades:
            return None
        if len(self.ties) == 1:
            return next(iter(self.ties))
        middle = (self.lo * width + (self.hi + 1) * width - 1) / 2
        vwap = self.notional / self.total
        half = (width - 1) / 2
        return min(self.ties, key=lambda j: (abs(j * width + half - middle), abs(j * width + half - vwap), j))

    def arrays(self) -> tuple[list[int], list[int]]:
        """V and N over the bins ``lo .. hi`` (zeros for untraded bins inside the range)."""
        volume, count = self.volume, self.count
        bins = range(self.lo, self.hi + 1)
        return [volume.get(j, 0) for j in bins], [count.get(j, 0) for j in bins]


def value_area(volume: list[int], poc: int, share: float) -> tuple[int, int]:
    """CBOT value area over ``volume`` (indices) from ``poc``: (lowest, highest) index."""
    target = share * sum(volume)
    acc = volume[poc]
    lo = hi = poc
    last = len(volume) - 1
    while acc < target and (lo > 0 or hi < last):
        above = sum(volume[hi + 1:hi + 3])
        below = sum(volume[max(lo - 2, 0):lo])
        if lo > 0 and (hi >= last or below > above):
            acc += below
            lo = max(lo - 2, 0)
        else:
            acc += above
            hi = min(hi + 2, last)
    return lo, hi


def _smooth(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kernel average of ``counts`` with ``weights`` (centred), normalised over the bins in range."""
    reach = len(weights) // 2
    size = len(counts)
    numerator = np.convolve(counts, weights)[reach:reach + size]
    return numerator / np.convolve(np.ones(size), weights)[reach:reach + size]


def _bh(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini-Hochberg rejections at level ``alpha`` (boolean mask)."""
    m = len(pvalues)
    if not m:
        return np.zeros(0, dtype=bool)
    order = np.argsort(pvalues, kind="stable")
    passed = pvalues[order] <= alpha * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if passed.any():
        reject[order[: np.flatnonzero(passed)[-1] + 1]] = True
    return reject


def find_nodes(counts: list[int], params: VolumeProfileParams) -> list[tuple[str, int, int, int, float]]:
    """The significant nodes of a profile's trade counts: (kind, index, lo index, hi index, z)."""
    n = np.asarray(counts, dtype=float)
    reach = int(params.kernel_reach * params.bandwidth_bins)
    offsets = np.arange(-reach, reach + 1)
    kernel = np.exp(-0.5 * (offsets / params.bandwidth_bins) ** 2)
    smoothed = _smooth(n, kernel)
    kernel[reach] = 0.0  # the local null leaves bin j out
    null = _smooth(n, kernel) if reach else np.zeros_like(n)
    tested = null > 0
    if not tested.any():
        return []
    safe = np.where(tested, null, 1.0)
    phi = max(1.0, float(np.mean((n[tested] - null[tested]) ** 2 / null[tested])))
    z = np.where(tested, (n - null) / np.sqrt(phi * safe), 0.0)
    z_alpha = NormalDist().inv_cdf(1.0 - params.alpha)
    if z.max() < z_alpha and z.min() > -z_alpha:
        return []  # BH rejects nothing when no bin passes the unadjusted level
    index = np.flatnonzero(tested)
    p_high = np.array([0.5 * math.erfc(v / math.sqrt(2)) for v in z[index]])
    high, low = np.zeros(len(n), dtype=bool), np.zeros(len(n), dtype=bool)
    high[index] = _bh(p_high, params.alpha)
    low[index] = _bh(1.0 - p_high, params.alpha)
    padded = np.concatenate(([0.0], smoothed, [0.0]))
    left, right, centre = padded[:-2], padded[2:], smoothed
    hvns = [int(j) for j in np.flatnonzero((centre > left) & (centre >= right) & high)]
    out: list[tuple[str, int, int, int, float]] = []
    for j in hvns:
        lo, hi = _extent(smoothed, j, lambda v, peak: v >= params.hvn_extent * peak)
        out.append(("hvn", j, lo, hi, float(z[j])))
    if len(hvns) >= 2:
        troughs = np.flatnonzero((centre < left) & (centre <= right) & low)
        for j in (int(t) for t in troughs if hvns[0] < t < hvns[-1]):
            lo, hi = _extent(smoothed, j, lambda v, trough: v <= params.lvn_extent * trough)
            out.append(("lvn", j, lo, hi, float(z[j])))
    return out


def _extent(smoothed: np.ndarray, j: int, inside: Callable[[float, float], bool]) -> tuple[int, int]:
    value = float(smoothed[j])
    lo = j
    while lo > 0 and inside(float(smoothed[lo - 1]), value):
        lo -= 1
    hi = j
    while hi < len(smoothed) - 1 and inside(float(smoothed[hi + 1]), value):
        hi += 1
    return lo, hi


class _Levels:
    """A profile's levels at the last TF2 close (ticks): POC, value area, node centres, and what its
    snapshot is built from (on request)."""

    __slots__ = ("ready", "poc", "vah", "val", "hvns", "lvns", "nodes", "ts", "window", "width", "first_bin",
                 "volume", "count", "close_poc", "built")

    def __init__(self, window: str) -> None:
        self.ready = False
        self.window = window
        self.nodes: tuple[Node, ...] = ()
        self.poc = self.close_poc = 0.0  # the POC now (the session's moves between closes) and at the close
        self.vah = self.val = 0
        self.hvns: list[float] = []
        self.lvns: list[float] = []
        self.ts = self.width = self.first_bin = 0
        self.volume: list[int] = []
        self.count: list[int] = []
        self.built: ProfileSnapshot | None = None

    def snapshot(self) -> ProfileSnapshot | None:
        if not self.ready:
            return None
        if self.built is None or self.built.ts_recv != self.ts:
            self.built = ProfileSnapshot(self.ts, self.window, self.width, self.first_bin, tuple(self.volume),
                                         tuple(self.count), self.close_poc, self.vah, self.val, self.nodes)
        return self.built


class TradeWindow:
    """The trades of the rolling window, oldest first, as four int64 columns (ts, bin, price, size): 32 bytes
    a trade where a deque of tuples took about 180 (a busy instrument's 2 h of trades were the largest
    item of the daemon soak's memory growth). Expired trades leave the front by a head index; the columns
    are compacted once the dead front is more than half of them."""

    __slots__ = ("ts", "bins", "prices", "sizes", "head")

    def __init__(self) -> None:
        self.ts, self.bins, self.prices, self.sizes = array("q"), array("q"), array("q"), array("q")
        self.head = 0

    def __len__(self) -> int:
        return len(self.ts) - self.head

    def append(self, ts: int, j: int, price: int, size: int) -> None:
        self.ts.append(ts)
        self.bins.append(j)
        self.prices.append(price)
        self.sizes.append(size)

    def drop_front(self, head: int) -> None:
        """Forget the trades before index ``head`` (of the columns)."""
        self.head = head
        if head > 1024 and 2 * head > len(self.ts):
            for column in (self.ts, self.bins, self.prices, self.sizes):
                del column[:head]
            self.head = 0


class VolumeProfile(Accumulator):
    """F24 for one instrument (needs its book for the spread warm-up and the mid)."""

    def __init__(self, book: OrderBook, params: VolumeProfileParams | None = None) -> None:
        p = self.params = params or VolumeProfileParams()
        self.book = book
        self.width = p.bin_ticks or None
        self.session = Histogram()
        self.rolling = Histogram()
        self.recent = TradeWindow()  # the trades in the rolling window
        self.pending: list[tuple[int, int, int]] = []  # trades before w is fixed: (ts, price, size)
        self.spreads: list[int] = []
        self.start: int | None = None
        self.tf1 = BoundaryTrigger(NS)
        self.tf2 = BoundaryTrigger(TF2_NS)
        self.levels = {"profile": _Levels("session"), "profile_2h": _Levels("rolling")}
        self.names = {prefix: tuple(f"{prefix}_{key}" for key in KEYS) for prefix in self.levels}
        self.out: dict[str, float] = {"profile_bin_ticks": float(self.width or 0)}
        for prefix in self.levels:
            self._clear(prefix)
        self.poc_trades = 0  # session trades when its POC was last looked up
        self.seen: int | None | tuple = ()  # the mid2 the distances were computed for (() forces a recompute)

    def handlers(self) -> dict[type, Callable]:
        return {Trade: self.on_trade}

    def on_trade(self, trade: Trade) -> None:
        if self.width is None:
            self.pending.append((trade.ts_recv, trade.price, trade.size))
            return
        self._bin(trade.ts_recv, trade.price, trade.size)

    def _bin(self, ts: int, price: int, size: int) -> None:
        assert self.width is not None
        j = price // self.width
        self.session.add(j, price, size)
        self.rolling.add(j, price, size)
        self.recent.append(ts, j, price, size)

    # ---- samples --------------------------------------------------------------------------------
    def values(self, ts: int) -> dict[str, float]:
        if self.width is None:
            if self.tf1.crossed(ts):
                self._warm_up(ts)
            if self.width is None:
                return self.out
        width = self.width
        if self.tf2.crossed(ts):
            self._refresh(ts)
        session = self.levels["profile"]
        if session.ready and self.session.trades != self.poc_trades:  # the session POC is current between closes
            self.poc_trades = self.session.trades
            poc = self.session.poc(width)
            assert poc is not None
            centre = poc * width + (width - 1) / 2
            if centre != session.poc:
                session.poc = self.out["profile_poc"] = centre
                self.seen = ()
        book = self.book
        bid, ask = book.best_bid, book.best_ask
        mid2 = bid + ask if bid is not None and ask is not None and bid < ask else None
        if mid2 != self.seen:
            self._distances(mid2)
            self.seen = mid2
        return self.out

    def _warm_up(self, ts: int) -> None:
        if self.start is None:
            self.start = ts
        book = self.book
        bid, ask = book.best_bid, book.best_ask
        if bid is not None and ask is not None and bid < ask:
            self.spreads.append(ask - bid)
        if ts - self.start < self.params.bin_warmup_s * NS or not self.spreads:
            return
        median = float(np.median(self.spreads))
        self.width = max(1, math.floor(median + 0.5))
        self.out["profile_bin_ticks"] = float(self.width)
        for trade in self.pending:
            self._bin(*trade)
        self.pending = []
        self.spreads = []

    def _refresh(self, ts: int) -> None:
        cutoff = ts - int(self.params.rolling_s * NS)
        recent, rolling = self.recent, self.rolling
        times, bins, prices, sizes = recent.ts, recent.bins, recent.prices, recent.sizes
        i, n = recent.head, len(times)
        while i < n and times[i] <= cutoff:
            rolling.remove(bins[i], prices[i], sizes[i])
            i += 1
        recent.drop_front(i)
        for prefix, histogram in (("profile", self.session), ("profile_2h", rolling)):
            self._levels(ts, prefix, histogram)

    def _levels(self, ts: int, prefix: str, histogram: Histogram) -> None:
        width, p = self.width, self.params
        assert width is not None
        levels = self.levels[prefix]
        poc = histogram.poc(width)
        self.seen = ()  # distances are recomputed at the next sample
        if poc is None:
            self.levels[prefix] = _Levels(levels.window)
            self._clear(prefix)
            return
        volume, count = histogram.arrays()
        lo, hi = value_area(volume, poc - histogram.lo, p.value_area_share)
        half = (width - 1) / 2
        levels.ready = True
        levels.poc = levels.close_poc = poc * width + half
        levels.val = (histogram.lo + lo) * width
        levels.vah = (histogram.lo + hi + 1) * width - 1
        levels.ts, levels.width, levels.first_bin, levels.volume, levels.count = ts, width, histogram.lo, volume, count
        if ts % (p.node_every_s * NS) == 0:
            nodes = find_nodes(count, p) if histogram.trades >= p.min_trades and len(count) >= 3 else []
            levels.nodes = tuple(Node(kind, (histogram.lo + j) * width + half, (histogram.lo + a) * width,
                                      (histogram.lo + b + 1) * width - 1, z) for kind, j, a, b, z in nodes)
            levels.hvns = sorted(node.price for node in levels.nodes if node.kind == "hvn")
            levels.lvns = sorted(node.price for node in levels.nodes if node.kind == "lvn")
        out, names = self.out, self.names[prefix]
        out[names[0]] = 1.0
        out[names[1]], out[names[2]], out[names[3]] = levels.poc, float(levels.vah), float(levels.val)
        out[names[16]], out[names[17]] = float(len(levels.hvns)), float(len(levels.lvns))

    def _clear(self, prefix: str) -> None:
        for key in KEYS:
            self.out[f"{prefix}_{key}"] = 0.0

    def _distances(self, mid2: int | None) -> None:
        """The values that move with the mid: distances to the levels and the nearest nodes."""
        out = self.out
        for prefix, levels in self.levels.items():
            if not levels.ready:
                continue
            (_, _, _, _, poc_dist, vah_dist, val_dist, inside, hvn_above, hvn_above_dist, hvn_below,
             hvn_below_dist, lvn_above, lvn_above_dist, lvn_below, lvn_below_dist, _, _) = names = self.names[prefix]
            if mid2 is None:
                for name in names[4:16]:
                    out[name] = 0.0
                continue
            mid = mid2 / 2
            out[poc_dist], out[vah_dist], out[val_dist] = levels.poc - mid, levels.vah - mid, levels.val - mid
            out[inside] = 1.0 if levels.val <= mid <= levels.vah else 0.0
            for prices, above, above_dist, below, below_dist in (
                    (levels.hvns, hvn_above, hvn_above_dist, hvn_below, hvn_below_dist),
                    (levels.lvns, lvn_above, lvn_above_dist, lvn_below, lvn_below_dist)):
                up = next((x for x in prices if x > mid), None) if prices else None
                down = next((x for x in reversed(prices) if x <= mid), None) if prices else None
                out[above], out[above_dist] = (up, up - mid) if up is not None else (0.0, 0.0)
                out[below], out[below_dist] = (down, down - mid) if down is not None else (0.0, 0.0)

    def snapshot(self, rolling: bool = False) -> ProfileSnapshot | None:
        """The session (or rolling) profile as of the last TF2 close; None before the first."""
        return self.levels["profile_2h" if rolling else "profile"].snapshot()

    def structures(self, ts: int) -> dict[str, object]:
        """``profile`` and ``profile_2h``: the snapshots as of the last TF2 close (None before it)."""
        return {"profile": self.snapshot(), "profile_2h": self.snapshot(rolling=True)}
