"""Natural vacuum and absorption labels: complete truth for SPEC F18 and F20 in the simulator's own flow.

The background flow makes real vacuums (resting orders near the best expire or go stale together)
and real absorptions (a best level keeps taking market orders and is replenished by new orders and
hidden liquidity) that no planted episode names. Like the natural sweeps of ``matching``, these
labels are read from the generator's own record of what happened: every market event the exchange
emitted, in emission order, applied to a copy of its book (equal to the exchange's book at every
event: the stream's replay invariant), with the exact passive side of every execution (hidden
fills included) and whether a decrease of depth was a cancel or an execution. Nothing here reads a
detector, its parameters or its code; the constants are SPEC section 2's.

``NaturalTruth.observe`` runs over each window's events before the simulator releases them; it adds
``TruthLabel``s (episode id 0, params ``natural`` = 1) stamped at the event time at which the event
is complete, and nothing else: no random draw, no change of the book or of any market record, so the
market events are byte-identical with the labels on or off (tested).

Vacuum (SPEC F18; ``simulator.natural_vacuum_labels``). Per side, ``D_N`` is the displayed size within
N = 10 bins of the side's best (the best's bin first: prices within ``N * bin`` ticks of the best; the
bin is the profile's: 1 tick on ``large_tick``, 10 on ``small_tick``, as the scenarios plant episodes),
read after every atomic event that touched it. A vacuum on side X happens at the first moment when
- ``D_N <= (1 - 0.5) * peak``, ``peak`` the largest ``D_N`` in the last 2 s (the fall within
  Δt <= 2 s);
- cancels and deletes within the zone since that peak are at least 70% of what the zone lost:
  ``cancelled / max(peak - D_N, cancelled + executed) >= 0.7`` ("cancellations/deletes account for
  >= 70% of the decrease (trades the rest)": of the net decrease and of the volume removed, so a
  zone that merely moved or was eaten by market orders is no vacuum);
- ``D_N <= 0.4 * median``, the median of ``D_N`` sampled every 10 s over the last 30 min (defined
  from 3 samples, i.e. 30 s of flow; before that no vacuum can be judged).
The next fall of that side is measured from the depth after this one. One withdrawal often comes
as a cascade (the depth halves, then what is left halves again within a second): falls that each
begin within Δt = 2 s of the previous one's moment are one vacuum. Label, once the run has been
quiet for 2 s (or at the session's end): kind VACUUM, side X, prices the union of the zones at the
peaks (``[best, best -+ (N * bin - 1)]``), ``t_start`` the last moment the depth was at the first
peak, ``t_end`` the moment of the last fall; params ``natural``, ``depth_before`` (the first peak),
``depth_after`` (after the last fall), ``cancelled`` and ``executed`` (summed over the falls),
``median``, ``falls``.

Absorption (SPEC F20; ``simulator.natural_absorption_labels``). Per (passive side, price p):
- every execution at p while p is at or better than the side's best (hidden fills sit inside the
  spread: they count) joins p's window of the last W = 5 s; ``V_abs`` = lots executed at p in the
  window, ``D0`` = displayed size at p just before the window's first execution;
- ``T_auto`` = mean + 2 std (population) of the per-level traded volume per W, sampled every 10 s
  per side (the largest volume traded at one price of that side in the last 5 s; no trade, no
  sample) over the last 30 min (360 samples), defined from 6 samples (30 s of flow);
- p *absorbs* when ``V_abs >= T_auto`` (the crossing) with more traded than was shown
  (``V_abs >= D0 + 1``: liquidity that was replenished or hidden; a level that only traded part of
  its visible queue absorbed nothing beyond what it showed), and p *holds* for T_hold = 2 s after
  the crossing execution: no execution on p's side at a price beyond p (the price trading through
  p) and the opposite best never at or through p, from the window's first execution on, and p is
  still the side's best or behind a better one at the end (its best is not beyond p).
Judged on the book as it was at crossing + 2 s (before the first event at or after that moment, at
which the label is stamped): kind ABSORPTION, the passive side, ``price_lo = price_hi = p``,
``t_start`` the window's first execution, ``t_end`` crossing + 2 s; params ``natural``, ``volume`` (the
largest window volume from the crossing on), ``d0``, ``threshold``, ``hidden`` (hidden lots in that
window). p's window then starts afresh.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque

from engine.book import UNUSABLE, OrderBook
from engine.events import (
    BUY,
    LAST,
    SELL,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Trade,
    TruthKind,
    TruthLabel,
)

NS = 1_000_000_000
# SPEC F18
VACUUM_BINS = 10  # N
VACUUM_WINDOW_NS = 2 * NS  # Δt
VACUUM_DROP = 0.5  # D_N falls by at least this share
VACUUM_CANCEL_SHARE = 0.7  # cancels/deletes account for at least this share of the decrease
VACUUM_DEPTH_RATIO = 0.4  # D_N / median at most this afterwards
MEDIAN_SAMPLES = 180  # 30 min of 10 s samples
MEDIAN_MIN = 3
# SPEC F20
ABSORPTION_WINDOW_NS = 5 * NS  # W
ABSORPTION_HOLD_NS = 2 * NS  # T_hold
ABSORPTION_K = 2.0  # T_auto = mean + k std
BASELINE_SAMPLES = 360  # 30 min of 10 s samples, two sides
BASELINE_MIN = 6
SAMPLE_NS = 10 * NS  # the sampling period of both baselines


class _Side:
    """One side's vacuum bookkeeping."""

    __slots__ = ("side", "best", "depth", "touched", "cancelled", "executed", "history", "samples", "ordered", "run")

    def __init__(self, side: int) -> None:
        self.side = side
        self.best: int | None = None  # the best before the next event
        self.depth = 0  # D_N after the last atomic event
        self.touched = False  # an event of this atomic event changed D_N or moved the best
        self.cancelled = 0  # cumulative lots cancelled/deleted within the zone
        self.executed = 0  # cumulative lots executed within the zone
        self.history: deque[tuple[int, int, int, int, int | None]] = deque()  # (ts, D_N, cancelled, executed, best)
        self.samples: deque[int] = deque()  # D_N every 10 s
        self.ordered: list[int] = []
        self.run: list | None = None  # the vacuum going on: [t_start, t_end, lo, hi, before, after, cancelled,
        # executed, median, falls]

    def sample(self) -> None:
        if len(self.samples) == MEDIAN_SAMPLES:
            del self.ordered[bisect_left(self.ordered, self.samples.popleft())]
        self.samples.append(self.depth)
        self.ordered.insert(bisect_right(self.ordered, self.depth), self.depth)

    def median(self) -> float | None:
        ordered = self.ordered
        n = len(ordered)
        if n < MEDIAN_MIN:
            return None
        half = n // 2
        return float(ordered[half]) if n % 2 else (ordered[half - 1] + ordered[half]) / 2


