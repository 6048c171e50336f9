"""Regime rule labels (SPEC section 5) and their building blocks, vectorised over TF2 bars.

Every input is an array sampled at TF2 (10 s) closes; bar ``t`` covers ``(close_{t-1}, close_t]``.
All statistics are causal: the value at bar ``t`` uses bars ``<= t`` only, and the baselines the
rules compare with (spread q99, depth median, prior range, 1 s volatility, the σ_5min threshold)
use bars ``< t`` only, or a training period (``RuleReference``, fitted by ``fit_reference``: SPEC's
"causal quantiles from the training period"). Window lengths are in bars.

Rule table, first match wins, evaluated at every bar once ``warmup_bars`` have passed:

1. SHOCK: a 1 s mid change above ``6·σ_1s`` in the last 60 s, or spread above its q99, or
   ``D_10 / median_30min(D_10) <= 0.3`` on both sides, or a bar not fully OPEN in the last 60 s;
2. BREAKOUT: ``VR = σ(1 min)/σ(60 min) >= 1.5`` and ``VA = (V_30s/30)/(V_300s/300) >= 1.5`` and the
   mid outside the range of the prior 30 min (that range ends 30 s before the bar, so a move that
   keeps going stays outside it, as in F23);
3. TREND_UP: ``t_drift(20 min) >= 2.5`` and ``ER(20 min) >= 0.2``;
4. TREND_DOWN: ``t_drift(20 min) <= -2.5`` and ``ER(20 min) >= 0.2``;
5. RANGE_HIGH: ``σ_5min`` at or above the training period's threshold (without one: the q67 of all
   earlier bars);
6. RANGE_LOW otherwise.

Smoothing: a label replaces the previous one only once it has been the raw label at 3 consecutive
closes; SHOCK and BREAKOUT apply at once and end at once (``overlay``), the other labels' smoothing
running underneath. Bars before warm-up are ``UNKNOWN`` (-1) and are never scored.

Refinements of SPEC section 5 (``RuleParams``; each measured against the simulator's truth and on
the real-data sample through ``chimera calibrate``, see docs/simulator.md):
- σ_1s of the jump test is tail-consistent: the 99.9th percentile of ``|r_1s|`` over the history
  (all earlier bars, or the training period) divided by 3.29, its Gaussian value. With 1 s kurtosis
  of 20-50 the RMS put "6σ" inside the ordinary range: in the simulator one false jump every few
  minutes outside SHOCK, on real small-tick data (``chimera calibrate``) a large share of SHOCK bars;
- the spread q99 comes from the training period when one is given (a 30-min history, as in SPEC,
  otherwise): within any history "spread > q99" fires on 1 % of the bars by construction, each
  followed by a SHOCK;
- BREAKOUT's volatility ratio uses a 1-min numerator (SPEC F10's VR is 5/60 min; the classifier
  features also use 1/30 min): a 5-min window needs most of a 3-min breakout to pass 1.5, by which
  time the volume acceleration (30 s / 5 min) has faded;
- BREAKOUT applies at once like SHOCK, and both end at once (``apply_hysteresis(overlay=True)``): the
  3-close persistence discarded the short onset signature of breakouts, and kept a SHOCK for
  minutes after its conditions ended while the raw labels flickered;
- RANGE_HIGH's threshold is fitted on the training period's ranging bars (no event rule, centred
  trend windows, 5 min away from any SHOCK/BREAKOUT) as the split of a two-cluster fit of
  ``log σ_5min`` (``two_means_split``); q67 (SPEC) assumes RANGE_HIGH is a third of ranging time,
  and when it is not the threshold falls inside one of the two classes.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import msgspec
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.events import Regime

UNKNOWN = -1
SHOCK, BREAKOUT = int(Regime.SHOCK), int(Regime.BREAKOUT)
TREND_UP, TREND_DOWN = int(Regime.TREND_UP), int(Regime.TREND_DOWN)
RANGE_HIGH, RANGE_LOW = int(Regime.RANGE_HIGH), int(Regime.RANGE_LOW)


class RuleParams(msgspec.Struct, frozen=True, kw_only=True):
    """Thresholds and windows of the rule table (windows in TF2 bars of 10 s)."""

    trend_bars: int = 120  # 20 min: t_drift and ER window
    drift_threshold: float = 2.5
    er_threshold: float = 0.2
    shock_sigma: float = 6.0  # |r_1s| above this many σ_1s
    shock_bars: int = 6  # 60 s look-back of the SHOCK conditions
    baseline_bars: int = 180  # 30 min: spread q99, depth median, prior range
    shock_vol_bars: int = 0  # σ_1s window of the SHOCK jump test (0: all earlier bars)
    jump_scale: str = "q99"  # σ_1s estimator of the jump test: "q99" (tail-consistent) or "rms"
    jump_tail: float = 0.001  # two-sided tail probability of |r_1s| whose quantile sets the tail-consistent σ_1s
    spread_history_bars: int = 180  # 30 min: history of the SHOCK spread q99 without a reference (0: all)
    min_history_bars: int = 30  # a baseline needs this many earlier bars
    spread_quantile: float = 0.99
    depth_ratio: float = 0.3
    vr_threshold: float = 1.5
    va_threshold: float = 1.5
    vol_short_bars: int = 30  # 5 min
    breakout_vol_bars: int = 6  # numerator window of the BREAKOUT volatility ratio (1 min)
    vol_long_bars: int = 360  # 60 min (fewer while the session is younger, at least 2 x short)
    va_short_bars: int = 3  # 30 s
    va_long_bars: int = 30  # 300 s
    range_gap_bars: int = 3  # the prior range ends 30 s before the bar
    range_high_quantile: float = 0.67
    range_high_split: str = "two_means"  # RANGE_HIGH threshold fitted as "q67" of ranging σ_5min or "two_means" (log)
    persist: int = 3  # hysteresis, closes
    immediate: tuple[int, ...] = (SHOCK, BREAKOUT)  # labels that replace the previous one at once
    overlay: bool = True  # immediate labels also end at once (see apply_hysteresis)
    warmup_bars: int = 120


class RuleReference(msgspec.Struct, frozen=True, kw_only=True):
    """Thresholds fitted on a training period (SPEC 5: "causal quantiles from the training period").

    Built by ``fit_reference`` from one instrument's training bars (a previous session, or a
    reference simulation of the same instrument); ``regime_rule_labels`` then uses them in place
    of the in-session histories.
    """

    jump_sigma: float  # σ_1s of the SHOCK jump test (ticks)
    spread_high: float  # SHOCK spread threshold: q99 of the spread at bar closes
    range_high: float  # RANGE_HIGH threshold: q67 of σ_5min over the ranging bars (ticks per bar)


@dataclass(frozen=True, slots=True)
class RegimeInputs:
    """TF2 arrays the rules read (equal lengths; one entry per bar close)."""

    mid: np.ndarray  # ticks at the close
    spread: np.ndarray  # ticks at the close
    depth_bid: np.ndarray  # D_10 at the close
    depth_ask: np.ndarray
    volume: np.ndarray  # lots traded in the bar
    is_open: np.ndarray  # bool: market OPEN at every sample of the bar
    max_abs_r1s: np.ndarray  # largest |1 s mid change| in the bar (ticks)
    sum_sq_r1s: np.ndarray  # sum of squared 1 s mid changes in the bar
    n_r1s: np.ndarray  # number of 1 s mid changes in the bar


def tf2_inputs(
    mid: np.ndarray,
    spread: np.ndarray,
    depth_bid: np.ndarray,
    depth_ask: np.ndarray,
    volume: np.ndarray,
    is_open: np.ndarray,
    *,
    per_bar: int = 10,
    first_close: int = 0,
) -> RegimeInputs:
    """Build ``RegimeInputs`` from 1 s arrays; bars close at ``first_close + k·per_bar``.

    ``mid`` is in ticks and ``volume`` is per 1 s interval. NaN mids (empty book side) are
    forward-filled; the 1 s changes of bar ``k`` are those ending inside it.
    """
    mid = _ffill(np.asarray(mid, dtype=np.float64))
    n_bars = max(0, (len(mid) - 1 - first_close) // per_bar + 1)
    closes = first_close + per_bar * np.arange(n_bars)
    r1 = np.diff(mid, prepend=np.nan)
    owner = _bar_owner(len(mid), first_close, per_bar, n_bars)
    inside = (owner >= 0) & np.isfinite(r1)
    sum_sq = np.bincount(owner[inside], weights=r1[inside] ** 2, minlength=n_bars)
    count = np.bincount(owner[inside], minlength=n_bars).astype(np.float64)
    max_abs = np.zeros(n_bars)
    np.maximum.at(max_abs, owner[inside], np.abs(r1[inside]))
    in_bar = owner >= 0
    vol = np.bincount(owner[in_bar], weights=np.asarray(volume, float)[in_bar], minlength=n_bars)
    closed = np.bincount(owner[in_bar], weights=~np.asarray(is_open, bool)[in_bar], minlength=n_bars)
    return RegimeInputs(
        mid=mid[closes], spread=_ffill(np.asarray(spread, float))[closes],
        depth_bid=_ffill(np.asarray(depth_bid, float))[closes],
        depth_ask=_ffill(np.asarray(depth_ask, float))[closes],
        volume=vol, is_open=closed == 0, max_abs_r1s=max_abs, sum_sq_r1s=sum_sq, n_r1s=count,
    )


def _bar_owner(n: int, first_close: int, per_bar: int, n_bars: int) -> np.ndarray:
    """Bar index owning each 1 s sample (-1 before the first bar's window)."""
    idx = np.arange(n)
    owner = -(-(idx - first_close) // per_bar)  # ceil: sample j belongs to the bar closing at or after it
    owner[(owner < 0) | (owner >= n_bars)] = -1
    return owner


# ---- building blocks -------------------------------------------------------------------------------
def drift_t_stat(mid: np.ndarray, window: int) -> np.ndarray:
    """F13a: ``(m_t - m_{t-W}) / (σ̂·sqrt(W))`` with σ̂ the std of the W bar changes (NaN if undefined)."""
    d = np.diff(np.asarray(mid, dtype=np.float64), prepend=np.nan)
    s1, s2, n = _rolling_sum(d, window), _rolling_sum(d * d, window), _rolling_count(d, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 * s1 / n) / (n - 1)
        t = s1 / (np.sqrt(var) * np.sqrt(n))
        ok = (n == window) & (var > 1e-12 * s2 / n)  # a constant mid (or constant steps) has no σ̂
    return np.where(ok, t, np.nan)


def efficiency_ratio(mid: np.ndarray, window: int) -> np.ndarray:
    """F13b: Kaufman ``|m_t - m_{t-W}| / Σ|Δm|`` over W bars (0 when the mid did not move)."""
    d = np.diff(np.asarray(mid, dtype=np.float64), prepend=np.nan)
    net, path, n = _rolling_sum(d, window), _rolling_sum(np.abs(d), window), _rolling_count(d, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        er = np.where(path > 0, np.abs(net) / path, 0.0)
    return np.where(n == window, er, np.nan)


def realised_vol(mid: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """F10: ``sqrt(mean Δm²)`` over the last ``window`` bar changes (ticks per bar)."""
    d = np.diff(np.asarray(mid, dtype=np.float64), prepend=np.nan)
    s2, n = _rolling_sum(d * d, window), _rolling_count(d, window)
    need = window if min_periods is None else min_periods
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= max(need, 1), np.sqrt(s2 / n), np.nan)


def volatility_ratio(mid: np.ndarray, short: int, long: int, min_long: int | None = None) -> np.ndarray:
    """F10 VR: ``σ(short)/σ(long)``; the long window may be partly filled (``min_long`` bars)."""
    num = realised_vol(mid, short)
    den = realised_vol(mid, long, min_periods=2 * short if min_long is None else min_long)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def volume_acceleration(volume: np.ndarray, short: int, long: int) -> np.ndarray:
    """F12: ``(V_short/short) / (V_long/long)`` over the last bars (NaN when ``V_long`` = 0)."""
    v = np.asarray(volume, dtype=np.float64)
    vs, vl, n = _rolling_sum(v, short), _rolling_sum(v, long), _rolling_count(v, long)
    with np.errstate(invalid="ignore", divide="ignore"):
        va = (vs / short) / (vl / long)
    return np.where((n == long) & (vl > 0), va, np.nan)


class EarlierValues:
    """The finite values of the bars seen so far, sorted: all of them, or those of the last ``history`` bars.

    ``causal_quantile`` without a window reads one per bar and then adds the bar's value; the
    incremental regime feature (``ml/regime_feature.py``) keeps the same object between TF2 closes,
    so both compute every quantile the same way. O(history) per bar (a list insert and removal).
    """

    __slots__ = ("history", "recent", "seen")

    def __init__(self, history: int | None = None) -> None:
        self.history = history
        self.seen: list[float] = []
        self.recent: deque[float] = deque()

    def add(self, value: float) -> None:
        """One bar's value (NaN: the bar counts towards ``history`` but adds no value)."""
        finite = math.isfinite(value)
        if self.history is not None:
            self.recent.append(value)
            if len(self.recent) > self.history:
                old = self.recent.popleft()
                if math.isfinite(old):
                    del self.seen[bisect_left(self.seen, old)]
        if finite:
            insort(self.seen, float(value))

    def quantile(self, q: float, min_periods: int) -> float:
        """Quantile ``q`` of the values held (NaN with fewer than ``min_periods``)."""
        return _sorted_quantile(self.seen, q) if len(self.seen) >= min_periods and self.seen else math.nan


def causal_quantile(x: np.ndarray, q: float, window: int | None, min_periods: int,
                    history: int | None = None) -> np.ndarray:
    """Quantile ``q`` of the values before each bar (last ``window`` bars, or all when None).

    ``history`` (only without a window): the values of the last ``history`` earlier bars instead of
    all of them (the live regime feature's bounded history, ``[ml] regime_history_bars``).
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if window is None:
        earlier = EarlierValues(history)
        for i, value in enumerate(x.tolist()):
            out[i] = earlier.quantile(q, min_periods)
            earlier.add(value)
        return out
    if len(x) <= 1:
        return out
    padded = np.concatenate([np.full(window, np.nan), x[:-1]])
    windows = sliding_window_view(padded, window)[: len(x)]
    count = np.isfinite(windows).sum(axis=1)
    full = count == window  # the fast path; nanquantile is slow and only needed for partial windows
    if full.any():
        out[full] = np.quantile(windows[full], q, axis=1)
    partial = ~full & (count >= max(min_periods, 1))
    if partial.any():
        out[partial] = np.nanquantile(windows[partial], q, axis=1)
    return out


def apply_hysteresis(raw: np.ndarray, persist: int = 3, immediate: tuple[int, ...] = (SHOCK,),
                     overlay: bool = False) -> np.ndarray:
    """Keep the previous label until a new raw label has held ``persist`` closes (``immediate`` at once).

    ``overlay``: the ``immediate`` labels also end at once; underneath, the other labels are smoothed
    as if those bars carried the last other raw label, so a SHOCK of a few bars neither resets nor
    outlasts the smoothing of the rest (without it a SHOCK stays until some other raw label has
    held ``persist`` closes, which a flickering raw sequence can delay for minutes).
    """
    raw = np.asarray(raw, dtype=np.int64)
    if overlay and immediate:
        event = np.isin(raw, immediate)
        idx = np.where(event, -1, np.arange(len(raw)))
        np.maximum.accumulate(idx, out=idx)
        under = np.where(idx >= 0, raw[np.maximum(idx, 0)], UNKNOWN)
        under[raw == UNKNOWN] = UNKNOWN
        return np.where(event, raw, apply_hysteresis(under, persist, ()))
    out = np.full(len(raw), UNKNOWN, dtype=np.int64)
    known = raw != UNKNOWN
    if not known.any():
        return out
    start = np.r_[True, raw[1:] != raw[:-1]]
    run_id = np.cumsum(start) - 1
    run_len = np.arange(len(raw)) - np.flatnonzero(start)[run_id] + 1
    accept = known & ((run_len >= persist) | np.isin(raw, immediate))
    accept[np.argmax(known)] = True  # the first known label has nothing to replace
    idx = np.where(accept, np.arange(len(raw)), -1)
    np.maximum.accumulate(idx, out=idx)
    out[idx >= 0] = raw[idx[idx >= 0]]
    out[~known] = UNKNOWN
    return out


# ---- the rule table --------------------------------------------------------------------------------
def shock_condition(x: RegimeInputs, p: RuleParams, reference: RuleReference | None = None,
                    history: int | None = None) -> np.ndarray:
    """Rule 1 (SHOCK) at every bar (thresholds from ``reference`` when given, else from earlier bars;
    ``history`` bounds "all earlier bars" to the last that many)."""
    base, look = p.baseline_bars, p.shock_bars
    sigma_1s: np.ndarray | float
    spread_q: np.ndarray | float
    if reference is None:
        sigma_1s = jump_scale(x, p, history)
        spread_q = causal_quantile(x.spread, p.spread_quantile, p.spread_history_bars or None, p.min_history_bars)
    else:
        sigma_1s, spread_q = reference.jump_sigma, reference.spread_high
    jump = x.max_abs_r1s > p.shock_sigma * sigma_1s
    med_b = causal_quantile(x.depth_bid, 0.5, base, p.min_history_bars)
    med_a = causal_quantile(x.depth_ask, 0.5, base, p.min_history_bars)
    with np.errstate(invalid="ignore", divide="ignore"):
        thin = (x.depth_bid / med_b <= p.depth_ratio) & (x.depth_ask / med_a <= p.depth_ratio)
    halted = ~np.asarray(x.is_open, bool)
    return _any_recent(jump | halted, look) | (x.spread > spread_q) | thin


def jump_scale(x: RegimeInputs, p: RuleParams, history: int | None = None) -> np.ndarray:
    """σ_1s of the SHOCK jump test at every bar, from earlier bars only (NaN while history is short).

    ``rms``: root mean square of the 1 s mid changes of the last ``shock_vol_bars`` bars (0: all).
    ``q99``: the Gaussian-consistent scale of the 99th percentile of ``|r_1s|``, i.e. ``q99 / 2.576``;
    the q99 of single 1 s changes is read as the q90 of the per-bar maxima of ten of them (the
    maximum of ten i.i.d. values stays below the q99 with probability 0.99^10 = 0.90). Under normal
    returns both equal σ; with 1 s kurtosis of 20-50 (small-tick mids, fact 1) the RMS puts "6σ"
    inside the ordinary range (one false jump every few minutes), the q99 scale does not.
    """
    bars = p.shock_vol_bars or None
    if p.jump_scale == "q99":
        q, z = _jump_quantile(p)
        return causal_quantile(x.max_abs_r1s, q, bars, p.min_history_bars, history) / z
    window = bars or len(x.n_r1s)
    prior_ss = _shift(_rolling_sum(x.sum_sq_r1s, window), 1)
    prior_n = _shift(_rolling_sum(x.n_r1s, window), 1)
    prior_bars = _shift(_rolling_count(x.n_r1s, window), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((prior_bars >= p.min_history_bars) & (prior_n > 0), np.sqrt(prior_ss / prior_n), np.nan)


def _jump_quantile(p: RuleParams) -> tuple[float, float]:
    """(quantile of the per-bar maxima of ten 1 s changes, Gaussian z) for the jump scale's tail level."""
    tail = p.jump_tail
    return (1.0 - tail) ** 10, float(NormalDist().inv_cdf(1.0 - tail / 2.0))


def breakout_condition(x: RegimeInputs, p: RuleParams) -> np.ndarray:
    """Rule 2 (BREAKOUT) at every bar."""
    vr = volatility_ratio(x.mid, p.breakout_vol_bars, p.vol_long_bars, min_long=2 * p.vol_short_bars)
    va = volume_acceleration(x.volume, p.va_short_bars, p.va_long_bars)
    lag = p.range_gap_bars + 1
    hi = _shift(_rolling_extreme(x.mid, p.baseline_bars, np.max, p.min_history_bars), lag)
    lo = _shift(_rolling_extreme(x.mid, p.baseline_bars, np.min, p.min_history_bars), lag)
    outside = (x.mid > hi) | (x.mid < lo)
    return (vr >= p.vr_threshold) & (va >= p.va_threshold) & outside


def raw_rule_labels(x: RegimeInputs, p: RuleParams | None = None, vol_reference: np.ndarray | None = None,
                    reference: RuleReference | None = None, history: int | None = None) -> np.ndarray:
    """First-match rule label at every bar before smoothing (UNKNOWN during warm-up).

    ``reference``: thresholds of a training period (``fit_reference``). Without it: ``vol_reference``
    (σ_5min values of a training period, whose q67 is the RANGE_HIGH threshold) or, without that
    either, the causal q67 of all earlier bars of ``x``; SHOCK thresholds from earlier bars.
    """
    p = p or RuleParams()
    sigma5 = realised_vol(x.mid, p.vol_short_bars)
    if reference is not None:
        high = np.full(len(sigma5), reference.range_high)
    else:
        high = vol_threshold(sigma5, p, vol_reference, history)
    conditions = _event_conditions(x, p, reference=reference, history=history) + [(sigma5 >= high, RANGE_HIGH)]
    labels = np.select([c for c, _ in conditions], [lab for _, lab in conditions], default=RANGE_LOW)
    labels[: p.warmup_bars] = UNKNOWN
    return labels.astype(np.int64)


def _event_conditions(x: RegimeInputs, p: RuleParams, centred: bool = False,
                      reference: RuleReference | None = None,
                      history: int | None = None) -> list[tuple[np.ndarray, int]]:
    """Rules 1-4 (SHOCK, BREAKOUT, TREND_UP, TREND_DOWN) as ``(condition, label)`` in rule order.

    ``centred``: the forward-looking variant of SPEC section 5 (training targets only): t_drift and
    ER over the window centred on the bar instead of ending at it.
    """
    t = drift_t_stat(x.mid, p.trend_bars)
    er = efficiency_ratio(x.mid, p.trend_bars)
    if centred:
        t, er = _lead(t, p.trend_bars // 2), _lead(er, p.trend_bars // 2)
    return [
        (shock_condition(x, p, reference, history), SHOCK),
        (breakout_condition(x, p), BREAKOUT),
        ((t >= p.drift_threshold) & (er >= p.er_threshold), TREND_UP),
        ((t <= -p.drift_threshold) & (er >= p.er_threshold), TREND_DOWN),
    ]


def range_reference(x: RegimeInputs, p: RuleParams | None = None, centred: bool = True) -> np.ndarray:
    """σ_5min of a training period at the bars no event rule (1-4) claims: the ranging bars.

    Bars whose 5-min window holds a SHOCK or BREAKOUT bar are left out too.

    Passed as ``vol_reference``, its q67 splits ranging bars into RANGE_LOW and RANGE_HIGH. By
    default the trend rules use the forward-looking (centred) windows, as training targets may.
    """
    p = p or RuleParams()
    sigma5 = realised_vol(x.mid, p.vol_short_bars)
    claimed = np.zeros(len(sigma5), dtype=bool)
    for condition, label in _event_conditions(x, p, centred):
        # a SHOCK or BREAKOUT stays in the σ_5min window for 5 minutes after it
        claimed |= _any_recent(condition, p.vol_short_bars) if label in (SHOCK, BREAKOUT) else condition
    ranging = ~claimed & np.isfinite(sigma5)
    ranging[: p.warmup_bars] = False
    return sigma5[ranging]


def fit_reference(x: RegimeInputs | Sequence[RegimeInputs], p: RuleParams | None = None) -> RuleReference:
    """Fit the training-period thresholds on one instrument's training bars (one or several sessions).

    σ_1s: Gaussian-consistent scale of the q99 of ``|r_1s|`` (see ``jump_scale``); spread: q99 at bar
    closes; RANGE_HIGH: q67 of σ_5min over the ranging bars (``range_reference``, centred trend
    windows). A statistic without data is NaN (its rule then never fires).
    """
    p = p or RuleParams()
    parts = [x] if isinstance(x, RegimeInputs) else list(x)
    maxima = np.concatenate([np.asarray(v.max_abs_r1s)[np.asarray(v.n_r1s) > 0] for v in parts])
    spreads = np.concatenate([np.asarray(v.spread, dtype=np.float64) for v in parts])
    ranging = np.concatenate([range_reference(v, p) for v in parts])
    spreads = spreads[np.isfinite(spreads)]

    def quantile(values: np.ndarray, q: float) -> float:
        return float(np.quantile(values, q)) if len(values) else float("nan")

    q, z = _jump_quantile(p)
    high = two_means_split(np.log(ranging[ranging > 0])) if p.range_high_split == "two_means" else float("nan")
    return RuleReference(jump_sigma=quantile(maxima, q) / z, spread_high=quantile(spreads, p.spread_quantile),
                         range_high=float(np.exp(high)) if np.isfinite(high)
                         else quantile(ranging, p.range_high_quantile))


def two_means_split(values: np.ndarray, iterations: int = 50) -> float:
    """Threshold between the two clusters of 1-D ``values`` (Lloyd's 2-means from the quartiles; NaN if < 2)."""
    v = np.sort(np.asarray(values, dtype=np.float64)[np.isfinite(values)])
    if len(v) < 2 or v[0] == v[-1]:
        return float("nan")
    lo, hi = float(np.quantile(v, 0.25)), float(np.quantile(v, 0.75))
    for _ in range(iterations):
        cut = (lo + hi) / 2.0
        below, above = v[v < cut], v[v >= cut]
        if not len(below) or not len(above):
            break
        new_lo, new_hi = float(below.mean()), float(above.mean())
        if new_lo == lo and new_hi == hi:
            break
        lo, hi = new_lo, new_hi
    return (lo + hi) / 2.0


def regime_rule_labels(x: RegimeInputs, params: RuleParams | None = None, vol_reference: np.ndarray | None = None,
                       reference: RuleReference | None = None, history: int | None = None) -> np.ndarray:
    """SPEC section 5 rule labels at every TF2 close, with hysteresis (UNKNOWN = -1 in warm-up).

    ``history``: the baselines over "all earlier bars" (σ_1s of the jump test, the RANGE_HIGH
    threshold) use the last that many earlier bars only.
    """
    p = params or RuleParams()
    return apply_hysteresis(raw_rule_labels(x, p, vol_reference, reference, history), p.persist, p.immediate,
                            p.overlay)


def vol_threshold(sigma5: np.ndarray, p: RuleParams, reference: np.ndarray | None = None,
                  history: int | None = None) -> np.ndarray:
    """RANGE_HIGH threshold per bar: q67 of ``reference`` (training) or of the earlier bars (the last ``history``)."""
    if reference is None:
        return causal_quantile(sigma5, p.range_high_quantile, None, p.min_history_bars, history)
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    level = float(np.quantile(ref, p.range_high_quantile)) if len(ref) else np.nan
    return np.full(len(sigma5), level)


# ---- scoring ---------------------------------------------------------------------------------------
def macro_f1(pred: np.ndarray, truth: np.ndarray, labels: list[int] | None = None) -> float:
    """Mean one-vs-rest F1 over ``labels`` (default: classes present in ``truth``); UNKNOWN is skipped."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    keep = (pred != UNKNOWN) & (truth != UNKNOWN)
    pred, truth = pred[keep], truth[keep]
    classes = sorted({int(v) for v in truth}) if labels is None else list(labels)
    if not classes:
        return float("nan")
    return float(np.mean([_f1(pred == c, truth == c) for c in classes]))


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = int(np.sum(pred & truth))
    denom = int(pred.sum()) + int(truth.sum())
    return 2.0 * tp / denom if denom else 0.0


def step_values(times: np.ndarray, values: np.ndarray, at: np.ndarray, default: int = UNKNOWN) -> np.ndarray:
    """Value of a step function (last change at or before each time in ``at``)."""
    idx = np.searchsorted(np.asarray(times), np.asarray(at), side="right") - 1
    out = np.full(len(at), default, dtype=np.int64)
    out[idx >= 0] = np.asarray(values, dtype=np.int64)[idx[idx >= 0]]
    return out


# ---- array helpers ---------------------------------------------------------------------------------
def _rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum of the finite values among the last ``window`` entries (the current one included)."""
    c = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(x), x, 0.0))])
    idx = np.arange(1, len(x) + 1)
    return c[idx] - c[np.maximum(idx - window, 0)]


