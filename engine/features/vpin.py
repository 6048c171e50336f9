"""VPIN, volume-synchronised probability of informed trading (SPEC F15; Easley, Lopez de Prado and
O'Hara, RFS 2012), as a per-trade accumulator.

Trades fill volume buckets in arrival order; a trade larger than what is left of the open bucket is
split exactly: the bucket is completed, whole buckets are filled next and the rest opens a new one.
Per bucket ``OI = |V_buy - V_sell|`` with the aggressor's side (hidden executions included: their
aggressor is known), and ``VPIN = sum OI / sum V_B`` over the last n = 50 complete buckets (``sum
V_B = n V_B`` when the buckets have one size). Trades without an aggressor side are split at the
bucket's close by bulk volume classification, ``V_buy = V Phi(dP / sigma_dP)`` with ``dP`` the
bucket's close-to-close trade price change and ``sigma_dP`` the standard deviation of that change
over the last n buckets before it (an even split until two buckets are known).

Bucket size ``V_B = (mean daily volume) / 50``. The daily volume is configured (``daily_volume``) or,
when it is 0 (the default), estimated causally: each bucket's size is fixed when it opens, from the
volume traded so far over the time since the first trade (at least ``min_elapsed_s``), extrapolated
to a trading day of ``session_s`` seconds, and floored at ``min_bucket_lots``. Buckets therefore
differ in size early in a day; the sum of their sizes is the denominator. ``vpin_ready`` once n
buckets are complete (before that VPIN is over the complete buckets so far).

With n = 50 buckets of a fiftieth of a day's volume, VPIN spans about one day of volume: on the
first day of a replay it is ready only near the close (on the AMZN sample after ~23,000 s).

Values: ``vpin``, ``vpin_ready``, ``vpin_buckets`` (complete buckets so far), ``vpin_bucket_volume``
(size of the open bucket). Per trade O(1) amortised (a trade spanning k buckets costs O(k)).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from engine.config.features import VpinParams
from engine.events import Trade
from engine.features.baseline import RollingBaseline
from engine.features.listener import Accumulator

NS = 1_000_000_000


class Vpin(Accumulator):
    """F15 over the trades of one instrument."""

    def __init__(self, params: VpinParams | None = None) -> None:
        p = self.params = params or VpinParams()
        self.volume = 0
        self.first_ts: int | None = None
        self.size = 0  # V_B of the open bucket (0: none open)
        self.filled = 0
        self.buy = 0
        self.sell = 0
        self.unsided = 0
        self.last_price = 0
        self.close_price: int | None = None  # last trade price of the previous bucket
        self.closed: deque[tuple[float, int]] = deque()  # (OI, V_B) of the last n buckets
        self.imbalance = 0.0
        self.capacity = 0
        self.count = 0
        self.moves = RollingBaseline(p.buckets, 2, 1e-12)  # bucket price changes, for BVC
        self.out: dict[str, float] = {}

    def handlers(self) -> dict[type, Callable]:
        return {Trade: self.on_trade}

    def on_trade(self, trade: Trade) -> None:
        remaining, sign = trade.size, trade.aggressor
        if self.first_ts is None:
            self.first_ts = trade.ts_recv
        self.last_price = trade.price
        while remaining > 0:
            if not self.size:
                self.size = self.bucket_size(trade.ts_recv)
            take = min(remaining, self.size - self.filled)
            if sign > 0:
                self.buy += take
            elif sign < 0:
                self.sell += take
            else:
                self.unsided += take
            self.filled += take
            remaining -= take
            self.volume += take
            if self.filled == self.size:
                self._close()

    def bucket_size(self, ts: int) -> int:
        """V_B for a bucket opening at ``ts``: configured, or the causal estimate."""
        p = self.params
        if p.daily_volume:
            return max(1, round(p.daily_volume / p.buckets_per_day))
        assert self.first_ts is not None
        elapsed = max((ts - self.first_ts) / NS, p.min_elapsed_s)
        estimate = self.volume / elapsed * p.session_s / p.buckets_per_day
        return max(p.min_bucket_lots, round(estimate))

    def _close(self) -> None:
        buy, sell = float(self.buy), float(self.sell)
        if self.unsided:
            share = 0.5
            if self.close_price is not None:
                move = self.last_price - self.close_price
                if self.moves.ready and self.moves.std() > 0:
                    share = 0.5 * math.erfc(-move / self.moves.std() / math.sqrt(2))
                self.moves.add(move)
            buy += self.unsided * share
            sell += self.unsided * (1 - share)
        elif self.close_price is not None:
            self.moves.add(self.last_price - self.close_price)
        self.close_price = self.last_price
        imbalance = abs(buy - sell)
        closed = self.closed
        closed.append((imbalance, self.size))
        self.imbalance += imbalance
        self.capacity += self.size
        if len(closed) > self.params.buckets:
            old_imbalance, old_size = closed.popleft()
            self.imbalance -= old_imbalance
            self.capacity -= old_size
        self.count += 1
        self.size = self.filled = self.buy = self.sell = self.unsided = 0
        if self.count % 4096 == 0:  # float sums: recompute now and then
            self.imbalance = math.fsum(i for i, _ in closed)

    def values(self, ts: int) -> dict[str, float]:
        out = self.out
        out["vpin"] = self.imbalance / self.capacity if self.capacity else 0.0
        out["vpin_ready"] = 1.0 if len(self.closed) >= self.params.buckets else 0.0
        out["vpin_buckets"] = float(self.count)
        out["vpin_bucket_volume"] = float(self.size)
        return out
