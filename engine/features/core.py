"""Core L1/L2 and trade features, updated incrementally (SPEC section 2: F1, F2, F3, F4 fallback,
F8 trade imbalance, F9 VWAP).

One ``FeatureVector`` is produced per ``BookView`` (i.e. per ``LAST`` boundary). State is O(1) per
event: trade windows are deques with running sums, the spread average is a running time integral.
No value is ever NaN or inf: undefined quantities (one-sided book, no trades yet) are 0.0 and the
vector's ``has_bbo`` / ``has_trades`` say whether they are meaningful.
"""

from __future__ import annotations

from collections import deque

import msgspec

from engine.book import BookView
from engine.events import Trade

NS = 1_000_000_000


class FeatureVector(msgspec.Struct, frozen=True, gc=False, array_like=True, tag="fv"):
    """Immutable feature values of one instrument at one ``LAST`` boundary.

    Prices are in ticks (``mid2`` in half ticks), imbalances in [-1, 1].
    """

    instrument_id: int
    ts_recv: int
    seq: int
    state: int
    has_bbo: bool
    has_trades: bool
    best_bid: int
    best_ask: int
    spread: int  # F1, ticks
    spread_twa: float  # F1, time-weighted mean spread over the spread window, ticks
    mid2: int  # bid + ask (half ticks)
    weighted_mid: float  # F4 fallback: b + s * qb / (qb + qa), ticks
    queue_imbalance: float  # F2: (qb - qa) / (qb + qa)
    depth_imbalance: tuple[float, ...]  # F3 per configured window (ticks from the best)
    vwap: float  # F9 session VWAP, ticks
    vwap_dev: float  # F9 mid - VWAP, ticks
    trade_imbalance: tuple[float, ...]  # F8: sum(sign * size) / sum(size) per configured window
    cvd: int  # F8 cumulative signed volume since the session start (hidden included)


class _TradeWindow:
    """Signed and total traded volume over the last ``window_ns`` of event time."""

    __slots__ = ("window_ns", "items", "signed", "total")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.items: deque[tuple[int, int, int]] = deque()
        self.signed = 0
        self.total = 0

    def add(self, ts: int, signed: int, size: int) -> None:
        self.items.append((ts, signed, size))
        self.signed += signed
        self.total += size

    def evict(self, now: int) -> None:
        cutoff = now - self.window_ns
        items = self.items
        while items and items[0][0] <= cutoff:
            _, signed, size = items.popleft()
            self.signed -= signed
            self.total -= size

    def imbalance(self) -> float:
        return self.signed / self.total if self.total else 0.0


class _TimeAverage:
    """Time-weighted mean of a step function over the last ``window_ns`` (O(1) amortised).

    Closed segments are kept only where the value changed; the open segment of the current value
    counts up to the query time.
    """

    __slots__ = ("window_ns", "segments", "integral", "value", "since")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.segments: deque[tuple[int, int, int]] = deque()  # (start, end, value), closed, oldest first
        self.integral = 0  # over the closed segments still in the deque
        self.value: int | None = None
        self.since = 0

    def update(self, ts: int, value: int) -> None:
        if value == self.value:
            return
        if self.value is not None and ts > self.since:
            self.segments.append((self.since, ts, self.value))
            self.integral += (ts - self.since) * self.value
        self.value = value
        self.since = ts

    def mean(self, now: int) -> float:
        """Mean over ``[now - window, now]`` (or since the first value, if later)."""
        value = self.value
        if value is None:
            return 0.0
        cutoff = now - self.window_ns
        segments = self.segments
        while segments and segments[0][1] <= cutoff:
            start, end, v = segments.popleft()
            self.integral -= (end - start) * v
        since = self.since
        if not segments:
            return float(value)
        start, _, head_value = segments[0]
        integral = self.integral + (now - since) * value
        if start < cutoff:  # the head segment is partly expired
            integral -= (cutoff - start) * head_value
            start = cutoff
        return integral / (now - start)


