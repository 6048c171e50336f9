"""The rolling size distribution behind the spoofing and withdrawal auto thresholds: counts, quantile,
mean and std over the last bars equal a recompute from the sizes kept in the window."""

from __future__ import annotations

import math
import statistics

from hypothesis import given
from hypothesis import strategies as st

from engine.detectors.sizes import RollingSizes


def test_a_quantile_is_the_smallest_size_covering_that_share():
    """With 990 one-lot and 10 fifty-lot adds, the 0.99 quantile is 1 and the 0.999 quantile is 50."""
    sizes = RollingSizes()
    for _ in range(990):
        sizes.add(1)
    for _ in range(10):
        sizes.add(50)
    assert sizes.quantile(0.99) == 1 and sizes.quantile(0.999) == 50 and sizes.quantile(1.0) == 50
    assert sizes.mean() == 1.49 and round(sizes.std(), 4) == 4.8754


def test_sizes_leave_the_window_bar_by_bar():
    """With a window of three bars, the sizes of the first bar are gone after the third roll."""
    sizes = RollingSizes(bars=3)
    sizes.add(100)
    sizes.roll()
    sizes.add(5)
    sizes.roll()
    assert sizes.count == 2 and sizes.quantile(1.0) == 100
    sizes.add(7)
    sizes.roll()
    assert sizes.count == 2 and sizes.quantile(1.0) == 7 and sizes.totals == {5: 1, 7: 1} and sizes.mean() == 6.0


def test_an_empty_window_gives_zeros():
    """No sizes: quantile, mean and std are 0, never NaN."""
    sizes = RollingSizes()
    assert (sizes.quantile(0.5), sizes.mean(), sizes.std()) == (0, 0.0, 0.0)


@given(st.lists(st.lists(st.integers(1, 2_000), max_size=20), max_size=30), st.integers(1, 8),
       st.sampled_from([0.5, 0.9, 0.99, 1.0]))
def test_statistics_equal_a_recompute_over_the_window(bars, window, q):
    """Per bar, the statistics equal those recomputed from the sizes of the last ``window`` bars."""
    sizes = RollingSizes(bars=window)
    for i, bar in enumerate(bars):
        for size in bar:
            sizes.add(size)
        kept = [s for b in bars[max(0, i - window + 1): i + 1] for s in b]
        assert sizes.count == len(kept)
        if kept:
            ordered = sorted(kept)
            assert sizes.quantile(q) == ordered[max(0, math.ceil(q * len(kept)) - 1)]
            assert math.isclose(sizes.mean(), statistics.fmean(kept))
            assert math.isclose(sizes.std(), statistics.pstdev(kept), rel_tol=1e-9, abs_tol=1e-9)
        sizes.roll()
