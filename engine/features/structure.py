"""Price structure: swing highs and lows on TF2 bars (SPEC F25) and the session's extremes (the
structural levels of SPEC 4.4), as a per-trade accumulator.

Bars are the trade prices of each TF2 bar (10 s): high and low of the trades in it, hidden
executions included; a bar without trades is flat at the last trade price (no bar before the first
trade). 3-bar fractal: the middle of three consecutive bars is a swing high when its high is above
the previous bar's and not below the next one's (``H1 > H0 and H1 >= H2``: a plateau gives one swing,
at its first bar), a swing low mirrored; it is known when the third bar closes. The last K = 5 swings
per side are kept (references for sweeps, structure stops and targets).

Values (ticks; ``*_dist = level - mid``, 0 when there is no level or no usable mid):
``swing_high_{k}`` / ``swing_low_{k}`` for k = 1..K (1 = most recent; 0 when fewer are known) with
``*_age_s`` (seconds from the end of the swing's bar to the sample), ``swing_high_dist``,
``swing_low_dist`` (of the most recent), ``swing_high_count``, ``swing_low_count``,
``session_high``, ``session_low`` (trade prices since the session started) with their ``_dist``,
and ``prior_day_high`` / ``prior_day_low``: 0 until multi-day replay exists. ``swings()`` returns
the kept swings as immutable records. Per trade O(1); per TF2 close O(1); per sample O(K).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import msgspec

from engine.book import OrderBook
from engine.config.features import StructureParams
from engine.events import Trade
from engine.features.bars import NS
from engine.features.listener import Accumulator
from engine.features.series import BoundaryTrigger


class Swing(msgspec.Struct, frozen=True, gc=False):
    """A confirmed swing: ``side`` +1 high / -1 low, its price (ticks), the end of its bar and the
    time it was confirmed (the close of the next bar), ns."""

    side: int
    price: int
    ts_bar: int
    ts_confirmed: int


class SwingStructure(Accumulator):
    """F25 and the session extremes for one instrument (needs its book for the mid)."""

    def __init__(self, book: OrderBook, params: StructureParams | None = None) -> None:
        p = self.params = params or StructureParams()
        self.book = book
        self.trigger = BoundaryTrigger(p.bar_s * NS)
        self.high: int | None = None  # the open bar's extremes
        self.low: int | None = None
        self.last_price: int | None = None
        self.session_high: int | None = None
        self.session_low: int | None = None
        self.bars: deque[tuple[int, int, int]] = deque(maxlen=3)  # (high, low, end ts)
        self.highs: deque[Swing] = deque(maxlen=p.swings_kept)
        self.lows: deque[Swing] = deque(maxlen=p.swings_kept)
        self.sides = [(kept, tuple((f"{name}_{k}", f"{name}_{k}_age_s") for k in range(1, p.swings_kept + 1)),
                       f"{name}_dist", f"{name}_count") for name, kept in (("swing_high", self.highs),
                                                                             ("swing_low", self.lows))]
        self.out: dict[str, float] = {"prior_day_high": 0.0, "prior_day_low": 0.0}

    def handlers(self) -> dict[type, Callable]:
        return {Trade: self.on_trade}

    def on_trade(self, trade: Trade) -> None:
        price = trade.price
        self.last_price = price
        if self.high is None or price > self.high:
            self.high = price
        if self.low is None or price < self.low:
            self.low = price
        if self.session_high is None or price > self.session_high:
            self.session_high = price
        if self.session_low is None or price < self.session_low:
            self.session_low = price

    def _close_bar(self, ts: int) -> None:
        if self.high is None or self.low is None:
            if self.last_price is None:
                return
            self.high = self.low = self.last_price
        bars = self.bars
        bars.append((self.high, self.low, ts))
        self.high = self.low = None
        if len(bars) < 3:
            return
        (h0, l0, _), (h1, l1, t1), (h2, l2, _) = bars
        if h1 > h0 and h1 >= h2:
            self.highs.append(Swing(1, h1, t1, ts))
        if l1 < l0 and l1 <= l2:
            self.lows.append(Swing(-1, l1, t1, ts))

    def swings(self) -> tuple[tuple[Swing, ...], tuple[Swing, ...]]:
        """(swing highs, swing lows), most recent first."""
        return tuple(reversed(self.highs)), tuple(reversed(self.lows))

    def structures(self, ts: int) -> dict[str, object]:
        """``swing_highs`` and ``swing_lows``: the last K confirmed swings of each side, most recent first."""
        highs, lows = self.swings()
        return {"swing_highs": highs, "swing_lows": lows}

    def values(self, ts: int) -> dict[str, float]:
        if self.trigger.crossed(ts):
            self._close_bar(ts)
        book = self.book
        bid, ask = book.best_bid, book.best_ask
        mid = (bid + ask) / 2 if bid is not None and ask is not None and bid < ask else None
        out = self.out
        for kept, names, dist, count in self.sides:
            k = len(kept)
            for (price, age), swing in zip(names, reversed(kept), strict=False):  # most recent first
                out[price], out[age] = float(swing.price), (ts - swing.ts_bar) / NS
            for price, age in names[k:]:
                out[price] = out[age] = 0.0
            out[dist] = kept[-1].price - mid if k and mid is not None else 0.0
            out[count] = float(k)
        for name, dist, level in (("session_high", "session_high_dist", self.session_high),
                                  ("session_low", "session_low_dist", self.session_low)):
            out[name] = float(level) if level is not None else 0.0
            out[dist] = level - mid if level is not None and mid is not None else 0.0
        return out