def _rolling_count(x: np.ndarray, window: int) -> np.ndarray:
    return _rolling_sum(np.isfinite(x).astype(np.float64), window)


def _rolling_extreme(x: np.ndarray, window: int, fn, min_periods: int) -> np.ndarray:
    """``fn`` (np.max / np.min) of the last ``window`` finite values, NaN with fewer than min_periods."""
    out = np.full(len(x), np.nan)
    if len(x) == 0:
        return out
    padded = np.concatenate([np.full(window - 1, np.nan), x])
    windows = sliding_window_view(padded, window)
    count = np.isfinite(windows).sum(axis=1)
    ok = count >= max(min_periods, 1)
    if ok.any():
        fill = -np.inf if fn is np.max else np.inf
        out[ok] = fn(np.where(np.isfinite(windows[ok]), windows[ok], fill), axis=1)
    return out


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` delayed by ``k`` bars (NaN-padded)."""
    out = np.full(len(x), np.nan)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def _lead(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` advanced by ``k`` bars: the value ``k`` bars later (NaN-padded at the end)."""
    out = np.full(len(x), np.nan)
    if k < len(x):
        out[: len(x) - k] = x[k:]
    return out


def _any_recent(flag: np.ndarray, window: int) -> np.ndarray:
    """True where ``flag`` held at any of the last ``window`` bars (current included)."""
    return _rolling_sum(flag.astype(np.float64), window) > 0


def _ffill(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    idx = np.maximum.accumulate(np.where(ok, np.arange(len(x)), -1)) if len(x) else np.zeros(0, int)
    out = np.full(len(x), np.nan)
    out[idx >= 0] = x[idx[idx >= 0]]
    return out


def _sorted_quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted list (numpy's default method)."""
    pos = q * (len(values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


__all__ = [
    "UNKNOWN",
    "RuleParams",
    "RegimeInputs",
    "tf2_inputs",
    "drift_t_stat",
    "efficiency_ratio",
    "realised_vol",
    "volatility_ratio",
    "volume_acceleration",
    "causal_quantile",
    "EarlierValues",
    "apply_hysteresis",
    "shock_condition",
    "jump_scale",
    "breakout_condition",
    "raw_rule_labels",
    "range_reference",
    "RuleReference",
    "fit_reference",
    "two_means_split",
    "regime_rule_labels",
    "vol_threshold",
    "macro_f1",
    "step_values",
]
