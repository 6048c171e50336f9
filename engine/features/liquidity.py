"""Book shape and liquidity cost (SPEC F16, F17): a per-trade accumulator for what needs the trades
(``LiquidityFlow``: median order size, effective spread, sweeps, resiliency) and a per-sample feature
for what the book view shows (``BookSlope``: slopes, asymmetry, cost of taking Q lots).

``LiquidityFlow`` (market stage, per event):
- aggressive orders are the fills sharing a match_id (or, without one, the same ts_event and sign),
  as ``TradeFlow`` counts them (a print without an aggressor side belongs to no order here);
  ``median_trade_size``: the median size of the aggressive orders of the last 30 min (the Q unit of
  the cost), refreshed at TF2 closes (an order joins once the next one starts, i.e. once it is known
  to be complete);
- ``effective_spread = 2 eps (vwap_order - m)`` in ticks for the last aggressive order, ``m`` the mid
  before its first fill. The book may show the state after that fill (LOBSTER applies the execution
  first), so ``m`` is rebuilt: for a visible fill at p the touched side's best was p (a fill sells
  into the best bid, buys from the best ask), the other side is unchanged; a hidden execution leaves
  the book unchanged;
- a *sweep* is an aggressive order that walked >= 2 levels, i.e. whose visible fills are at >= 2
  distinct prices (a hidden execution shows no level being walked: LOBSTER prints hidden fills
  inside the spread beside visible ones at the same instant); ``sweeps`` counts them and
  ``sweep_share`` is their share of the aggressive orders with a visible fill;
- resiliency: after a sweep, the time until the spread is back to its 30-min median (the median of
  the spreads at the TF2 closes of the last 30 min), checked after every LAST event:
  ``resiliency_s`` for the last completed recovery, and ``resiliency_half_s``, the time until the
  spread's excess over the median first halved (its "half-life"); a new sweep restarts the clock; no
  clock runs before the median exists. ``resiliency_ready`` once one recovery completed.

``BookSlope`` (feature stage, per sample, from the view's top levels):
- F16: cumulative depth ``C(k)`` within k bins of ``w`` ticks of the best (w = ``bin_ticks``, 1 on a
  large-tick instrument), k = 1..N = 10, slope through the origin ``S = sum k C(k) / sum k^2`` divided
  by w (lots per tick), per side; ``book_asymmetry = (S_b - S_a) / (S_b + S_a)`` (0 unless both > 0).
  The view holds the top 10 levels: levels beyond it (possible when w > 1) are not counted;
- F17: ``cost_{m}x_buy`` / ``_sell``: ticks paid against the mid per lot to take Q = m x the median
  order size (m = 1, 5) by walking the visible book; when Q exceeds the levels in the view, the rest
  is priced at the last visible level (a lower bound of the true cost) and ``cost_{m}x_{side}_covered``
  (the share of Q the view covers) says so. Costs are 0 with ``cost_ready`` 0 while the book is not
  usable (one-sided, crossed, stale) or no order size is known.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.book import OrderBook
from engine.config.features import BookSlopeParams, LiquidityFlowParams
from engine.events import Trade
from engine.features.bars import NS
from engine.features.listener import Accumulator
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature
from engine.features.series import BoundaryTrigger, RollingMedian, usable_mid2

TF2_NS = 10 * NS


class LiquidityFlow(Accumulator):
    """The trade-driven part of F17 for one instrument (needs its book)."""

    def __init__(self, book: OrderBook, params: LiquidityFlowParams | None = None) -> None:
        p = self.params = params or LiquidityFlowParams()
        self.book = book
        window = int(p.median_window_s * NS)
        self.sizes = RollingMedian(window)
        self.spreads = RollingMedian(window)
        self.refresh = BoundaryTrigger(TF2_NS)
        self.key: tuple[int, int] | None = None
        self.order_ts = 0
        self.order_size = 0
        self.order_notional = 0
        self.order_prices: set[int] = set()
        self.order_mid2: int | None = None
        self.sweeps = 0
        self.visible_orders = 0  # aggressive orders with at least one visible fill
        self.since: int | None = None  # time of the sweep whose recovery is pending
        self.excess0: float | None = None
        self.half_done = False
        self.out = {"effective_spread": 0.0, "median_trade_size": 0.0, "spread_median": 0.0, "sweeps": 0.0,
                    "sweep_share": 0.0, "resiliency_s": 0.0, "resiliency_half_s": 0.0, "resiliency_ready": 0.0}
        self.median_spread: float | None = None

    def handlers(self) -> dict[type, Callable]:
        return {Trade: self.on_trade}

    def on_trade(self, trade: Trade) -> None:
        sign = trade.aggressor
        if not sign:
            return
        key = (trade.match_id, sign) if trade.match_id else (trade.ts_event, sign)
        price, size = trade.price, trade.size
        if key != self.key:
            self._finish_order()
            self.key = key
            self.order_ts = trade.ts_recv
            self.order_size = self.order_notional = 0
            self.order_prices = set()
            self.order_mid2 = self._mid2_before(sign, price, trade.hidden)
        self.order_size += size
        self.order_notional += price * size
        prices = self.order_prices
        if not trade.hidden and price not in prices:
            if not prices:
                self.visible_orders += 1
                self.out["sweep_share"] = self.sweeps / self.visible_orders
            prices.add(price)
            if len(prices) == self.params.sweep_levels:
                self._on_sweep(trade.ts_recv)
        if self.order_mid2 is not None:
            vwap = self.order_notional / self.order_size
            self.out["effective_spread"] = sign * (2 * vwap - self.order_mid2)

    def _mid2_before(self, sign: int, price: int, hidden: bool) -> int | None:
        book = self.book
        bid, ask = book.best_bid, book.best_ask
        if not hidden:
            if sign < 0:
                bid = price if bid is None else max(bid, price)
            else:
                ask = price if ask is None else min(ask, price)
        if bid is None or ask is None or bid >= ask:
            return None
        return bid + ask

    def _finish_order(self) -> None:
        if self.key is not None and self.order_size:
            self.sizes.add(self.order_ts, self.order_size)

    def _on_sweep(self, ts: int) -> None:
        self.sweeps += 1
        self.out["sweeps"] = float(self.sweeps)
        self.out["sweep_share"] = self.sweeps / self.visible_orders
        if self.median_spread is not None:
            self.since, self.excess0, self.half_done = ts, None, False

    def on_last(self, ts: int) -> None:
        if self.since is None:
            return
        book = self.book
        bid, ask = book.best_bid, book.best_ask
        if bid is None or ask is None:
            return
        assert self.median_spread is not None
        excess = ask - bid - self.median_spread
        if self.excess0 is None:
            self.excess0 = excess
        elapsed = (ts - self.since) / NS
        if not self.half_done and excess <= self.excess0 / 2:
            self.half_done = True
            self.out["resiliency_half_s"] = elapsed
        if excess <= 0:
            self.out["resiliency_s"] = elapsed
            self.out["resiliency_ready"] = 1.0
            self.since = None

    def values(self, ts: int) -> dict[str, float]:
        if self.refresh.crossed(ts):
            self._on_tf2(ts)
        return self.out

    def _on_tf2(self, ts: int) -> None:
        book = self.book
        bid, ask = book.best_bid, book.best_ask
        if bid is not None and ask is not None and bid < ask:
            self.spreads.add(ts, ask - bid)
        self.median_spread = self.spreads.median(ts)
        self.out["spread_median"] = float(self.median_spread or 0.0)
        median = self.sizes.median(ts)
        self.out["median_trade_size"] = float(median or 0.0)


class BookSlope(SampleFeature):
    """F16 and the cost of F17 over the samples of one instrument (reads ``median_trade_size``)."""

    def __init__(self, params: BookSlopeParams | None = None) -> None:
        p = self.params = params or BookSlopeParams()
        n = p.slope_bins
        self.triangle = n * (n + 1) // 2
        self.squares = n * (n + 1) * (2 * n + 1) // 6
        self.multiples = sorted(set(p.cost_multiples))
        self.names = [(f"cost_{m}x_buy", f"cost_{m}x_sell", f"cost_{m}x_buy_covered", f"cost_{m}x_sell_covered")
                      for m in self.multiples]
        self.out: dict[str, float] = {"book_slope_bid": 0.0, "book_slope_ask": 0.0, "book_asymmetry": 0.0,
                                      "cost_ready": 0.0}
        self.seen: tuple = ()
        for names in self.names:
            self.out.update(dict.fromkeys(names, 0.0))

    def on_sample(self, sample: Sample) -> None:
        view, out = sample.view, self.out
        mid2 = usable_mid2(view)
        unit = sample.flow.get("median_trade_size", 0.0)
        ready = mid2 is not None and unit > 0
        quantities = [m * unit for m in self.multiples] if ready else []
        key = (view.bid_px, view.bid_sz, view.ask_px, view.ask_sz, view.state, quantities)
        if key == self.seen:
            return  # the same book and order size as at the previous sample (a quiet second)
        self.seen = key
        bid, sells = self.side(view.bid_px, view.bid_sz, -1, quantities)
        ask, buys = self.side(view.ask_px, view.ask_sz, 1, quantities)
        out["book_slope_bid"], out["book_slope_ask"] = bid, ask
        out["book_asymmetry"] = (bid - ask) / (bid + ask) if bid > 0 and ask > 0 else 0.0
        out["cost_ready"] = 1.0 if ready else 0.0
        if not ready:
            for names in self.names:
                for name in names:
                    out[name] = 0.0
            return
        assert mid2 is not None
        mid = mid2 / 2
        for (buy, sell, buy_covered, sell_covered), (ask_price, ask_share), (bid_price, bid_share) in zip(
                self.names, buys, sells, strict=True):
            out[buy], out[buy_covered] = ask_price - mid, ask_share
            out[sell], out[sell_covered] = mid - bid_price, bid_share

    def side(self, prices: tuple[int, ...], sizes: tuple[int, ...], direction: int,
             quantities: list[float]) -> tuple[float, list[tuple[float, float]]]:
        """One side of the view (best first; ``direction`` +1 asks, -1 bids), in one pass: the slope
        ``sum k C(k) / sum k^2 / w``, and per quantity (ascending) the mean price of taking it and the
        share of it the view covers (the rest priced at the last visible level)."""
        if not prices:
            return 0.0, [(0.0, 0.0)] * len(quantities)
        n, width, best, triangle = self.params.slope_bins, self.params.bin_ticks, prices[0], self.triangle
        total = filled = paid = 0
        costs: list[tuple[float, float]] = []
        pending = len(quantities)
        for price, size in zip(prices, sizes, strict=True):
            bins = (price - best) * direction // width  # bins beyond the best's
            if bins < n:
                total += size * (triangle - bins * (bins + 1) // 2)  # the level is in C(k) for k = bins+1..N
            elif not pending:
                break
            while pending and filled + size >= quantities[len(costs)]:
                quantity = quantities[len(costs)]
                costs.append(((paid + (quantity - filled) * price) / quantity, 1.0))
                pending -= 1
            filled += size
            paid += size * price
        last = prices[-1]
        for quantity in quantities[len(costs):]:
            costs.append(((paid + (quantity - filled) * last) / quantity, filled / quantity))
        return total / self.squares / width, costs

    def values(self) -> dict[str, float]:
        """Current values (this feature's own mapping: copy it to keep it past the next sample)."""
        return self.out
