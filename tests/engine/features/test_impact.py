"""F14 Kyle's lambda and Amihud: hand-computed bars and a naive numpy recomputation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.features.impact import ImpactParams, PriceImpact
from tests.engine.features.conftest import drive, make_sample


def tf2_bars(rows):
    """TF2 closes (10 s apart) with (mid ticks, cvd, notional)."""
    return [make_sample(10 * (k + 1), bid=mid - 1, ask=mid + 1, flow={"cvd": cvd, "notional": notional})
            for k, (mid, cvd, notional) in enumerate(rows)]


def test_mid_moving_one_tick_per_hundred_lots_is_a_lambda_of_one_hundredth():
    """Bars (dm, Q) = (+1, +100), (-1, -100), (+2, +200): lambda 0.01 tick per lot; Amihud the mean |r| per million."""
    rows = [(1000, 0, 0), (1001, 100, 1_000_000), (1000, 0, 2_000_000), (1002, 200, 3_000_000)]
    values = drive(PriceImpact(), tf2_bars(rows))[-1]
    assert values["kyle_lambda"] == pytest.approx(0.01)
    assert values["amihud"] == pytest.approx(13.323344429466347)
    assert values["kyle_lambda_ready"] == 0.0


def test_constant_signed_volume_has_lambda_zero():
    """Var(Q) = 0 (the same signed volume every bar): lambda is 0, not a division by zero."""
    rows = [(1000 + k, 50 * k, 0) for k in range(6)]
    values = drive(PriceImpact(), tf2_bars(rows))[-1]
    assert values["kyle_lambda"] == 0.0 and values["amihud"] == 0.0


def test_lambda_z_is_scored_against_earlier_windows():
    """After a long regime of lambda 0.01, a window where price moves twice as much scores a positive z."""
    rows, mid, cvd = [], 1000, 0
    for k in range(60):
        q = 100 if k % 2 else -100
        scale = 1 if k < 45 else 4
        mid, cvd = mid + scale * q // 100, cvd + q
        rows.append((mid, cvd, 1_000_000))
    feature = PriceImpact(ImpactParams(bars=8, baseline_min_samples=5))
    got = drive(feature, tf2_bars(rows))
    assert got[40]["kyle_lambda"] == pytest.approx(0.01)
    assert got[-1]["kyle_lambda"] == pytest.approx(0.04) and got[-1]["kyle_lambda_z"] > 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-500, 500), st.integers(0, 3)), min_size=2, max_size=60))
def test_lambda_and_amihud_equal_a_naive_recomputation(bars):
    """At every TF2 close lambda = cov/var and Amihud = mean |r|/notional over the last N bars, by numpy."""
    rows, mid, cvd, notional = [(1000, 0, 0)], 1000, 0, 0
    for move, q, traded in bars:
        mid, cvd, notional = mid + move, cvd + q, notional + traded * 250_000
        rows.append((mid, cvd, notional))
    n = 12
    got = drive(PriceImpact(ImpactParams(bars=n)), tf2_bars(rows))
    for i in range(1, len(rows)):
        window = range(max(1, i - n + 1), i + 1)
        dm = np.array([rows[k][0] - rows[k - 1][0] for k in window], dtype=float)
        q = np.array([rows[k][1] - rows[k - 1][1] for k in window], dtype=float)
        var = np.var(q)
        expected = float(np.mean((dm - dm.mean()) * (q - q.mean())) / var) if var > 1e-12 else 0.0
        assert got[i]["kyle_lambda"] == pytest.approx(expected, abs=1e-12)
        ratios = [1e4 * abs(math.log(rows[k][0] / rows[k - 1][0])) / ((rows[k][2] - rows[k - 1][2]) / 1e6)
                  for k in window if rows[k][2] > rows[k - 1][2]]
        assert got[i]["amihud"] == pytest.approx(np.mean(ratios) if ratios else 0.0)