class FeatureEngine:
    """Computes one ``FeatureVector`` per ``BookView`` of one instrument (the feature stage core).

    Args:
        depth_ticks: windows of the depth imbalance, in ticks from the best (F3); the book stage
            should measure the same windows (``OrderBook(depth_windows=...)``), else they are
            measured here from the view's top-N levels.
        trade_windows_s: windows of the trade imbalance, in seconds (F8).
        spread_window_s: window of the time-weighted mean spread (F1).
    """

    def __init__(
        self,
        instrument_id: int,
        depth_ticks: list[int] | tuple[int, ...] = (5, 10),
        trade_windows_s: list[float] | tuple[float, ...] = (5.0, 30.0),
        spread_window_s: float = 10.0,
    ) -> None:
        self.instrument_id = instrument_id
        self.depth_ticks = tuple(sorted(depth_ticks))
        self.window_seconds = tuple(trade_windows_s)
        self.windows = [_TradeWindow(int(w * NS)) for w in trade_windows_s]
        self.spread_avg = _TimeAverage(int(spread_window_s * NS))
        self._no_depth = (0.0,) * len(self.depth_ticks)
        self.volume = 0
        self.notional = 0  # sum(price * size), ticks * lots
        self.cvd = 0
        self.last: FeatureVector | None = None
        self.next_sample = 1 << 63  # event time of the next ``_sample`` call (never, unless a subclass sets it)

    def apply(self, batch: list) -> list:
        """Consume events and book views; return the events plus one FeatureVector per view."""
        out: list = []
        append = out.append
        for item in batch:
            append(item)
            kind = type(item)
            if kind is BookView:
                append(self._on_view(item))
            elif kind is Trade:
                self._on_trade(item)
        return out

    def flush(self) -> list:
        return []

    def named(self, vector: FeatureVector) -> dict[str, float | int]:
        """Flat ``name -> value`` mapping with stable names (for persistence and reports)."""
        out: dict[str, float | int] = {
            "spread": vector.spread,
            "spread_twa": vector.spread_twa,
            "mid": vector.mid2 / 2,
            "weighted_mid": vector.weighted_mid,
            "queue_imbalance": vector.queue_imbalance,
            "vwap": vector.vwap,
            "vwap_dev": vector.vwap_dev,
            "cvd": vector.cvd,
        }
        for ticks, value in zip(self.depth_ticks, vector.depth_imbalance, strict=True):
            out[f"depth_imbalance_{ticks}"] = value
        for seconds, value in zip(self.window_seconds, vector.trade_imbalance, strict=True):
            out[f"trade_imbalance_{seconds:g}s"] = value
        return out

    def _on_trade(self, trade: Trade) -> None:
        size = trade.size
        signed = size * trade.aggressor
        self.volume += size
        self.notional += trade.price * size
        self.cvd += signed
        for window in self.windows:
            window.add(trade.ts_recv, signed, size)

    def _on_view(self, view: BookView) -> FeatureVector:
        ts = view.ts_recv
        bid_px, ask_px = view.bid_px, view.ask_px
        if bid_px and ask_px:
            has_bbo = True
            b, a = bid_px[0], ask_px[0]
            qb, qa = view.bid_sz[0], view.ask_sz[0]
            spread = a - b
            mid2 = a + b
            weighted_mid = b + spread * qb / (qb + qa)
            queue_imbalance = (qb - qa) / (qb + qa)
            average = self.spread_avg
            if spread != average.value:
                average.update(ts, spread)
            spread_twa = average.mean(ts)
            bid_depth, ask_depth = view.bid_depth, view.ask_depth
            if len(bid_depth) == len(ask_depth) == len(self.depth_ticks):  # the book measured them
                depth = tuple(map(_imbalance, bid_depth, ask_depth))
            else:  # a view from elsewhere: measure from its top-N levels
                depth = _depth_imbalances(bid_px, view.bid_sz, ask_px, view.ask_sz, self.depth_ticks)
        else:
            has_bbo = False
            b = bid_px[0] if bid_px else 0
            a = ask_px[0] if ask_px else 0
            spread = mid2 = 0
            weighted_mid = queue_imbalance = 0.0
            spread_twa = self.spread_avg.mean(ts)
            depth = self._no_depth
        imbalances = []
        for window in self.windows:
            items = window.items
            if items and items[0][0] <= ts - window.window_ns:
                window.evict(ts)
            imbalances.append(window.signed / window.total if window.total else 0.0)
        volume = self.volume
        vwap = self.notional / volume if volume else 0.0
        vector = FeatureVector(
            self.instrument_id,
            ts,
            view.seq,
            view.state,
            has_bbo,
            volume > 0,
            b,
            a,
            spread,
            spread_twa,
            mid2,
            weighted_mid,
            queue_imbalance,
            depth,
            vwap,
            mid2 / 2 - vwap if (has_bbo and volume) else 0.0,
            tuple(imbalances),
            self.cvd,
        )
        self.last = vector
        if ts >= self.next_sample:
            self._sample(view, vector)
        return vector

    def _sample(self, view: BookView, vector: FeatureVector) -> None:
        """Hook for subclasses that record samples; called when a view reaches ``next_sample``."""


def _imbalance(bid: int, ask: int) -> float:
    """(bid - ask) / (bid + ask), 0 when both are 0."""
    total = bid + ask
    return (bid - ask) / total if total else 0.0


def _depth_scan(prices: tuple[int, ...], sizes: tuple[int, ...], ticks: int) -> int:
    """Size of the levels within ``ticks`` of the best, by scanning (sparse books)."""
    best = prices[0]
    depth = 0
    for price, size in zip(prices, sizes, strict=False):
        if not -ticks < price - best < ticks:
            break
        depth += size
    return depth


def _depth_imbalances(bid_px, bid_sz, ask_px, ask_sz, windows: tuple[int, ...]) -> tuple[float, ...]:
    """F3 for every window: (D_bid - D_ask) / (D_bid + D_ask), depth within ``ticks`` of each best.

    At most ``ticks`` distinct prices fit in a window, so when the ``min(n, ticks)``-th level is
    inside, every level before it is too and a slice sum suffices (the dense, large-tick case).
    """
    b0, a0 = bid_px[0], ask_px[0]
    nb, na = len(bid_px), len(ask_px)
    out = []
    for ticks in windows:
        k = nb if nb < ticks else ticks
        d_bid = sum(bid_sz[:k]) if b0 - bid_px[k - 1] < ticks else _depth_scan(bid_px, bid_sz, ticks)
        k = na if na < ticks else ticks
        d_ask = sum(ask_sz[:k]) if ask_px[k - 1] - a0 < ticks else _depth_scan(ask_px, ask_sz, ticks)
        total = d_bid + d_ask  # 0 only for a window of 0 ticks
        out.append((d_bid - d_ask) / total if total else 0.0)
    return tuple(out)