class _Level:
    """One price's absorption window."""

    __slots__ = ("execs", "volume", "hidden", "armed", "deadline", "best", "d0", "first", "best_hidden", "threshold",
                 "broken")

    def __init__(self) -> None:
        self.execs: deque[tuple[int, int, int, int]] = deque()  # (ts, lots, shown before, hidden lots)
        self.volume = self.hidden = 0
        self.armed = False
        self.deadline = 0
        self.best = self.d0 = self.first = self.best_hidden = 0
        self.threshold = 0.0
        self.broken = False

    def widest(self) -> None:
        """Record the current window as the largest since the crossing: its volume, D0, start, hidden lots."""
        execs = self.execs
        self.best, self.d0, self.first, self.best_hidden = self.volume, execs[0][2], execs[0][0], self.hidden


class NaturalTruth:
    """Emits natural VACUUM and ABSORPTION labels of one instrument (see the module docstring)."""

    def __init__(self, ex, bin_ticks: int, vacuum: bool = True, absorption: bool = True) -> None:
        self.ex = ex
        self.book = OrderBook(ex.iid)
        self.zone = VACUUM_BINS * max(1, bin_ticks)
        self.vacuum, self.absorption = vacuum, absorption
        self.sides = {BUY: _Side(BUY), SELL: _Side(SELL)}
        self.levels: dict[int, dict[int, _Level]] = {BUY: {}, SELL: {}}
        self.armed: list[tuple[int, int, _Level]] = []
        self.traded: dict[int, deque[tuple[int, int, int]]] = {BUY: deque(), SELL: deque()}  # (ts, price, lots)
        self.baseline: deque[float] = deque(maxlen=BASELINE_SAMPLES)
        self.deadline = 1 << 62  # the earliest deadline of the armed prices
        self.next_sample = ex.t0 + SAMPLE_NS  # samples at 10 s, 20 s, ... of the session
        self.n_vacuum = self.n_absorption = 0
        self.last_ts = ex.t0

    # ---- driver -------------------------------------------------------------------------------------
    def observe(self, events: list, final: bool = False) -> None:
        """Follow ``events`` (one instrument's records in emission order); labels go to the exchange.
        ``final``: the session ends with them (what is still open is labelled)."""
        n = len(events)  # labels emitted here are appended behind: not read back
        book, update = self.book, self.book.update
        for i in range(n):
            ev = events[i]
            kind = type(ev)
            if kind is TruthLabel:
                continue
            ts = ev.ts_event
            if ts >= self.next_sample:
                self._sample(ts)
            if self.armed and ts >= self.deadline:
                self._decide(ts)  # as the book was at the deadline: before this event
            if kind is OrderAdd and self.vacuum:
                st = self.sides[ev.side]
                if st.best is None or (st.best - ev.price) * st.side < self.zone:
                    st.touched = True
            elif kind is OrderExecute or kind is OrderDelete or kind is OrderCancel:
                self._removal(ev, kind)
            elif kind is Trade and ev.hidden and self.absorption and ev.aggressor:
                self._execution(ts, -ev.aggressor, ev.price, ev.size, book.size_at(-ev.aggressor, ev.price), True)
            update(ev)
            if self.vacuum:
                self._best_moved(BUY)
                self._best_moved(SELL)
            if ev.flags & LAST:
                if self.vacuum:
                    for side in self.sides.values():
                        if side.touched:
                            self._settle(side, ts)
                        if side.run is not None and ts - side.run[1] > VACUUM_WINDOW_NS:
                            self._emit_vacuum(side, ts)
                if self.absorption and (self.levels[BUY] or self.levels[SELL]):
                    self._held(ts)
            self.last_ts = ts
        if final:
            self.flush(self.last_ts)

    def _sample(self, ts: int) -> None:
        """Every 10 s of event time: the D_N median samples and the per-level volume baseline sample."""
        while self.next_sample <= ts:
            now = self.next_sample
            self.next_sample += SAMPLE_NS
            if self.vacuum:
                for side in self.sides.values():
                    side.sample()
            if self.absorption:
                horizon = now - ABSORPTION_WINDOW_NS
                for traded in self.traded.values():
                    while traded and traded[0][0] <= horizon:
                        traded.popleft()
                    if traded:
                        per_price: dict[int, int] = {}
                        for _, price, lots in traded:
                            per_price[price] = per_price.get(price, 0) + lots
                        self.baseline.append(float(max(per_price.values())))

    # ---- per event ----------------------------------------------------------------------------------
    def _removal(self, ev, kind) -> None:
        side, price = ev.side, ev.price
        lots = ev.size_cancelled if kind is OrderCancel else ev.size
        if self.vacuum:
            st = self.sides[side]
            best = st.best
            if best is None or (best - price) * side < self.zone:  # within the zone before the event
                st.touched = True
                if kind is OrderExecute:
                    st.executed += lots
                else:
                    st.cancelled += lots
        if kind is OrderExecute and self.absorption:
            self._execution(ev.ts_event, side, price, lots, self.book.size_at(side, price), False)

    def _best_moved(self, side: int) -> None:
        st = self.sides[side]
        now = self.book.best_bid if side == BUY else self.book.best_ask
        if now != st.best:
            st.best = now
            st.touched = True

    # ---- vacuum ------------------------------------------------------------------------------------
    def _settle(self, st: _Side, ts: int) -> None:
        st.touched = False
        old = st.depth
        new = st.depth = self.book.depth_within(st.side, self.zone)
        history = st.history
        history.append((ts, new, st.cancelled, st.executed, st.best))
        horizon = ts - VACUUM_WINDOW_NS
        while len(history) > 1 and history[1][0] <= horizon:  # keep the value valid at the horizon
            history.popleft()
        if new >= old:
            return
        peak = max(h[1] for h in history)
        at = max(i for i, h in enumerate(history) if h[1] == peak)  # the last entry at the peak
        _, peak, c0, e0, best0 = history[at]
        t_peak = history[at + 1][0]  # the peak lasted until the next entry: the fall began then
        if peak <= 0 or new > (1.0 - VACUUM_DROP) * peak or best0 is None:
            return
        median = st.median()
        if median is None or median <= 0 or new > VACUUM_DEPTH_RATIO * median or self.book.state & UNUSABLE:
            return
        cancelled, executed = st.cancelled - c0, st.executed - e0
        share = cancelled / max(peak - new, cancelled + executed)
        if share < VACUUM_CANCEL_SHARE:
            return
        history.clear()
        history.append((ts, new, st.cancelled, st.executed, st.best))
        far = best0 - st.side * (self.zone - 1)
        lo, hi = min(best0, far), max(best0, far)
        run = st.run
        if run is not None and ts - run[1] <= VACUUM_WINDOW_NS:  # the same withdrawal going on
            run[1], run[2], run[3], run[5] = ts, min(run[2], lo), max(run[3], hi), new
            run[6] += cancelled
            run[7] += executed
            run[9] += 1
            return
        if run is not None:
            self._emit_vacuum(st, ts)
        st.run = [t_peak, ts, lo, hi, peak, new, cancelled, executed, median, 1]

    def _emit_vacuum(self, st: _Side, ts: int) -> None:
        """Label the side's finished run of falls, stamped ``ts``."""
        t_start, t_end, lo, hi, before, after, cancelled, executed, median, falls = st.run
        st.run = None
        self.n_vacuum += 1
        self.ex.label_ns(ts, TruthKind.VACUUM, st.side, lo, hi, t_start, t_end,
                         {"natural": 1, "depth_before": before, "depth_after": after, "cancelled": cancelled,
                          "executed": executed, "median": median, "falls": falls}, episode=-1)

    def flush(self, ts: int) -> None:
        """Label what is still open at the end of the session (stamped ``ts``)."""
        for st in self.sides.values():
            if st.run is not None:
                self._emit_vacuum(st, ts)

    # ---- absorption --------------------------------------------------------------------------------
    def threshold(self) -> float | None:
        values = self.baseline
        n = len(values)
        if n < BASELINE_MIN:
            return None
        mean = math.fsum(values) / n
        var = max(0.0, math.fsum(v * v for v in values) / n - mean * mean)
        return max(1.0, mean + ABSORPTION_K * math.sqrt(var))

    def _execution(self, ts: int, side: int, price: int, lots: int, shown: int, hidden: bool) -> None:
        """``lots`` executed against resting (or hidden) liquidity of ``side`` at ``price``; ``shown``
        is the displayed size there before the execution."""
        self.traded[side].append((ts, price, lots))
        book = self.book
        levels = self.levels[side]
        for q, level in levels.items():  # executions beyond a watched price: the price traded through it
            if (q - price) * side > 0:
                level.broken = True
        best = book.best_bid if side == BUY else book.best_ask
        if best is not None and (best - price) * side > 0:
            return  # behind the side's best: not the best when it traded
        level = levels.get(price)
        if level is None:
            level = levels[price] = _Level()
        execs = level.execs
        execs.append((ts, lots, shown, lots if hidden else 0))
        level.volume += lots
        level.hidden += lots if hidden else 0
        horizon = ts - ABSORPTION_WINDOW_NS
        while execs[0][0] <= horizon:
            _, old, _, old_hidden = execs.popleft()
            level.volume -= old
            level.hidden -= old_hidden
        if level.armed:
            if level.volume > level.best:
                level.widest()
            return
        threshold = self.threshold()
        if threshold is None or level.volume < threshold:
            return
        level.armed, level.deadline, level.threshold = True, ts + ABSORPTION_HOLD_NS, threshold
        level.widest()
        self.armed.append((side, price, level))
        self.deadline = min(self.deadline, level.deadline)

    def _held(self, ts: int) -> None:
        """At the end of an atomic event: prices the opposite best reached are broken; prices without an
        execution in the last W are forgotten."""
        book = self.book
        for side, opposite in ((BUY, book.best_ask), (SELL, book.best_bid)):
            if opposite is None:
                continue
            for q, level in self.levels[side].items():
                if (opposite - q) * side <= 0:
                    level.broken = True
        horizon = ts - ABSORPTION_WINDOW_NS
        for levels in self.levels.values():
            stale = [q for q, lv in levels.items()
                     if not lv.armed and (lv.broken or not lv.execs or lv.execs[-1][0] <= horizon)]
            for q in stale:
                del levels[q]

    def _decide(self, ts: int) -> None:
        """The armed prices whose hold ended at or before ``ts``, judged on the book before the event at
        ``ts`` (the book at the deadline); a label is stamped ``ts`` with ``t_end`` the deadline."""
        book = self.book
        due = [entry for entry in self.armed if entry[2].deadline <= ts]
        for entry in due:
            self.armed.remove(entry)
            side, price, level = entry
            own = book.best_bid if side == BUY else book.best_ask
            if (not level.broken and own is not None and (own - price) * side >= 0
                    and level.best >= level.d0 + 1 and not book.state & UNUSABLE):
                self.n_absorption += 1
                self.ex.label_ns(ts, TruthKind.ABSORPTION, side, price, price, level.first, level.deadline,
                                 {"natural": 1, "volume": level.best, "d0": level.d0,
                                  "threshold": round(level.threshold, 3), "hidden": level.best_hidden}, episode=-1)
            del self.levels[side][price]
        self.deadline = min((entry[2].deadline for entry in self.armed), default=1 << 62)
