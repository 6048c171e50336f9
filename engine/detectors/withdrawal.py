"""Quote withdrawal ahead of aggressive flow: the touch is pulled, then the market trades through it.

The idea (issue 14, market-maker behaviour): liquidity providers who expect aggressive flow cancel
their quotes at the touch first; a burst of cancellations that empties the best and the level
behind it, followed shortly by aggressive orders in the direction through that side, is the
footprint.

Definition. ``w`` is the bin (``context.bin_ticks``); the *touch* of side X is the ``touch_bins``
(2) bins from X's best (``touch_bins * w`` ticks: the best and best + 1 on a large-tick book).
- A *touch cancel* is a cancellation or delete on X at a price within the touch, measured against
  X's best after the event (so a cancel that empties the best level counts, and as the best
  retreats, cancels at the new touch keep counting: a pull that walks several levels is one burst).
  On L2 feeds, a level's size decrease counts as a cancel for the part not explained by a trade
  printed at that price within ``l2_trade_ms`` (the detector shadows the L2 sizes to know the size
  before each delta).
- Touch cancels of X within ``cancel_window_ms`` (200 ms) of the first form a *cluster*. A cluster
  becomes a *withdrawal burst* when (a) its lots reach the auto threshold ``T = mean + k * std``
  (k = 3) of the cluster sizes of both sides over the last ``baseline_s`` (30 min; trusted after
  ``min_clusters`` clusters, ``fallback_lots`` before, 0 = silent), (b) they reach ``min_share``
  (100 %) of the depth the touch held just before the first cancel (the touch was cancelled, not
  thinned), and (c) X's best has moved away by at least ``min_retreat_bins`` (2) bins since then
  (the best and best + 1 are gone).
- The detection is emitted by the aggressive trade (aggressor ``-X``: buying through withdrawn
  asks, selling through withdrawn bids; hidden executions included) that brings the aggressive
  volume since the burst to ``min_flow_lots`` (1), if it comes within ``follow_ms`` (2 s) of the
  burst's last cancel: causal, at the moment the flow arrives. One detection per burst; a burst
  not followed in time is forgotten.

Evidence (``WithdrawalDetection``): ``cancelled`` (lots in the burst), ``cancels`` (events),
``depth_before`` (touch depth before it), ``cancel_window_ms`` (first to last cancel of the burst),
``lead_ms`` (last cancel of the burst to the first aggressive trade), ``aggressive_volume`` (lots
traded aggressively through X since the burst, up to the detection), ``threshold`` (T).
``side`` = X (the side withdrawn), ``price_lo``/``price_hi`` the cancelled prices, ``t_start`` the
burst's first cancel, ``strength = cancelled / T``.

Choices where the brief gave examples, measured on the simulator (TSLA, large-tick): (1) the flow
window is 2 s, not 1 s: in the vacuum preset the market makers' pull is followed by the first
buyer after 0.25-1.6 s (median 0.78 s), so 1 s found 12 of 20 seeds and 2 s all 20; on spoof_pull,
whose pull has no planted buying, ordinary buyers arrive within 2 s in 10 of 20 seeds (6 within 1 s; the
simulator's background flow; those are withdrawals followed by flow all the same). (2) Conditions
(b) and (c): in four 30-minute background sessions, ``T`` with a 50 % share alone gave 306
detections (single large orders cancelled at a thin touch); adding the retreat gave 23, the whole
touch and the retreat 18 (3 on planted vacuums; most others are quotes pulled as the latent price
moves away, the simulator's stale-quote cancels, which is the behaviour itself).

Per event O(1): one best-price lookup for a cancel (a depth query when a cluster starts), a few
comparisons for a trade. The cluster baseline (``engine/detectors/sizes.py``) rolls at TF2 closes;
T is recomputed at TF1 closes.
"""

from __future__ import annotations

from engine.book import UNUSABLE
from engine.config.detectors import WithdrawalParams
from engine.detectors.base import Detector, DetectorContext
from engine.detectors.sizes import RollingSizes
from engine.events import (
    BUY,
    CLEAR,
    DELETE,
    NO_SIDE,
    SELL,
    BookDelta,
    BookSnapshot,
    Detection,
    OrderCancel,
    OrderDelete,
    Trade,
)
from engine.features.bars import TF2

