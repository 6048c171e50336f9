"""F18 liquidity void and vacuum: one side of the book thins out near the best, and a vacuum is
that side being pulled away (not eaten) within a couple of seconds.

Idea (SPEC F18, after Bookmap's "air pockets"): per side, over the N ticks (or bins) beyond the
best: ``void = 1 − D_N / median_30min(D_N)``, ``gap_max`` = longest run of empty ticks (or bins).
"Vacuum event (side X): D_N falls by ≥ 50% within Δt ≤ 2 s, cancellations/deletes account for
≥ 70% of the decrease (trades the rest), and D_N / median ≤ 0.4 afterwards." N = 10.

Definition implemented:
- **Zone.** ``bins`` (N) bins of ``context.bin_ticks`` ticks from the best (the best's bin first),
  i.e. prices ``p ≥ b − N·w + 1`` on the bid and ``p ≤ a + N·w − 1`` on the ask; ``D_N`` is the
  displayed size there (``OrderBook.depth_within``) and ``gap_max`` the longest run of empty bins
  in it (an empty far end counts as a run).
- **Median.** A running median of ``D_N`` sampled at TF2 closes over the last ``median_bars``
  samples (180 = 30 min); before ``min_median_bars`` samples there is no median, hence no vacuum
  (fallback: the median of the samples so far, from 3 samples = 30 s on).
- **Classification at the moment it happens (O(1) per event).** A cancel, delete or execution of
  side X counts when its price is in X's zone as it was just before the event (the best before
  the event): cancels and deletes add to X's cumulative *cancelled* volume, executions to its
  *executed* volume. ``D_N`` itself is re-read at the next ``LAST`` only when an event touched the
  zone or moved the best (O(N) then); a decrease that the events do not explain (an ``OrderModify``
  down, an L2 ``BookDelta``) is attributed to trades seen on that side since (L2 feeds: a "trade
  credit", reset every second) and the rest to cancels; a decrease caused by the best moving
  *inward* (the zone shifting) is never attributed. Where the sizes are known (L3 adds, cancels,
  deletes, executions), the best has not moved and the book's anomaly counters (overdrawn, missing
  level, duplicate order) have not changed, ``D_N`` is updated from the sizes instead of re-read;
  it is re-read at least once a second regardless (a test checks both give the same ``D_N`` at
  every ``LAST``; on the AMZN level-5 day this leaves 61 k re-reads of 158 k).
- **The fall.** A monotonic deque keeps the largest ``D_N`` valid at any time in the last
  ``window_ms`` (each value recorded at the start and at the end of its validity) with the
  cumulative counters at that moment. At each ``LAST`` where ``D_N`` fell, with ``peak`` that
  maximum, a vacuum needs ``D_N ≤ (1 − min_drop)·peak``, ``D_N ≤ max_depth_ratio·median``, and
  ``cancel_share ≥ min_cancel_share`` where ``cancel_share = cancelled / max(peak − D_N,
  cancelled + executed)`` over the fall: cancels must explain 70% of the net decrease *and* be 70%
  of what was removed (so a zone that merely shifted, or a fall eaten by trades, does not qualify).
- **Emission** at the first ``LAST`` the conditions hold (a vacuum is latency-critical for S4), so
  ``depth_after`` is the depth at that moment, not the bottom of the fall. The side then stays
  quiet for ``refractory_ms`` (2 s) and its next fall is measured from the depths seen after the
  detection, so one pull done in many steps is one vacuum, and a pull soon after another still is
  one. (A rule "re-arm once D_N is back near its median" missed planted pulls of depth that had not
  recovered from a natural thinning a few seconds earlier.)

Deviations from SPEC: ``cancel_share`` asks for both readings of "cancellations account for ≥ 70%
of the decrease"; the quiet time and the 3-sample median fallback are ours.

Evidence (``VacuumDetection``): ``side`` the side whose liquidity vanished (SELL = asks pulled, the
price can travel up); ``price_lo``/``price_hi`` the zone at the peak; ``depth_before`` (the peak),
``depth_after``, ``cancelled``, ``executed``, ``cancel_share``, ``median_depth``, ``void``
(``1 − depth_after / median``), ``gap_max`` (bins), ``window_ms`` (from the last moment at the
peak); ``strength`` = ``void / (1 − max_depth_ratio)`` (≥ 1); ``t_start`` the last moment at the peak.

``VoidAccumulator`` gives every sample ``void_depth_bid``/``void_depth_ask`` (D_N),
``void_median_bid``/``void_median_ask``, ``void_bid``/``void_ask`` and ``gap_max_bid``/``gap_max_ask``
(0 where undefined: an empty side reads D_N = 0 and gap_max = N).

L2 feeds (``BookDelta`` + ``Trade``): depth decreases are classified at the next ``LAST`` against
recent trades (the trade credit above), which is an approximation of the L3 rule.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque

from engine.book import UNUSABLE, OrderBook
from engine.config.detectors import VacuumParams
from engine.detectors.base import Detector, DetectorContext
from engine.events import (
    BUY,
    CLEAR,
    SELL,
    BookDelta,
    BookSnapshot,
    Detection,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    OrderModify,
    Trade,
)
from engine.features.bars import TF1, TF2
from engine.features.listener import Accumulator

MS = 1_000_000
ADD, CANCEL, EXECUTE, UNKNOWN = 0, 1, 2, 3  # what an event did to the zone (UNKNOWN: a change of unknown size)


class VacuumDetection(Detection, frozen=True, kw_only=True):
    """Liquidity pulled from one side near the best (``side`` is the side pulled: SELL = asks)."""

    depth_before: int
    depth_after: int
    cancelled: int
    executed: int
    cancel_share: float
    median_depth: float
    void: float
    gap_max: int
    window_ms: float


class RunningMedian:
    """Median of the last ``window`` values (a sorted copy kept beside the ring: O(window) per add,
    called at bar closes only)."""

    __slots__ = ("ring", "ordered", "min_count")

    def __init__(self, window: int, min_count: int = 1) -> None:
        self.ring: deque[int] = deque(maxlen=window)
        self.ordered: list[int] = []
        self.min_count = min_count

    def add(self, x: int) -> None:
        ring, ordered = self.ring, self.ordered
        if len(ring) == ring.maxlen:
            del ordered[bisect_left(ordered, ring[0])]
        ring.append(x)
        ordered.insert(bisect_right(ordered, x), x)

    def value(self) -> float | None:
        """The median, or None before ``min_count`` values."""
        ordered = self.ordered
        n = len(ordered)
        if n < self.min_count or n == 0:
            return None
        half = n // 2
        return float(ordered[half]) if n % 2 else (ordered[half - 1] + ordered[half]) / 2


def best_of(book: OrderBook, side: int) -> int | None:
    return book.best_bid if side == BUY else book.best_ask


def gap_max(book: OrderBook, side: int, bins: int, width: int) -> int:
    """Longest run of empty bins among the ``bins`` bins of ``width`` ticks from the best (the best's bin
    first, so it is occupied): one pass over the levels inside those bins (at most ``bins * width``)."""
    if side == BUY:
        prices = book.bid_prices  # ascending: the window is the tail, walked down from the best
        if not prices:
            return bins
        best = prices[-1]
        inside = prices[bisect_left(prices, best - bins * width + 1):]
        inside.reverse()
    else:
        prices = book.ask_prices  # ascending: the window is the head, walked up from the best
        if not prices:
            return bins
        best = prices[0]
        inside = prices[:bisect_left(prices, best + bins * width)]
    longest = previous = 0  # previous: the last occupied bin (the best's is 0)
    for price in inside:
        k = (best - price) // width if side == BUY else (price - best) // width
        if k - previous - 1 > longest:
            longest = k - previous - 1
        previous = k
    return longest if bins - 1 - previous <= longest else bins - 1 - previous


class SideState:
    """One side's bookkeeping for the vacuum detector."""

    __slots__ = ("side", "best", "depth", "dirty", "exact", "inward", "known", "cancelled", "executed", "credit",
                 "peaks", "quiet_until", "median", "mark")

    def __init__(self, side: int, median: RunningMedian) -> None:
        self.side = side
        self.best: int | None = None  # the best as of the last event seen (the best before the next one)
        self.depth = 0  # D_N at the last re-read
        self.dirty = False  # an event touched the zone or moved the best since the last re-read
        self.exact = False  # depth + known is D_N (sizes known, best unmoved, no book anomaly since the re-read)
        self.inward = False  # the best moved inward since the last re-read (the zone shifted)
        self.known = 0  # net change of D_N the events since the last re-read explain
        self.cancelled = 0  # cumulative cancelled/deleted volume within the zone
        self.executed = 0  # cumulative executed volume within the zone
        self.credit = 0  # L2: traded volume not yet seen as a depth decrease
        self.peaks: deque[tuple[int, int, int, int, int | None]] = deque()  # (ts, depth, cancelled, executed, best)
        self.quiet_until = -(1 << 62)  # no vacuum on this side before this time (after one fired)
        self.median = median
        self.mark: tuple[int, int, int | None] = (0, 0, None)  # (cancelled, executed, best) at the last re-read

    def reset(self, book: OrderBook, zone: int) -> None:
        """A snapshot or clear replaced the book: no fall spans it."""
        self.best = best_of(book, self.side)
        self.depth = book.depth_within(self.side, zone)
        self.dirty = self.inward = False
        self.exact = True
        self.known = self.credit = 0
        self.peaks.clear()
        self.mark = (self.cancelled, self.executed, self.best)


