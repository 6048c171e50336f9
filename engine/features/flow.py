"""Trade flow, per event (SPEC F8 CVD and trade imbalance, F9 VWAP, the counters of F11 and F12).

``TradeFlow`` adds each trade to cumulative counters (volume by aggressor, notional, CVD, fills,
aggressive orders) and to the trade-imbalance windows; a sample reads them. Cumulative values are
what the bar features difference between bar closes, so every per-bar figure is exact.

- An *aggressive order* is the fills sharing a ``match_id`` (or, without one, the same ``ts_event``
  and sign): counted once, at its first fill.
- Hidden executions (``Trade.hidden``) count like any trade: their aggressor is known.
- VWAP (F9) is session-anchored: ``sum(p v) / sum(v)`` with ``sigma_VWAP = sqrt(sum v (p - VWAP)^2 /
  sum v)`` from the running sums of ``v``, ``p v`` and ``p^2 v`` (exact integers, so no drift).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from engine.events import Trade
from engine.features.listener import Accumulator

NS = 1_000_000_000


class TradeWindow:
    """Signed and total traded volume over the last ``window_ns`` of event time (O(1) amortised)."""

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

    def imbalance(self, now: int) -> float:
        """``sum(sign * size) / sum(size)`` over ``(now - window, now]``; 0 without trades."""
        cutoff = now - self.window_ns
        items = self.items
        while items and items[0][0] <= cutoff:
            _, signed, size = items.popleft()
            self.signed -= signed
            self.total -= size
        return self.signed / self.total if self.total else 0.0


class TradeFlow(Accumulator):
    """Cumulative trade counters, session VWAP and trade imbalance windows of one instrument."""

    def __init__(self, windows_s: tuple[float, ...] = (5.0, 30.0)) -> None:
        self.windows = [(f"trade_imbalance_{w:g}s", TradeWindow(int(w * NS))) for w in windows_s]
        self.volume = self.buy_volume = self.sell_volume = 0
        self.notional = 0  # sum(p v), ticks * lots
        self.notional2 = 0  # sum(p^2 v)
        self.cvd = 0
        self.fills = 0
        self.orders = 0
        self.last_price = 0
        self.last_match: tuple[int, int] = (-1, 0)

    def handlers(self) -> dict[type, Callable]:
        return {Trade: self.on_trade}

    def on_trade(self, trade: Trade) -> None:
        size, price, sign = trade.size, trade.price, trade.aggressor
        self.volume += size
        if sign > 0:
            self.buy_volume += size
        elif sign < 0:
            self.sell_volume += size
        signed = sign * size
        self.cvd += signed
        self.notional += price * size
        self.notional2 += price * price * size
        self.fills += 1
        self.last_price = price
        match = (trade.match_id, sign) if trade.match_id else (trade.ts_event, sign)
        if match != self.last_match:
            self.orders += 1
            self.last_match = match
        for _, window in self.windows:
            window.add(trade.ts_recv, signed, size)

    def vwap(self) -> tuple[float, float]:
        """Session VWAP and sigma_VWAP in ticks (0, 0 before the first trade)."""
        v = self.volume
        if not v:
            return 0.0, 0.0
        mean = self.notional / v
        return mean, math.sqrt(max(self.notional2 / v - mean * mean, 0.0))

    def values(self, ts: int) -> dict[str, float]:
        vwap, sigma = self.vwap()
        out = {
            "volume": float(self.volume), "buy_volume": float(self.buy_volume), "sell_volume": float(self.sell_volume),
            "cvd": float(self.cvd), "notional": float(self.notional), "fills": float(self.fills),
            "orders": float(self.orders), "last_price": float(self.last_price), "vwap": vwap, "vwap_sigma": sigma,
        }
        for name, window in self.windows:
            out[name] = window.imbalance(ts)
        return out