MS = 1_000_000


class WithdrawalDetection(Detection, frozen=True):
    """Touch liquidity cancelled in a burst, then traded through by aggressive flow."""

    cancelled: int
    cancels: int
    depth_before: int
    cancel_window_ms: float
    lead_ms: float
    aggressive_volume: int
    threshold: float


class _Cluster:
    """Touch cancels of one side close together in time; armed once it is a burst."""

    __slots__ = ("start", "last", "lots", "cancels", "lo", "hi", "depth", "best", "retreat", "burst", "flow",
                 "lead")

    def __init__(self, ts: int, price: int, lots: int, depth: int, best: int) -> None:
        self.start = self.last = ts
        self.lots, self.cancels, self.lo, self.hi, self.depth = lots, 1, price, price, depth
        self.best = best  # the side's best before the first cancel
        self.retreat = 0  # ticks the best has moved away since
        self.burst = False
        self.flow = 0
        self.lead = 0  # last cancel to the first aggressive trade, ns

    def add(self, ts: int, price: int, lots: int) -> None:
        self.last = ts
        self.lots += lots
        self.cancels += 1
        self.lo = min(self.lo, price)
        self.hi = max(self.hi, price)


class WithdrawalDetector(Detector):
    """Bursts of cancels at the touch followed by aggressive flow through it (module docstring)."""

    name = "quote_withdrawal"

    def __init__(self, context: DetectorContext, params: WithdrawalParams | None = None) -> None:
        super().__init__(context)
        self.params = p = params or WithdrawalParams()
        self.w = max(1, context.bin_ticks)
        self.touch = p.touch_bins * self.w
        self.clusters: dict[int, _Cluster | None] = {BUY: None, SELL: None}  # the latest cluster per side
        self.armed: dict[int, _Cluster | None] = {BUY: None, SELL: None}  # a burst waiting for the flow
        self.sizes = RollingSizes(max(1, p.baseline_s // 10))  # one histogram per TF2 bar (10 s)
        self.threshold = float(p.fallback_lots)  # T (0: not known yet)
        self.l2_sizes: dict[tuple[int, int], int] = {}  # L2 only: level sizes before each delta
        self.l2_trades: dict[int, tuple[int, int]] = {}  # L2 only: price -> (ts, lots) of recent trades

    def handlers(self) -> dict:
        return {OrderDelete: self.on_delete, OrderCancel: self.on_cancel, Trade: self.on_trade,
                BookDelta: self.on_delta, BookSnapshot: self.on_snapshot}

    # ---- cancels --------------------------------------------------------------------------------
    def on_delete(self, ev: OrderDelete) -> None:
        if ev.size > 0:
            self.cancelled(ev.side, ev.price, ev.size, ev.ts_recv)

    def on_cancel(self, ev: OrderCancel) -> None:
        if ev.size_cancelled > 0:
            self.cancelled(ev.side, ev.price, ev.size_cancelled, ev.ts_recv)

    def cancelled(self, side: int, price: int, lots: int, ts: int) -> None:
        """``lots`` cancelled on ``side`` at ``price`` (the book has applied it)."""
        best = self.book.best_bid if side == BUY else self.book.best_ask
        behind = (best - price) * side if best is not None else -1  # < 0: the cancel removed the best
        if behind >= self.touch:
            return  # behind the touch
        cluster = self.clusters[side]
        p = self.params
        if cluster is None or ts - cluster.start > p.cancel_window_ms * MS:
            if cluster is not None:
                self.sizes.add(cluster.lots)
            cluster = self.clusters[side] = _Cluster(ts, price, lots, lots + self._touch_left(side, price, best),
                                                     price if best is None or behind < 0 else best)
        else:
            cluster.add(ts, price, lots)
        cluster.retreat = (cluster.best - best) * side if best is not None else self.touch
        if not cluster.burst and self.threshold > 0 and cluster.lots >= self.threshold \
                and cluster.lots >= p.min_share * cluster.depth and cluster.retreat >= p.min_retreat_bins * self.w:
            cluster.burst = True
            self.armed[side] = cluster

    def _touch_left(self, side: int, price: int, best: int | None) -> int:
        """Lots still resting in the touch as it was before a cancel at ``price`` (the best then, if the
        cancel emptied it, else the best now)."""
        if best is None:
            return 0
        gone = (price - best) * side  # > 0: the cancel removed the best level; the touch started at price
        reach = self.touch - gone if gone > 0 else self.touch
        return self.book.depth_within(side, reach) if reach > 0 else 0

    # ---- flow -----------------------------------------------------------------------------------
    def on_trade(self, ev: Trade) -> None:
        if self.l2_sizes:
            self.l2_trades[ev.price] = (ev.ts_recv, ev.size)
        if ev.aggressor == NO_SIDE:
            return
        side = -ev.aggressor
        burst = self.armed[side]
        if burst is None:
            return
        ts = ev.ts_recv
        if ts - burst.last > self.params.follow_ms * MS:
            self.armed[side] = None  # not followed in time
            return
        if not burst.flow:
            burst.lead = ts - burst.last
        burst.flow += ev.size
        if burst.flow >= self.params.min_flow_lots:
            self.armed[side] = None
            if not self.book.state & UNUSABLE:
                self._emit(side, burst, ev)

    def _emit(self, side: int, cluster: _Cluster, ev: Trade) -> None:
        self.emit(WithdrawalDetection(
            instrument_id=ev.instrument_id, ts_recv=ev.ts_recv, seq=ev.seq, side=side, price_lo=cluster.lo,
            price_hi=cluster.hi, strength=cluster.lots / self.threshold, t_start=cluster.start,
            cancelled=cluster.lots, cancels=cluster.cancels, depth_before=cluster.depth,
            cancel_window_ms=(cluster.last - cluster.start) / MS, lead_ms=cluster.lead / MS,
            aggressive_volume=cluster.flow, threshold=self.threshold))

    # ---- L2 -------------------------------------------------------------------------------------
    def on_delta(self, ev: BookDelta) -> None:
        if ev.action == CLEAR:
            self.l2_sizes.clear()
            return
        key = (ev.side, ev.price)
        before = self.l2_sizes.get(key, 0)
        after = 0 if ev.action == DELETE else max(ev.size, 0)
        if after:
            self.l2_sizes[key] = after
        else:
            self.l2_sizes.pop(key, None)
        drop = before - after
        if drop <= 0:
            return
        traded = self.l2_trades.pop(ev.price, None)
        if traded is not None and ev.ts_recv - traded[0] <= self.params.l2_trade_ms * MS:
            drop -= traded[1]
        if drop > 0:
            self.cancelled(ev.side, ev.price, drop, ev.ts_recv)

    def on_snapshot(self, ev: BookSnapshot) -> None:
        self.l2_sizes = {(side, price): size for side, levels in ((BUY, ev.bids), (SELL, ev.asks))
                         for price, size, _count in levels if size > 0}
        self.l2_trades.clear()
        self.clusters = {BUY: None, SELL: None}
        self.armed = {BUY: None, SELL: None}

    # ---- closes ---------------------------------------------------------------------------------
    def on_bar(self, ts: int, frames: int) -> None:
        p = self.params
        for side in (BUY, SELL):
            cluster = self.clusters[side]
            if cluster is not None and ts - cluster.start > p.cancel_window_ms * MS:
                self.sizes.add(cluster.lots)  # the cluster is over: it joins the baseline
                self.clusters[side] = None
            burst = self.armed[side]
            if burst is not None and ts - burst.last > p.follow_ms * MS:
                self.armed[side] = None
        if frames & TF2:
            self.sizes.roll()
        if self.sizes.count >= p.min_clusters:
            self.threshold = max(1.0, self.sizes.mean() + p.k * self.sizes.std())
        if self.l2_trades:
            oldest = ts - p.l2_trade_ms * MS
            self.l2_trades = {price: t for price, t in self.l2_trades.items() if t[0] >= oldest}
