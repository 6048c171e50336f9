"""The bar-series building blocks: rolling sums (past their periodic recomputation), the rolling
median, the usable mid, the EWMA and the bar-boundary trigger."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import CROSSED, HALTED, STALE
from engine.features.series import REFRESH, BoundaryTrigger, Ewma, RollingMedian, RollingSums, usable_mid2
from tests.engine.features.conftest import NS, make_sample


def test_rolling_sums_stay_exact_past_the_periodic_recomputation():
    """Windows 1, 7 and 50 over 2.5 x REFRESH pushes of (int, float) equal numpy's sums of the tail."""
    rng = np.random.default_rng(7)
    sums = RollingSums((1, 7, 50), 2)
    values = []
    for k in range(int(2.5 * REFRESH)):
        item = (int(rng.integers(-9, 10)), float(rng.normal()))
        sums.push(item)
        values.append(item)
        if k % 997 == 0 or k > 2 * REFRESH:
            for index, window in enumerate((1, 7, 50)):
                tail = np.asarray(values[-window:])
                assert sums.total(index)[0] == int(tail[:, 0].sum())
                assert sums.total(index)[1] == pytest.approx(tail[:, 1].sum(), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3_000), st.integers(1, 500)), min_size=1, max_size=80))
def test_rolling_median_equals_the_median_of_the_window(arrivals):
    """After each value the median equals statistics.median of the values within the last 2 s."""
    median = RollingMedian(2 * NS)
    seen, ts = [], 0
    for gap_ms, value in arrivals:
        ts += gap_ms * 1_000_000
        median.add(ts, value)
        seen.append((ts, value))
        inside = [v for t, v in seen if t > ts - 2 * NS]
        got, want = median.median(ts), statistics.median(inside)
        assert got == want and type(got) is type(want)  # an int median stays an int


def test_rolling_median_stays_exact_across_compactions_of_its_window():
    """5,000 values a millisecond apart through a 0.5 s window, asked every 50 values: each answer is the
    median of the window's values, recounted, while the window drops its dead front several times."""
    median = RollingMedian(NS // 2)
    rng = np.random.default_rng(5)
    seen: list[tuple[int, int]] = []
    for k in range(5_000):
        ts = k * 1_000_000
        value = int(rng.integers(1, 200))
        median.add(ts, value)
        seen.append((ts, value))
        if k % 50 == 49:
            inside = [v for t, v in seen if t > ts - NS // 2]
            assert median.median(ts) == statistics.median(inside)
            assert len(median.ordered) == len(median.times) - median.head == len(inside)
            assert len(median.times) <= 1_025 + 2 * len(inside)  # the dead front is dropped


def test_usable_mid_needs_two_sides_an_uncrossed_touch_and_no_stale_or_crossed_flag():
    """Only a two-sided, uncrossed, unflagged view has a usable mid; a halted book keeps its mid."""
    assert usable_mid2(make_sample(1).view) == 2002
    assert usable_mid2(make_sample(1, bid=None).view) is None
    assert usable_mid2(make_sample(1, bid=1002, ask=1002).view) is None
    assert usable_mid2(make_sample(1, state=STALE).view) is None
    assert usable_mid2(make_sample(1, state=CROSSED).view) is None
    assert usable_mid2(make_sample(1, state=HALTED).view) == 2002


def test_ewma_is_bias_corrected():
    """A constant input gives that constant from the first step; a step halves its distance after one half-life."""
    ewma = Ewma(4.0)
    assert ewma.add(3.0) == pytest.approx(3.0)
    for _ in range(200):
        ewma.add(3.0)
    for _ in range(4):
        value = ewma.add(5.0)
    assert value == pytest.approx(4.0, abs=1e-6)


def test_boundary_trigger_fires_once_per_boundary_and_never_between():
    """A 10 s trigger fires at 10 s and 20 s once each, not at 15 s or at a repeated 20 s."""
    trigger = BoundaryTrigger(10 * NS)
    assert [trigger.crossed(t * NS) for t in (10, 15, 20, 20)] == [True, False, True, False]