class VacuumDetector(Detector):
    """Emits a ``VacuumDetection`` when one side's depth near the best is pulled (SPEC F18)."""

    name = "vacuum"

    def __init__(self, context: DetectorContext, params: VacuumParams | None = None) -> None:
        super().__init__(context)
        p = self.params = params or VacuumParams()
        self.width = context.bin_ticks
        self.zone = p.bins * context.bin_ticks
        self.window = round(p.window_ms * MS)
        self.refractory = round(p.refractory_ms * MS)
        self.bid = SideState(BUY, RunningMedian(p.median_bars, p.min_median_bars))
        self.ask = SideState(SELL, RunningMedian(p.median_bars, p.min_median_bars))
        self.l3 = False  # an L3 event was seen: executions come as OrderExecute, not from trades
        self.anomalies = 0  # the book's overdrawn + missing-level + duplicate-order counts
        self.instrument_id = context.instrument.instrument_id

    def handlers(self) -> dict:
        return {OrderAdd: self.on_add, OrderCancel: self.on_cancel, OrderDelete: self.on_delete,
                OrderExecute: self.on_execute, OrderModify: self.on_modify, BookDelta: self.on_delta,
                BookSnapshot: self.on_snapshot, Trade: self.on_trade}

    # ---- per event: classify at the moment (O(1)) --------------------------------------------------
    def on_add(self, ev: OrderAdd) -> None:
        self.l3 = True
        self._event(ev.side, ev.price, ev.size, ADD)

    def on_cancel(self, ev: OrderCancel) -> None:
        self.l3 = True
        self._event(ev.side, ev.price, ev.size_cancelled, CANCEL)

    def on_delete(self, ev: OrderDelete) -> None:
        self.l3 = True
        self._event(ev.side, ev.price, ev.size, CANCEL)

    def on_execute(self, ev: OrderExecute) -> None:
        self.l3 = True
        self._event(ev.side, ev.price, ev.size, EXECUTE)

    def on_modify(self, ev: OrderModify) -> None:
        st = self.bid if ev.side == BUY else self.ask
        st.dirty, st.exact = True, False  # the order may have left the zone: re-read, reconciled at the LAST
        self._event(ev.side, ev.price, 0, UNKNOWN)

    def on_delta(self, ev: BookDelta) -> None:
        if ev.action == CLEAR:
            self.bid.reset(self.book, self.zone)
            self.ask.reset(self.book, self.zone)
        else:
            self._event(ev.side, ev.price, 0, UNKNOWN)

    def on_snapshot(self, ev: BookSnapshot) -> None:
        self.bid.reset(self.book, self.zone)
        self.ask.reset(self.book, self.zone)

    def on_trade(self, ev: Trade) -> None:
        if self.l3 or ev.hidden or ev.aggressor == 0:
            return
        st = self.ask if ev.aggressor == BUY else self.bid  # the resting side
        if st.best is None or (st.best - ev.price) * st.side < self.zone:
            st.executed += ev.size
            st.credit += ev.size

    def _event(self, side: int, price: int, size: int, kind: int) -> None:
        """An event of ``kind`` (ADD, CANCEL, EXECUTE of ``size`` lots, or UNKNOWN) at ``price`` on ``side``."""
        st = self.bid if side == BUY else self.ask
        best = st.best
        if best is None or (best - price) * side < self.zone:  # in the zone before the event
            st.dirty = True
            if kind == CANCEL:
                st.cancelled += size
                st.known -= size
            elif kind == EXECUTE:
                st.executed += size
                st.known -= size
            elif kind == ADD:
                st.known += size
            else:
                st.exact = False
        now = self.book.best_bid if side == BUY else self.book.best_ask
        if now != best:
            st.dirty, st.exact = True, False
            if best is not None and now is not None and (now - best) * side > 0:
                st.inward = True
            st.best = now

    # ---- at LAST: re-read D_N where touched, test the fall ----------------------------------------------
    def on_last(self, ts: int) -> None:
        bid, ask = self.bid, self.ask
        if bid.dirty or ask.dirty:
            counters = self.book.counters
            anomalies = counters.overdrawn + counters.missing_levels + counters.duplicate_orders
            if anomalies != self.anomalies:  # the book applied a size other than the event's
                self.anomalies = anomalies
                bid.exact = ask.exact = False
            if bid.dirty:
                self._settle(bid, ts)
            if ask.dirty:
                self._settle(ask, ts)

    def on_bar(self, ts: int, frames: int) -> None:
        for st in (self.bid, self.ask):
            if frames & TF1:
                st.credit = 0
                st.exact = False  # re-read D_N at least once a second, whatever happened
            if frames & TF2:
                st.median.add(self.book.depth_within(st.side, self.zone))

    def _settle(self, st: SideState, ts: int) -> None:
        st.dirty = False
        old = st.depth
        new = old + st.known if st.exact else self.book.depth_within(st.side, self.zone)
        st.exact = True
        unexplained = old - new + st.known  # a decrease the events since the last re-read do not explain
        if unexplained > 0 and not st.inward:
            from_trades = min(unexplained, st.credit)
            st.credit -= from_trades
            st.cancelled += unexplained - from_trades
        st.depth, st.known, st.inward = new, 0, False
        peaks = st.peaks
        mark = st.mark
        entry = (ts, new, st.cancelled, st.executed, st.best)
        st.mark = entry[2:]
        top = old if new < old else new  # ``old`` was valid until now: a candidate peak for the window
        while peaks and peaks[-1][1] <= top:
            peaks.pop()
        if new < old:
            peaks.append((ts, old, *mark))
        peaks.append(entry)
        horizon = ts - self.window
        while peaks[0][0] < horizon:
            peaks.popleft()
        if new < old and ts >= st.quiet_until:  # only a fall can complete a vacuum
            self._test(st, ts)

    def _test(self, st: SideState, ts: int) -> None:
        p = self.params
        t_peak, peak, c0, e0, best0 = st.peaks[0]
        new = st.depth
        if peak <= 0 or new > (1.0 - p.min_drop) * peak or best0 is None:
            return
        median = st.median.value()
        if median is None or median <= 0 or new > p.max_depth_ratio * median:
            return
        cancelled, executed = st.cancelled - c0, st.executed - e0
        share = cancelled / max(peak - new, cancelled + executed)
        if share < p.min_cancel_share or self.book.state & UNUSABLE:
            return
        st.quiet_until = ts + self.refractory
        st.peaks.clear()  # the next fall starts from what is left now
        st.peaks.append((ts, new, st.cancelled, st.executed, st.best))
        void = 1.0 - new / median
        far = best0 - st.side * (self.zone - 1)
        self.emit(VacuumDetection(
            instrument_id=self.instrument_id, ts_recv=ts, seq=self.book.last_seq, side=st.side,
            price_lo=min(best0, far), price_hi=max(best0, far), strength=void / (1.0 - p.max_depth_ratio),
            t_start=t_peak, depth_before=peak, depth_after=new, cancelled=cancelled, executed=executed,
            cancel_share=share, median_depth=median, void=void, gap_max=gap_max(self.book, st.side, p.bins, self.width),
            window_ms=(ts - t_peak) / MS))


