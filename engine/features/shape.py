"""The shape of the book at a sample (SPEC F1 spread, F2 queue imbalance, F3 depth imbalance, F4
micro-price) and the time-weighted spread that needs every book update.

``SpreadTime`` (an accumulator) keeps the spread as a step function of event time, updated at each
``LAST``: its time-weighted mean over W (10 s) is exact, O(1) amortised. ``BookShape`` reads the
sample's view: spread in ticks and bps, mid, queue imbalance ``QI = (qb - qa)/(qb + qa)``, depth
imbalance within each configured window of ticks ``DI_N = (D^b_N - D^a_N)/(D^b_N + D^a_N)`` (the
book measures ``D_N`` in its views) and its level-weighted variant ``w_i = exp(-alpha (i - 1))`` over
the occupied levels of the view, and the micro-price lean ``p_micro - m``: from a calibrated
table (``MicropriceTable``, engine/features/microprice.py) when one is loaded and covers the
state, else the weighted mid ``b + s I`` (SPEC's fallback).
A one-sided or empty book gives 0.0 everywhere and ``has_bbo = 0``.
"""

from __future__ import annotations

import math
from collections import deque

from engine.book import OrderBook
from engine.features.listener import Accumulator
from engine.features.microprice import MicropriceTable
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature

NS = 1_000_000_000


class SpreadTime(Accumulator):
    """Time-weighted mean spread over the last ``window_s`` (F1): closed segments of the step
    function are kept only where the spread changed; the open one counts up to the query time."""

    def __init__(self, book: OrderBook, window_s: float = 10.0) -> None:
        self.book = book
        self.window_ns = int(window_s * NS)
        self.segments: deque[tuple[int, int, int]] = deque()  # (start, end, spread), oldest first
        self.integral = 0
        self.value: int | None = None
        self.since = 0

    def on_last(self, ts: int) -> None:
        bp, ap = self.book.bid_prices, self.book.ask_prices
        if not bp or not ap:
            return
        spread = ap[0] - bp[-1]
        if spread == self.value:
            return
        if self.value is not None and ts > self.since:
            self.segments.append((self.since, ts, self.value))
            self.integral += (ts - self.since) * self.value
        self.value = spread
        self.since = ts

    def mean(self, now: int) -> float:
        """Mean over ``[now - window, now]`` (or since the first two-sided book, if later)."""
        value = self.value
        if value is None:
            return 0.0
        cutoff = now - self.window_ns
        segments = self.segments
        while segments and segments[0][1] <= cutoff:
            start, end, v = segments.popleft()
            self.integral -= (end - start) * v
        if not segments or now <= segments[0][0]:
            return float(value)
        start, _, head = segments[0]
        integral = self.integral + (now - self.since) * value
        if start < cutoff:  # the head segment is partly expired
            integral -= (cutoff - start) * head
            start = cutoff
        return integral / (now - start)

    def values(self, ts: int) -> dict[str, float]:
        return {"spread_twa": self.mean(ts)}


class BookShape(SampleFeature):
    """F1-F4 from the sample's view (``depth_ticks`` the windows the book measures per view)."""

    def __init__(self, depth_ticks: tuple[int, ...], alpha: float = 0.5, micro: MicropriceTable | None = None) -> None:
        self.depth_ticks = tuple(depth_ticks)
        self.alpha = alpha
        self.weights = [math.exp(-alpha * i) for i in range(64)]
        self.micro = micro
        self.names = ("has_bbo", "best_bid", "best_ask", "spread", "spread_bps", "mid", "weighted_mid",
                      "queue_imbalance", "micro_lean", "micro_from_table", "depth_imbalance_weighted",
                      *(f"depth_imbalance_{n}" for n in self.depth_ticks))
        self.depth_names = tuple(f"depth_imbalance_{n}" for n in self.depth_ticks)
        self.zeros: dict[str, float] = dict.fromkeys(self.names, 0.0)  # the key order of every vector
        self.current: dict[str, float] = self.zeros.copy()

    def on_sample(self, sample: Sample) -> None:
        view = sample.view
        out = self.zeros.copy()
        if view.bid_px and view.ask_px:
            b, a = view.bid_px[0], view.ask_px[0]
            qb, qa = view.bid_sz[0], view.ask_sz[0]
            s = a - b
            mid = (a + b) / 2
            imbalance = qb / (qb + qa)
            out["has_bbo"] = 1.0
            out["best_bid"] = b
            out["best_ask"] = a
            out["spread"] = s
            out["spread_bps"] = 1e4 * s / mid if mid > 0 else 0.0
            out["mid"] = mid
            out["weighted_mid"] = b + s * imbalance
            out["queue_imbalance"] = (qb - qa) / (qb + qa)
            lean = self.micro.lean(imbalance, s) if self.micro is not None else None
            out["micro_from_table"] = 0.0 if lean is None else 1.0
            out["micro_lean"] = b + s * imbalance - mid if lean is None else lean
            for name, bid, ask in zip(self.depth_names, view.bid_depth, view.ask_depth, strict=False):
                out[name] = (bid - ask) / (bid + ask) if bid + ask else 0.0
            out["depth_imbalance_weighted"] = self._weighted(view.bid_sz, view.ask_sz)
        self.current = out

    def _weighted(self, bid_sizes: tuple[int, ...], ask_sizes: tuple[int, ...]) -> float:
        """Level-weighted imbalance over the occupied levels of the view, ``w_i = exp(-alpha (i - 1))``."""
        weights = self.weights
        bid = sum(map(float.__mul__, weights, map(float, bid_sizes)))
        ask = sum(map(float.__mul__, weights, map(float, ask_sizes)))
        return (bid - ask) / (bid + ask) if bid + ask else 0.0

    def values(self) -> dict[str, float]:
        return self.current
