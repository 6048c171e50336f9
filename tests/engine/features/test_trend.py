"""F13 trend strength: hand-computed drift t, efficiency ratio and OLS t, and a naive recomputation
(numpy and scipy's linregress) on random mid paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import linregress

from engine.features.trend import TrendParams, TrendStrength
from tests.engine.features.conftest import drive, make_sample, mid2_series

FOUR = TrendParams(windows_s=(40,), tf_bars=3)


def tf2_path(mids: list[int]):
    """Bar-close samples every second whose TF2 closes (every 10 s) show ``mids``; the mid is constant
    in between."""
    out = []
    for k, mid in enumerate(mids):
        for s in range(10):
            t = 10 * (k + 1) + s
            out.append(make_sample(t, bid=mid - 1, ask=mid + 1))
    return out


def test_drift_t_efficiency_and_ols_t_of_a_hand_path():
    """TF2 mids 1000, 1001, 1003, 1003, 1004: t_drift 4/sqrt(4 * 2/3), ER 1, OLS slope t 6.1237."""
    values = drive(TrendStrength(FOUR), tf2_path([1000, 1001, 1003, 1003, 1004]))[-10]
    assert values["t_drift_40s"] == pytest.approx(2.449489742783178)
    assert values["efficiency_ratio_40s"] == 1.0
    assert values["trend_t_40s"] == pytest.approx(6.123724356957945)
    assert values["trend_ready_40s"] == 1.0


def test_a_reversal_halves_the_efficiency_ratio():
    """Changes +2, -1, +1, 0: net 2 over a path of 4, ER 0.5."""
    values = drive(TrendStrength(FOUR), tf2_path([1000, 1002, 1001, 1002, 1002]))[-10]
    assert values["efficiency_ratio_40s"] == pytest.approx(0.5)


def test_a_straight_line_has_a_finite_t():
    """A mid rising one tick every bar has zero spread of changes: the floor keeps t finite and large."""
    values = drive(TrendStrength(FOUR), tf2_path([1000, 1001, 1002, 1003, 1004]))[-10]
    assert math.isfinite(values["t_drift_40s"]) and values["t_drift_40s"] > 10
    assert math.isfinite(values["trend_t_40s"]) and values["trend_t_40s"] > 10


def test_a_flat_mid_has_no_trend():
    """A mid that never moves: every statistic 0 (no division by zero)."""
    values = drive(TrendStrength(FOUR), tf2_path([1000] * 6))[-10]
    assert (values["t_drift_40s"], values["efficiency_ratio_40s"], values["trend_t_40s"]) == (0.0, 0.0, 0.0)


def test_timeframe_drift_uses_each_frames_own_closes():
    """Per timeframe, t_drift over the last 3 bars: TF1 sees 1 s changes, TF3 waits for 4 minute closes."""
    mids = [1000 + (t // 7) for t in range(1, 250)]  # a slow staircase
    got = drive(TrendStrength(FOUR), [make_sample(t, bid=m - 1, ask=m + 1) for t, m in zip(range(1, 250), mids,
                                                                                               strict=True)])
    assert got[-1]["t_drift_tf1_ready"] == 1.0 and got[-1]["t_drift_tf3_ready"] == 1.0
    assert got[178]["t_drift_tf3_ready"] == 0.0  # by 179 s only the TF3 closes at 60 and 120 s exist
    assert got[-1]["t_drift_tf3"] > 0


def drift(changes: np.ndarray, floor: float) -> float:
    n = len(changes)
    sigma = max(float(np.std(changes, ddof=1)), floor)
    return float(changes.sum()) / (sigma * math.sqrt(n))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 9)), min_size=20, max_size=260))
def test_statistics_equal_a_naive_recomputation(steps):
    """At every TF2 close t_drift, ER and the OLS t equal numpy/scipy over the carried mids; so does
    t_drift per timeframe at its own closes."""
    samples, mid = [], 1000
    for t, (move, flag) in enumerate(steps, start=1):
        mid += move
        samples.append(make_sample(t, bid=None if flag == 0 else mid - 1, ask=mid + 1))  # some one-sided closes
    params = TrendParams(windows_s=(50,), tf_bars=4, sigma_floor_ticks=0.05)
    got = drive(TrendStrength(params), samples)
    mids = mid2_series(samples)
    for i, values in enumerate(got):
        for frame, seconds in ((1, 1), (2, 10), (3, 60)):
            points = [mids[k] / 2 for k in range(i + 1) if samples[k].ts_recv % (seconds * 10**9) == 0
                      and mids[k] is not None]
            changes = np.diff(points)
            if len(changes) >= 4 and (i == len(got) - 1 or samples[i].ts_recv % (seconds * 10**9) == 0):
                assert values[f"t_drift_tf{frame}"] == pytest.approx(drift(changes[-4:], 0.05)), (frame, i)
            if frame == 2 and len(changes) >= 5 and samples[i].ts_recv % (10 * 10**9) == 0:
                window = changes[-5:]
                assert values["t_drift_50s"] == pytest.approx(drift(window, 0.05))
                path = np.abs(window).sum()
                assert values["efficiency_ratio_50s"] == pytest.approx(abs(window.sum()) / path if path else 0.0)
                ys = np.asarray(points[-6:])
                fit = linregress(np.arange(6), ys)
                if fit.stderr * math.sqrt(np.sum((np.arange(6) - 2.5) ** 2)) > 0.06:  # residual sd above the floor
                    assert values["trend_t_50s"] == pytest.approx(fit.slope / fit.stderr)
