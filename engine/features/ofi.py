"""Order-flow imbalance (SPEC F5, Cont-Kukanov-Stoikov 2014, and F6, multi-level), per book update.

At each ``LAST`` boundary (one atomic exchange event applied) the best-level term is

    e_n = qb_n 1[b_n >= b_{n-1}] - qb_{n-1} 1[b_n <= b_{n-1}] - qa_n 1[a_n <= a_{n-1}] + qa_{n-1} 1[a_n >= a_{n-1}]

and the multi-level terms ``e^(m)_n`` apply the same formula to the m-th occupied level of each side
(m = 1..M). A side that is empty contributes nothing until it has a level again.

Windows (1, 10, 60 s) are sums over 100 ms buckets: exact at bar closes (every window is a whole
number of buckets), and at most one bucket (100 ms) longer at a detection sample between closes.
Per update: one comparison of the top-M slices (no multi-level work when the top M of both sides
did not change), a few additions; per sample: O(windows).

Sample values: ``ofi_1s``, ``ofi_10s``, ``ofi_60s`` (lots), their normalised forms ``ofi_norm_W =
OFI_W / D`` with ``D`` the mean of ``(qb + qa) / 2`` over the window's updates, the multi-level
vector ``ofi_l{m}_10s`` normalised by the mean depth of the first M levels, the integrated
``ofi_integrated_10s = w . OFI^(1..M)`` (equal weights until fitted), and ``ofi_cum`` (cumulative).
"""

from __future__ import annotations

from collections import deque

from engine.book import OrderBook
from engine.features.listener import Accumulator

BUCKET_NS = 100_000_000
WINDOWS_S = (1, 10, 60)


class BucketWindows:
    """Sums of a few quantities over trailing windows of whole 100 ms buckets."""

    __slots__ = ("width", "windows", "buckets", "current", "current_end", "sums", "queues")

    def __init__(self, quantities: int, windows_s: tuple[int, ...] = WINDOWS_S, width_ns: int = BUCKET_NS) -> None:
        self.width = width_ns
        self.windows = [int(w * 1_000_000_000) for w in windows_s]
        self.current = [0.0] * quantities
        self.current_end: int | None = None
        self.sums = [[0.0] * quantities for _ in windows_s]
        self.queues: list[deque[tuple[int, list[float]]]] = [deque() for _ in windows_s]

    def add(self, ts: int, values: tuple[float, ...]) -> None:
        if self.current_end is None or ts >= self.current_end:
            self._roll(ts)
        current = self.current
        for i, v in enumerate(values):
            current[i] += v

    def _roll(self, ts: int) -> None:
        """Close the current bucket into every window and start the one holding ``ts``."""
        if self.current_end is not None and any(self.current):
            closed = (self.current_end, self.current)
            for queue, total in zip(self.queues, self.sums, strict=True):
                queue.append(closed)
                for i, v in enumerate(closed[1]):
                    total[i] += v
            self.current = [0.0] * len(self.current)
        self.current_end = (ts // self.width + 1) * self.width

    def totals(self, ts: int) -> list[list[float]]:
        """Per window, the sums over the closed buckets ending after ``ts - window`` plus the open one
        (exactly the window when ``ts`` is a bucket boundary, at most one bucket more otherwise)."""
        if self.current_end is not None and ts >= self.current_end:
            self._roll(ts)
        out = []
        for window_ns, queue, total in zip(self.windows, self.queues, self.sums, strict=True):
            cutoff = ts - window_ns
            while queue and queue[0][0] <= cutoff:
                _, values = queue.popleft()
                for i, v in enumerate(values):
                    total[i] -= v
            out.append([t + c for t, c in zip(total, self.current, strict=True)])
        return out


class OrderFlowImbalance(Accumulator):
    """F5 and F6 over one instrument's book; ``levels`` = M."""

    def __init__(self, book: OrderBook, levels: int = 5) -> None:
        self.book = book
        self.levels = levels
        self.bid: tuple[int, int] | None = None  # previous best (price, size)
        self.ask: tuple[int, int] | None = None
        self.top_bids: tuple[list[int], list[int]] = ([], [])  # previous top-M (prices, sizes), best last
        self.top_asks: tuple[list[int], list[int]] = ([], [])
        self.cum = 0
        # quantities: e, depth (qb + qa) / 2, updates, e^(1..M), depth of the first M levels per side
        self.buckets = BucketWindows(3 + levels + 1)
        self.weights = [1.0 / levels] * levels

    def on_last(self, ts: int) -> None:
        book = self.book
        bp, ap = book.bid_prices, book.ask_prices
        if not bp or not ap:
            return
        bs, as_ = book.bid_sizes, book.ask_sizes
        b, qb, a, qa = bp[-1], bs[-1], ap[0], as_[0]
        e = 0
        if self.bid is not None and self.ask is not None:
            pb, pqb = self.bid
            pa, pqa = self.ask
            e = _term(b, qb, pb, pqb, a, qa, pa, pqa)
        self.bid, self.ask = (b, qb), (a, qa)
        self.cum += e
        m = self.levels
        top_bids = (bp[-m:], bs[-m:])
        top_asks = (ap[:m], as_[:m])
        if top_bids == self.top_bids and top_asks == self.top_asks:
            multi = (0.0,) * m
            depth_m = (sum(top_bids[1]) + sum(top_asks[1])) / 2
        else:
            multi = _multi_terms(top_bids, top_asks, self.top_bids, self.top_asks, m)
            depth_m = (sum(top_bids[1]) + sum(top_asks[1])) / 2
            self.top_bids, self.top_asks = top_bids, top_asks
        self.buckets.add(ts, (e, (qb + qa) / 2, 1, *multi, depth_m))

    def values(self, ts: int) -> dict[str, float]:
        out: dict[str, float] = {"ofi_cum": self.cum}
        totals = self.buckets.totals(ts)
        m = self.levels
        for seconds, total in zip(WINDOWS_S, totals, strict=True):
            e, depth, updates = total[0], total[1], total[2]
            out[f"ofi_{seconds}s"] = e
            out[f"ofi_norm_{seconds}s"] = e / (depth / updates) if updates and depth else 0.0
        total = totals[1]  # the 10 s window for the multi-level vector
        updates, depth_m = total[2], total[3 + m]
        scale = depth_m / updates if updates and depth_m else 0.0
        integrated = 0.0
        for level in range(m):
            value = total[3 + level] / scale if scale else 0.0
            out[f"ofi_l{level + 1}_10s"] = value
            integrated += self.weights[level] * value
        out["ofi_integrated_10s"] = integrated
        return out


def _term(b: int, qb: int, pb: int, pqb: int, a: int, qa: int, pa: int, pqa: int) -> int:
    e = 0
    if b >= pb:
        e += qb
    if b <= pb:
        e -= pqb
    if a <= pa:
        e -= qa
    if a >= pa:
        e += pqa
    return e


def _multi_terms(bids, asks, prev_bids, prev_asks, m: int) -> tuple[float, ...]:
    """e^(1..m): the best-level formula on the m-th occupied level of each side (bids best last)."""
    out = []
    nb, na, pnb, pna = len(bids[0]), len(asks[0]), len(prev_bids[0]), len(prev_asks[0])
    for level in range(m):
        if level >= nb or level >= na or level >= pnb or level >= pna:
            out.append(0.0)
            continue
        out.append(float(_term(bids[0][nb - 1 - level], bids[1][nb - 1 - level],
                               prev_bids[0][pnb - 1 - level], prev_bids[1][pnb - 1 - level],
                               asks[0][level], asks[1][level], prev_asks[0][level], prev_asks[1][level])))
    return tuple(out)
