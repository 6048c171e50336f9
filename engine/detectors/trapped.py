"""F23 trapped volume: aggressors who chased a sweep beyond a reference level and are now on the
wrong side of it.

Idea (SPEC F23, "our definition"): "After a sweep (or breakout) in direction ε beyond reference
level R (the extreme of the prior L_s = 15 min excluding the last 30 s, or VAH/VAL), V_trap =
aggressive volume in direction ε executed at prices beyond R from the sweep start to T_f = 30 s
after it. It becomes trapped once the mid returns through R within T_trap = 60 s; report V_trap,
trap_vwap, and trap_pain = ε·(m − trap_vwap) in ticks (negative = trapped traders under water)."
Worked example: a buy sweep takes R = 1000 to 1004, 600 lots print at 1001-1004 (VWAP 1002.5),
20 s later m = 999.5: trapped 600 lots, pain −3 ticks.

Definition implemented:
- **Reference R** (``RollingExtremes``): the highest (for ε = +1) or lowest (ε = −1) trade price in
  ``[t − L_s, t − exclude]`` at the sweep's first fill ``t``, kept per ``bucket_ms`` (1 s) bucket:
  a bucket enters the window once it is entirely older than ``exclude_s`` and leaves it once it
  starts before ``t − L_s``; monotonic deques of per-bucket extremes give R in O(1) amortised per
  trade. R exists only once ``exclude_s + min_history_s`` have passed since the first trade (an R
  made of the session's first few seconds is no swing).
- **Sweeps** come from this detector's own ``SweepTracker`` (engine/detectors/sweep.py) with the
  same parameters as the sweep detector: fed the same events, it completes the same sweeps at the
  same events, so the detection can name the sweep it follows (``sweep_id``, the sweep detection's
  ``detection_id()``) without depending on the order detectors are registered in and without
  reading another detector's state (coupling choice: a shared helper class, not a callback).
- **Episode**: a sweep of direction ε with at least one fill beyond R opens one. ``V_trap`` counts
  the sweep's own fills beyond R (tracked from its first fill, with R taken at that fill) and every
  later aggressive fill of sign ε beyond R until ``follow_s`` (T_f) after the sweep start. A further
  sweep in the same direction beyond the same R joins the open episode (``sweeps``); one beyond
  another R opens its own (at most ``max_episodes`` per direction, the oldest makes way).
- **Trapped**: the mid is through R (ε·(m − R) < 0) at a ``LAST`` or bar close, has been so
  continuously for ``hold_s`` (3 s), and the return began within ``trap_s`` (T_trap) of the sweep
  start. The detection is emitted then, with V_trap so far (if that is before T_f, later fills are
  not waited for: a strategy needs the trap when it happens) and m at that moment.

Deviations from SPEC, and why:
- "The mid returns through R" is read as "the mid is through R": after a sweep walks a thin book
  the mid often never crosses R at all (in ``stop_run_reversal`` the sweep prints 1-2 ticks above R
  while the bid stays 9 ticks below, so the mid is below R throughout), yet those buyers are
  trapped. The ``hold_s`` requirement replaces "returned": right after a sweep the book refills and
  the mid flickers under R for up to ~2 s even in a breakout that goes on (``breakout_sweep``, seeds
  1-3); with ``hold_s = 0`` every such flicker would be a trap.
- Only sweeps (F22) open episodes: breakouts and VAH/VAL references belong to detectors not built
  here (F24/F25) and can be added as other sources of R. R has ``bucket_ms`` (1 s) resolution.

Evidence (``TrappedDetection``): ``side`` is the trapped **aggressors'** side (BUY = buyers trapped
above R by a failed buy sweep); ``price_lo``/``price_hi`` the range of the trapped fills;
``volume`` (V_trap, lots), ``vwap`` (trap_vwap, ticks), ``pain`` (ε·(m − trap_vwap), ticks),
``reference`` (R), ``mid`` (m at the trap, ticks), ``delay_ms`` (sweep start to trap),
``sweep_id``, ``sweep_volume``, ``sweep_extreme``, ``sweeps``; ``strength`` = V_trap / sweep
volume (S1 asks for ≥ 0.3); ``t_start`` the sweep's first fill.

L2 feeds: trades and the best prices are all it reads, so it works unchanged. Cost: O(1)
amortised per trade and per ``LAST`` (at most ``max_episodes`` open episodes per direction).
"""

from __future__ import annotations

from collections import deque

from engine.book import UNUSABLE
from engine.config.detectors import SweepParams, TrappedParams
from engine.detectors.base import Detector, DetectorContext
from engine.detectors.sweep import MS, Burst, SweepTracker, sweep_detection
from engine.events import Detection, Trade

NS = 1_000_000_000