class VoidAccumulator(Accumulator):
    """Per-sample D_N, its 30-min median, void and gap_max of each side (SPEC F18), by stable name."""

    def __init__(self, context: DetectorContext, params: VacuumParams | None = None) -> None:
        p = self.params = params or VacuumParams()
        self.book = context.book
        self.width = context.bin_ticks
        self.zone = p.bins * context.bin_ticks
        self.medians = {BUY: RunningMedian(p.median_bars, p.min_median_bars),
                        SELL: RunningMedian(p.median_bars, p.min_median_bars)}

    def on_bar(self, ts: int, frames: int) -> None:
        if frames & TF2:
            for side, median in self.medians.items():
                median.add(self.book.depth_within(side, self.zone))

    def values(self, ts: int) -> dict[str, float]:
        out: dict[str, float] = {}
        book, zone, bins, width = self.book, self.zone, self.params.bins, self.width
        for side, (depth_name, median_name, void_name, gap_name) in NAMES.items():
            depth = book.depth_within(side, zone)
            median = self.medians[side].value()
            out[depth_name] = float(depth)
            out[median_name] = median or 0.0
            out[void_name] = 1.0 - depth / median if median else 0.0
            out[gap_name] = float(gap_max(book, side, bins, width))
        return out


NAMES = {side: tuple(f"{kind}_{name}" for kind in ("void_depth", "void_median", "void", "gap_max"))
         for side, name in ((BUY, "bid"), (SELL, "ask"))}
