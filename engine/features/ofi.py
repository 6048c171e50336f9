"""Order-flow imbalance (SPEC F5, Cont-Kukanov-Stoikov 2014, and F6, multi-level), per book update.

At each ``LAST`` boundary (one atomic exchange event applied) the best-level term is

    e_n = qb_n 1[b_n >= b_{n-1}] - qb_{n-1} 1[b_n <= b_{n-1}] - qa_n 1[a_n <= a_{n-1}] + qa_{n-1} 1[a_n >= a_{n-1}]

and the multi-level terms ``e^(m)_n`` apply the same formula to the m-th occupied level of each side
(m = 1..M). A side that is empty contributes nothing until it has a level again. A side whose top M
levels did not change contributes 0 to every ``e^(m)`` (each of its two terms cancels), so only a
side an event touched since the last update is read again (M levels, in place, no allocation).

Windows (1, 10, 60 s) are differences of cumulative sums taken at 100 ms bucket ends: exact at bar
closes (every window is a whole number of buckets), and at most one bucket (100 ms) longer at a
detection sample between closes. Per update: a few comparisons and additions; per bucket: one
tuple of cumulative sums; per sample: O(windows).

Sample values: ``ofi_1s``, ``ofi_10s``, ``ofi_60s`` (lots), their normalised forms ``ofi_norm_W =
OFI_W / D`` with ``D`` the mean of ``(qb + qa) / 2`` over the window's updates, the multi-level
vector ``ofi_l{m}_10s`` normalised by the mean depth of the first M levels (per side, averaged),
the integrated ``ofi_integrated_10s = w . OFI^(1..M)`` (equal weights until fitted), and
``ofi_cum`` (cumulative best-level OFI).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

from engine.book import OrderBook
from engine.events import BookDelta, BookSnapshot, OrderAdd, OrderCancel, OrderDelete, OrderExecute, OrderModify
from engine.features.listener import Accumulator

BUCKET_NS = 100_000_000
WINDOWS_S = (1, 10, 60)


class CumulativeWindows:
    """Window sums as differences of cumulative totals recorded at bucket ends (bounded history)."""

    __slots__ = ("width", "windows", "ends", "totals", "longest")

    def __init__(self, windows_s: tuple[int, ...] = WINDOWS_S, width_ns: int = BUCKET_NS) -> None:
        self.width = width_ns
        self.windows = [w * 1_000_000_000 for w in windows_s]
        self.longest = max(self.windows)
        self.ends: list[int] = []  # bucket ends, ascending
        self.totals: list[tuple[int, ...]] = []  # cumulative totals at each end

    def record(self, end: int, totals: tuple[int, ...]) -> None:
        """The cumulative totals as of bucket end ``end``."""
        self.ends.append(end)
        self.totals.append(totals)
        if len(self.ends) > 4096 and self.ends[2048] < end - self.longest - self.width:
            del self.ends[:2048]
            del self.totals[:2048]

    def since(self, ts: int, window_ns: int) -> tuple[int, ...] | None:
        """The cumulative totals at the last recorded end at or before ``ts - window``; None if none."""
        i = bisect_right(self.ends, ts - window_ns)
        return self.totals[i - 1] if i else None


class OrderFlowImbalance(Accumulator):
    """F5 and F6 over one instrument's book; ``levels`` = M."""

    def __init__(self, book: OrderBook, levels: int = 5) -> None:
        self.book = book
        self.levels = levels
        self.pb = self.pqb = self.pa = self.pqa = 0
        self.started = False
        # previous top-M of each side, best first; a side is re-read only when an event touched it
        self.prev_bid_px = [0] * levels
        self.prev_bid_sz = [0] * levels
        self.prev_ask_px = [0] * levels
        self.prev_ask_sz = [0] * levels
        self.prev_bid_n = self.prev_ask_n = 0
        self.dirty_bid = self.dirty_ask = False
        # cumulative sums: e, 2 * depth (qb + qa), updates, e^(1..M), depth of the first M levels (both sides)
        self.cum = [0] * (3 + levels + 1)
        self.depth_m = 0
        self.bucket_end = 0
        self.windows = CumulativeWindows()
        self.weights = [1.0 / levels] * levels

    def handlers(self) -> dict[type, Callable]:
        return {OrderAdd: self.touched, OrderCancel: self.touched, OrderDelete: self.touched,
                OrderExecute: self.touched, OrderModify: self.touched, BookDelta: self.touched,
                BookSnapshot: self.touched_both}

    def touched(self, ev) -> None:
        if ev.side > 0:
            self.dirty_bid = True
        else:
            self.dirty_ask = True

    def touched_both(self, ev) -> None:
        self.dirty_bid = self.dirty_ask = True

    def on_last(self, ts: int) -> None:
        book = self.book
        bp, ap = book.bid_prices, book.ask_prices
        if not bp or not ap:
            return
        if ts >= self.bucket_end:
            if self.bucket_end:
                self.windows.record(self.bucket_end, tuple(self.cum))
            self.bucket_end = (ts // BUCKET_NS + 1) * BUCKET_NS
        bs, as_ = book.bid_sizes, book.ask_sizes
        b, qb, a, qa = bp[-1], bs[-1], ap[0], as_[0]
        cum = self.cum
        if self.started:
            pb, pqb, pa, pqa = self.pb, self.pqb, self.pa, self.pqa
            e = 0
            if b >= pb:
                e += qb
            if b <= pb:
                e -= pqb
            if a <= pa:
                e -= qa
            if a >= pa:
                e += pqa
            cum[0] += e
        self.started = True
        self.pb, self.pqb, self.pa, self.pqa = b, qb, a, qa
        cum[1] += qb + qa
        cum[2] += 1
        m = self.levels
        if self.dirty_bid:
            self.dirty_bid = False
            n = len(bp)
            n = n if n < m else m
            self.depth_m += _side_terms(cum, bp, bs, -1, -1, n, self.prev_bid_px, self.prev_bid_sz, self.prev_bid_n, 1)
            self.prev_bid_n = n
        if self.dirty_ask:
            self.dirty_ask = False
            n = len(ap)
            n = n if n < m else m
            self.depth_m += _side_terms(cum, ap, as_, 0, 1, n, self.prev_ask_px, self.prev_ask_sz, self.prev_ask_n, -1)
            self.prev_ask_n = n
        cum[3 + m] += self.depth_m

    def values(self, ts: int) -> dict[str, float]:
        if self.bucket_end and ts >= self.bucket_end:  # close the bucket the last update fell in
            self.windows.record(self.bucket_end, tuple(self.cum))
            self.bucket_end = (ts // BUCKET_NS + 1) * BUCKET_NS
        cum = self.cum
        since = self.windows.since
        out: dict[str, float] = {"ofi_cum": float(cum[0])}
        for seconds, name, norm in _WINDOW_NAMES:
            start = since(ts, seconds * 1_000_000_000)
            if start is None:
                e, depth2, updates = cum[0], cum[1], cum[2]
            else:
                e, depth2, updates = cum[0] - start[0], cum[1] - start[1], cum[2] - start[2]
            out[name] = float(e)
            out[norm] = 2 * e * updates / depth2 if depth2 else 0.0
        start = since(ts, 10_000_000_000)
        m = self.levels
        base = start if start is not None else _ZEROS[: len(cum)]
        updates, depth_m = cum[2] - base[2], cum[3 + m] - base[3 + m]
        scale = 2 * updates / depth_m if depth_m else 0.0  # 1 / mean depth of the first M levels, per side
        integrated = 0.0
        weights = self.weights
        for level in range(m):
            value = (cum[3 + level] - base[3 + level]) * scale
            out[_LEVEL_NAMES[level]] = value
            integrated += weights[level] * value
        out["ofi_integrated_10s"] = integrated
        return out


_WINDOW_NAMES = tuple((s, f"ofi_{s}s", f"ofi_norm_{s}s") for s in WINDOWS_S)
_LEVEL_NAMES = tuple(f"ofi_l{level + 1}_10s" for level in range(64))
_ZEROS = (0,) * 80


def _side_terms(cum: list[int], px: list[int], sz: list[int], first: int, step: int, n: int, prev_px: list[int],
                prev_sz: list[int], prev_n: int, sign: int) -> int:
    """Add one side's contribution to e^(1..M) and take its new top ``n`` levels into ``prev_*`` (in place).

    ``px[first + level * step]`` is the level-th best price; ``sign`` is +1 for bids, -1 for asks.
    Returns the change of this side's depth over its first M levels.
    """
    if step < 0:  # bids: best last
        new_px, new_sz = px[:-n - 1:-1], sz[:-n - 1:-1]
    else:
        new_px, new_sz = px[:n], sz[:n]
    common = n if n < prev_n else prev_n
    for level in range(common):
        p, q, pp, pq = new_px[level], new_sz[level], prev_px[level], prev_sz[level]
        if p != pp or q != pq:
            better = (p - pp) * sign  # > 0: this side's level-th price improved
            term = 0
            if better >= 0:
                term += q
            if better <= 0:
                term -= pq
            cum[3 + level] += term * sign
    depth_change = sum(new_sz) - sum(prev_sz[:prev_n])
    prev_px[:n] = new_px
    prev_sz[:n] = new_sz
    if prev_n > n:  # levels that emptied read as zeros
        for level in range(n, prev_n):
            prev_px[level] = prev_sz[level] = 0
    return depth_change