class TrappedDetection(Detection, frozen=True, kw_only=True):
    """Aggressors trapped beyond R after a failed sweep (``side`` is the trapped aggressors' side)."""

    volume: int
    vwap: float
    pain: float
    reference: int
    mid: float
    delay_ms: float
    sweep_id: str
    sweep_volume: int
    sweep_extreme: int
    sweeps: int


class RollingExtremes:
    """Highest and lowest price over ``[t - lookback, t - exclude]``, by buckets of ``bucket_ns``.

    ``add(ts, price)`` and the queries take non-decreasing times. Each bucket passes once through
    a FIFO (too recent) and at most once through each monotonic deque: O(1) amortised.
    """

    __slots__ = ("lookback", "exclude", "bucket", "key", "hi", "lo", "pending", "highs", "lows")

    def __init__(self, lookback_ns: int, exclude_ns: int, bucket_ns: int) -> None:
        self.lookback, self.exclude, self.bucket = lookback_ns, exclude_ns, bucket_ns
        self.key: int | None = None  # the open bucket
        self.hi = self.lo = 0
        self.pending: deque[tuple[int, int, int]] = deque()  # closed buckets not yet old enough
        self.highs: deque[tuple[int, int]] = deque()  # (key, high), highs decreasing
        self.lows: deque[tuple[int, int]] = deque()  # (key, low), lows increasing

    def add(self, ts: int, price: int) -> None:
        key = ts // self.bucket
        if key != self.key:
            if self.key is not None:
                self.pending.append((self.key, self.hi, self.lo))
            self.key, self.hi, self.lo = key, price, price
        elif price > self.hi:
            self.hi = price
        elif price < self.lo:
            self.lo = price

    def high(self, ts: int) -> int | None:
        """The highest price in the window at ``ts`` (None when the window is empty)."""
        self._advance(ts)
        return self.highs[0][1] if self.highs else None

    def low(self, ts: int) -> int | None:
        """The lowest price in the window at ``ts`` (None when the window is empty)."""
        self._advance(ts)
        return self.lows[0][1] if self.lows else None

    def _advance(self, ts: int) -> None:
        bucket = self.bucket
        ready = (ts - self.exclude) // bucket  # buckets with key < ready ended by ts - exclude
        if self.key is not None and self.key < ready:
            self.pending.append((self.key, self.hi, self.lo))
            self.key = None
        pending, highs, lows = self.pending, self.highs, self.lows
        while pending and pending[0][0] < ready:
            key, hi, lo = pending.popleft()
            while highs and highs[-1][1] <= hi:
                highs.pop()
            highs.append((key, hi))
            while lows and lows[-1][1] >= lo:
                lows.pop()
            lows.append((key, lo))
        oldest = -((self.lookback - ts) // bucket)  # ceil((ts - lookback) / bucket): first key inside
        while highs and highs[0][0] < oldest:
            highs.popleft()
        while lows and lows[0][0] < oldest:
            lows.popleft()


class Episode:
    """One sweep beyond R waiting to be trapped (or to expire)."""

    __slots__ = ("side", "reference", "t_start", "volume", "notional", "lo", "hi", "since", "sweep_id",
                 "sweep_volume", "sweep_extreme", "sweeps")

    def __init__(self, side: int, reference: int, burst: Burst, sweep_id: str, fills: BeyondFills) -> None:
        self.side, self.reference, self.t_start = side, reference, burst.t_first
        self.volume, self.notional, self.lo, self.hi = fills.volume, fills.notional, fills.lo, fills.hi
        self.since: int | None = None  # since when the mid is through R (None: it is not)
        self.sweep_id, self.sweep_volume, self.sweep_extreme = sweep_id, burst.volume, burst.extreme
        self.sweeps = 1

    def add(self, price: int, size: int) -> None:
        self.volume += size
        self.notional += price * size
        if price < self.lo:
            self.lo = price
        if price > self.hi:
            self.hi = price


class BeyondFills:
    """The open burst's fills beyond the R taken at its first fill."""

    __slots__ = ("reference", "volume", "notional", "lo", "hi")

    def __init__(self, reference: int | None) -> None:
        self.reference = reference
        self.volume = self.notional = 0
        self.lo, self.hi = 1 << 62, -(1 << 62)


class TrappedDetector(Detector):
    """Emits a ``TrappedDetection`` when a sweep beyond R fails (SPEC F23; see the module docstring)."""

    name = "trapped"

    def __init__(self, context: DetectorContext, params: TrappedParams | None = None,
                 sweep: SweepParams | None = None) -> None:
        """``sweep``: the grouping and rules of the sweeps that open episodes (the sweep detector's own,
        ``[detectors.sweep]``, so both find the same sweeps)."""
        super().__init__(context)
        p = self.params = params or TrappedParams()
        self.tracker = SweepTracker(sweep or SweepParams())
        self.extremes = RollingExtremes(round(p.lookback_s * NS), round(p.exclude_s * NS), p.bucket_ms * MS)
        self.follow, self.trap, self.hold = round(p.follow_s * NS), round(p.trap_s * NS), round(p.hold_s * NS)
        self.history = round((p.exclude_s + p.min_history_s) * NS)
        self.first_trade: int | None = None
        self.fills: BeyondFills | None = None  # of the tracker's open burst
        self.episodes: dict[int, list[Episode]] = {1: [], -1: []}  # by direction, oldest first
        self.instrument_id = context.instrument.instrument_id

    def handlers(self) -> dict:
        return {Trade: self.on_trade}

    def on_trade(self, ev: Trade) -> None:
        ts, price, side = ev.ts_recv, ev.price, ev.aggressor
        self.extremes.add(ts, price)
        if self.first_trade is None:
            self.first_trade = ts
        if side == 0 or ev.size <= 0:
            return
        tracker = self.tracker
        open_before = tracker.burst
        done = tracker.on_trade(ev)
        if done is not None:
            self._swept(done, ts, ev.seq)
        if tracker.burst is not open_before:  # this fill opened a burst: take R now
            reference = None
            if ts - self.first_trade >= self.history:
                reference = self.extremes.high(ts) if side > 0 else self.extremes.low(ts)
            self.fills = BeyondFills(reference)
        fills = self.fills
        if fills is not None and fills.reference is not None and (price - fills.reference) * side > 0:
            fills.volume += ev.size
            fills.notional += price * ev.size
            fills.lo, fills.hi = min(fills.lo, price), max(fills.hi, price)
        for episode in self.episodes[side]:
            if ts - episode.t_start <= self.follow and (price - episode.reference) * side > 0:
                episode.add(price, ev.size)

    def on_last(self, ts: int) -> None:
        tracker = self.tracker
        if tracker.burst is not None:
            done = tracker.expire(ts)
            if done is not None:
                self._swept(done, ts, self.book.last_seq)
            if tracker.burst is None:
                self.fills = None  # the burst ended without being a sweep
        self._check_all(ts)

    def on_bar(self, ts: int, frames: int) -> None:
        done = self.tracker.on_bar(ts, frames)
        if done is not None:
            self._swept(done, ts, self.book.last_seq)
        if self.tracker.burst is None:
            self.fills = None
        self._check_all(ts)

    def _check_all(self, ts: int) -> None:
        episodes = self.episodes
        if not (episodes[1] or episodes[-1]):
            return
        mid2 = self.book.mid2()
        if mid2 is None:
            return
        for side in (1, -1):
            for episode in list(episodes[side]):
                self._check(episodes[side], episode, ts, mid2)

    def _swept(self, burst: Burst, ts: int, seq: int) -> None:
        """A sweep completed at ``ts``/``seq``: open an episode when it went beyond R."""
        fills = self.fills
        self.fills = None
        side = burst.side
        if fills is None or fills.reference is None or fills.volume == 0 or self.book.state & UNUSABLE:
            return  # no R, no fill beyond it, or a sweep the sweep detector does not report either
        episodes = self.episodes[side]
        for episode in episodes:
            if episode.reference == fills.reference:
                episode.sweeps += 1  # its fills beyond R already count in the open episode
                return
        if len(episodes) == self.params.max_episodes:
            del episodes[0]
        sweep_id = sweep_detection(burst, self.instrument_id, ts, seq).detection_id()
        episodes.append(Episode(side, fills.reference, burst, sweep_id, fills))

    def _check(self, episodes: list[Episode], episode: Episode, ts: int, mid2: int) -> None:
        if (mid2 - 2 * episode.reference) * episode.side >= 0:  # at or beyond R
            episode.since = None
        elif episode.since is None:
            episode.since = ts
        since = episode.since
        if (since is not None and ts - since >= self.hold and since - episode.t_start <= self.trap
                and not self.book.state & UNUSABLE):
            episodes.remove(episode)
            self._emit(episode, ts, mid2)
        elif ts - episode.t_start > self.trap + self.hold:  # too late now (or the book stayed unusable)
            episodes.remove(episode)

    def _emit(self, episode: Episode, ts: int, mid2: int) -> None:
        side, volume = episode.side, episode.volume
        vwap = episode.notional / volume
        mid = mid2 / 2
        self.emit(TrappedDetection(
            instrument_id=self.instrument_id, ts_recv=ts, seq=self.book.last_seq, side=side,
            price_lo=episode.lo, price_hi=episode.hi, strength=volume / episode.sweep_volume,
            t_start=episode.t_start, volume=volume, vwap=vwap, pain=side * (mid - vwap),
            reference=episode.reference, mid=mid, delay_ms=(ts - episode.t_start) / MS,
            sweep_id=episode.sweep_id, sweep_volume=episode.sweep_volume, sweep_extreme=episode.sweep_extreme,
            sweeps=episode.sweeps))
