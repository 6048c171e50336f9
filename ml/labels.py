"""Regime rule labels (SPEC section 5) and their building blocks, vectorised over TF2 bars.

Every input is an array sampled at TF2 (10 s) closes; bar ``t`` covers ``(close_{t-1}, close_t]``.
All statistics are causal: the value at bar ``t`` uses bars ``<= t`` only, and the baselines the
rules compare with (spread q99, depth median, prior range, 1 s volatility, the σ_5min quantile)
use bars ``< t`` only. Window lengths are in bars.

Rule table, first match wins, evaluated at every bar once ``warmup_bars`` have passed:

1. SHOCK: a 1 s mid change above ``6·σ_1s`` in the last 60 s, or spread above the q99 of its
   30-min history, or ``D_10 / median_30min(D_10) <= 0.3`` on both sides, or a bar not fully OPEN
   in the last 60 s;
2. BREAKOUT: ``VR = σ(5 min)/σ(60 min) >= 1.5`` and ``VA = (V_30s/30)/(V_300s/300) >= 1.5`` and the
   mid outside the range of the prior 30 min (that range ends 30 s before the bar, so a move that
   keeps going stays outside it, as in F23);
3. TREND_UP: ``t_drift(20 min) >= 2.5`` and ``ER(20 min) >= 0.2``;
4. TREND_DOWN: ``t_drift(20 min) <= -2.5`` and ``ER(20 min) >= 0.2``;
5. RANGE_HIGH: ``σ_5min >= q67`` of its trailing distribution (all earlier bars), or of a training
   period's σ_5min values when a reference is passed in;
6. RANGE_LOW otherwise.

Smoothing: a label replaces the previous one only once it has been the raw label at 3 consecutive
closes; SHOCK applies at once. Bars before warm-up are ``UNKNOWN`` (-1) and are never scored.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass

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
    persist: int = 3  # hysteresis, closes
    warmup_bars: int = 120


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


def causal_quantile(x: np.ndarray, q: float, window: int | None, min_periods: int) -> np.ndarray:
    """Quantile ``q`` of the values before each bar (last ``window`` bars, or all when None)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if window is None:
        seen: list[float] = []
        for i, value in enumerate(x):
            if len(seen) >= min_periods:
                out[i] = _sorted_quantile(seen, q)
            if np.isfinite(value):
                insort(seen, float(value))
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


