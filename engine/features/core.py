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
    """Time-weighted mean of a step function over the last ``window_ns`` (O(1) amortised)."""

    __slots__ = ("window_ns", "segments", "integral", "value", "since")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.segments: deque[tuple[int, int, int]] = deque()  # (start, end, value), closed segments
        self.integral = 0
        self.value: int | None = None
        self.since = 0

    def update(self, ts: int, value: int) -> None:
        if self.value is not None and ts > self.since:
            self.segments.append((self.since, ts, self.value))
            self.integral += (ts - self.since) * self.value
        self.value = value
        self.since = ts
        cutoff = ts - self.window_ns
        segments = self.segments
        while segments and segments[0][1] <= cutoff:
            start, end, v = segments.popleft()
            self.integral -= (end - start) * v
        if segments and segments[0][0] < cutoff:  # trim the partially expired segment
            start, end, v = segments[0]
            self.integral -= (cutoff - start) * v
            segments[0] = (cutoff, end, v)

    def mean(self) -> float:
        if not self.segments:
            return float(self.value or 0)
        span = self.since - self.segments[0][0]
        return self.integral / span if span > 0 else float(self.value or 0)


class FeatureEngine:
    """Computes one ``FeatureVector`` per ``BookView`` of one instrument (the feature stage core).

    Args:
        depth_ticks: windows of the depth imbalance, in ticks from the best (F3).
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
        self.depth_ticks = tuple(depth_ticks)
        self.window_seconds = tuple(trade_windows_s)
        self.windows = [_TradeWindow(int(w * NS)) for w in trade_windows_s]
        self.spread_avg = _TimeAverage(int(spread_window_s * NS))
        self.volume = 0
        self.notional = 0  # sum(price * size), ticks * lots
        self.cvd = 0
        self.last: FeatureVector | None = None

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
        has_bbo = bool(bid_px) and bool(ask_px)
        if has_bbo:
            b, a = bid_px[0], ask_px[0]
            qb, qa = view.bid_sz[0], view.ask_sz[0]
            spread = a - b
            mid2 = a + b
            weighted_mid = b + spread * qb / (qb + qa)
            queue_imbalance = (qb - qa) / (qb + qa)
            self.spread_avg.update(ts, spread)
            spread_twa = self.spread_avg.mean()
        else:
            b = bid_px[0] if bid_px else 0
            a = ask_px[0] if ask_px else 0
            spread = mid2 = 0
            weighted_mid = queue_imbalance = spread_twa = 0.0
        depth = tuple([_depth_imbalance(view, n) for n in self.depth_ticks]) if has_bbo else (0.0,) * len(
            self.depth_ticks
        )
        imbalances = []
        for window in self.windows:
            window.evict(ts)
            imbalances.append(window.imbalance())
        vwap = self.notional / self.volume if self.volume else 0.0
        vwap_dev = mid2 / 2 - vwap if (has_bbo and self.volume) else 0.0
        vector = FeatureVector(
            self.instrument_id,
            ts,
            view.seq,
            view.state,
            has_bbo,
            self.volume > 0,
            b,
            a,
            spread,
            spread_twa,
            mid2,
            weighted_mid,
            queue_imbalance,
            depth,
            vwap,
            vwap_dev,
            tuple(imbalances),
            self.cvd,
        )
        self.last = vector
        return vector


def _depth_imbalance(view: BookView, ticks: int) -> float:
    """F3: (D_bid - D_ask) / (D_bid + D_ask) over the levels within ``ticks`` of each best."""
    lo = view.bid_px[0] - ticks
    d_bid = 0
    for price, size in zip(view.bid_px, view.bid_sz, strict=True):
        if price <= lo:
            break
        d_bid += size
    hi = view.ask_px[0] + ticks
    d_ask = 0
    for price, size in zip(view.ask_px, view.ask_sz, strict=True):
        if price >= hi:
            break
        d_ask += size
    total = d_bid + d_ask
    return (d_bid - d_ask) / total if total else 0.0