def apply_hysteresis(raw: np.ndarray, persist: int = 3, immediate: tuple[int, ...] = (SHOCK,)) -> np.ndarray:
    """Keep the previous label until a new raw label has held ``persist`` closes (``immediate`` at once)."""
    raw = np.asarray(raw, dtype=np.int64)
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
def shock_condition(x: RegimeInputs, p: RuleParams) -> np.ndarray:
    """Rule 1 (SHOCK) at every bar."""
    base, look = p.baseline_bars, p.shock_bars
    vol_bars = p.shock_vol_bars or len(x.n_r1s)
    prior_ss = _shift(_rolling_sum(x.sum_sq_r1s, vol_bars), 1)
    prior_n = _shift(_rolling_sum(x.n_r1s, vol_bars), 1)
    prior_bars = _shift(_rolling_count(x.n_r1s, vol_bars), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma_1s = np.where((prior_bars >= p.min_history_bars) & (prior_n > 0), np.sqrt(prior_ss / prior_n), np.nan)
    jump = x.max_abs_r1s > p.shock_sigma * sigma_1s
    spread_q = causal_quantile(x.spread, p.spread_quantile, base, p.min_history_bars)
    med_b = causal_quantile(x.depth_bid, 0.5, base, p.min_history_bars)
    med_a = causal_quantile(x.depth_ask, 0.5, base, p.min_history_bars)
    with np.errstate(invalid="ignore", divide="ignore"):
        thin = (x.depth_bid / med_b <= p.depth_ratio) & (x.depth_ask / med_a <= p.depth_ratio)
    halted = ~np.asarray(x.is_open, bool)
    return _any_recent(jump | halted, look) | (x.spread > spread_q) | thin


def breakout_condition(x: RegimeInputs, p: RuleParams) -> np.ndarray:
    """Rule 2 (BREAKOUT) at every bar."""
    vr = volatility_ratio(x.mid, p.breakout_vol_bars, p.vol_long_bars, min_long=2 * p.vol_short_bars)
    va = volume_acceleration(x.volume, p.va_short_bars, p.va_long_bars)
    lag = p.range_gap_bars + 1
    hi = _shift(_rolling_extreme(x.mid, p.baseline_bars, np.max, p.min_history_bars), lag)
    lo = _shift(_rolling_extreme(x.mid, p.baseline_bars, np.min, p.min_history_bars), lag)
    outside = (x.mid > hi) | (x.mid < lo)
    return (vr >= p.vr_threshold) & (va >= p.va_threshold) & outside


def raw_rule_labels(x: RegimeInputs, p: RuleParams | None = None,
                    vol_reference: np.ndarray | None = None) -> np.ndarray:
    """First-match rule label at every bar before smoothing (UNKNOWN during warm-up).

    ``vol_reference``: σ_5min values of a training period; its q67 is the RANGE_HIGH threshold.
    Without it the threshold is the causal q67 of all earlier bars of ``x``.
    """
    p = p or RuleParams()
    sigma5 = realised_vol(x.mid, p.vol_short_bars)
    conditions = _event_conditions(x, p) + [(sigma5 >= vol_threshold(sigma5, p, vol_reference), RANGE_HIGH)]
    labels = np.select([c for c, _ in conditions], [lab for _, lab in conditions], default=RANGE_LOW)
    labels[: p.warmup_bars] = UNKNOWN
    return labels.astype(np.int64)


def _event_conditions(x: RegimeInputs, p: RuleParams, centred: bool = False) -> list[tuple[np.ndarray, int]]:
    """Rules 1-4 (SHOCK, BREAKOUT, TREND_UP, TREND_DOWN) as ``(condition, label)`` in rule order.

    ``centred``: the forward-looking variant of SPEC section 5 (training targets only): t_drift and
    ER over the window centred on the bar instead of ending at it.
    """
    t = drift_t_stat(x.mid, p.trend_bars)
    er = efficiency_ratio(x.mid, p.trend_bars)
    if centred:
        t, er = _lead(t, p.trend_bars // 2), _lead(er, p.trend_bars // 2)
    return [
        (shock_condition(x, p), SHOCK),
        (breakout_condition(x, p), BREAKOUT),
        ((t >= p.drift_threshold) & (er >= p.er_threshold), TREND_UP),
        ((t <= -p.drift_threshold) & (er >= p.er_threshold), TREND_DOWN),
    ]


def range_reference(x: RegimeInputs, p: RuleParams | None = None, centred: bool = True) -> np.ndarray:
    """σ_5min of a training period at the bars no event rule (1-4) claims: the ranging bars.

    Passed as ``vol_reference``, its q67 splits ranging bars into RANGE_LOW and RANGE_HIGH. By
    default the trend rules use the forward-looking (centred) windows, as training targets may.
    """
    p = p or RuleParams()
    sigma5 = realised_vol(x.mid, p.vol_short_bars)
    claimed = np.zeros(len(sigma5), dtype=bool)
    for condition, _ in _event_conditions(x, p, centred):
        claimed |= condition
    ranging = ~claimed & np.isfinite(sigma5)
    ranging[: p.warmup_bars] = False
    return sigma5[ranging]


def regime_rule_labels(x: RegimeInputs, params: RuleParams | None = None,
                       vol_reference: np.ndarray | None = None) -> np.ndarray:
    """SPEC section 5 rule labels at every TF2 close, with hysteresis (UNKNOWN = -1 in warm-up)."""
    p = params or RuleParams()
    return apply_hysteresis(raw_rule_labels(x, p, vol_reference), p.persist, (SHOCK,))


def vol_threshold(sigma5: np.ndarray, p: RuleParams, reference: np.ndarray | None = None) -> np.ndarray:
    """RANGE_HIGH threshold per bar: q67 of ``reference`` (training) or of the earlier bars."""
    if reference is None:
        return causal_quantile(sigma5, p.range_high_quantile, None, p.min_history_bars)
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
    "apply_hysteresis",
    "shock_condition",
    "breakout_condition",
    "raw_rule_labels",
    "range_reference",
    "regime_rule_labels",
    "vol_threshold",
    "macro_f1",
    "step_values",
]
