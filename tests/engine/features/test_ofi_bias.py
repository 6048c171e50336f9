"""F7 OFI bias, persistence and z-scores: hand-computed bars and a naive recomputation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.features.ofi_bias import OfiBias, OfiBiasParams
from tests.engine.features.conftest import drive, make_sample


def bar(t: int, ofi_1s: float, ofi_10s: float = 0.0, ofi_60s: float = 0.0):
    return make_sample(t, flow={"ofi_1s": ofi_1s, "ofi_10s": ofi_10s, "ofi_60s": ofi_60s})


def test_bias_and_persistence_after_up_up_down():
    """OFI +5, +3, -2 over three bars: bias (d^2 + d - 1) / (d^2 + d + 1) with d = 0.5^(1/10), persistence 1/3."""
    feature = OfiBias()
    for t, ofi in ((1, 5), (2, 3), (3, -2)):
        feature.on_sample(bar(t, ofi))
    assert feature.values()["ofi_bias"] == pytest.approx(0.2866272893660264)
    assert feature.values()["ofi_persistence"] == pytest.approx(1 / 3)
    assert feature.values()["ofi_persistence_ready"] == 0.0


def test_z_uses_only_earlier_tf2_closes():
    """Baseline 10, -10, 10 from three TF2 closes scores OFI 25 at 2.298; the third close scored itself without it."""
    feature = OfiBias(OfiBiasParams(baseline_min_samples=3))
    for t, ofi in ((10, 10), (20, -10)):
        feature.on_sample(bar(t, 0, ofi))
    feature.on_sample(bar(30, 0, 10))
    assert feature.values()["ofi_z_10s"] == 0.0  # two earlier closes: not ready yet
    feature.on_sample(bar(31, 0, 25))
    assert feature.values()["ofi_z_10s"] == pytest.approx(2.2980970388562794)
    assert feature.values()["ofi_z_ready"] == 1.0


def test_a_zero_ofi_bar_has_no_persistence():
    """A bar with OFI 0 has no sign: persistence 0 and the bias decays toward 0."""
    feature = OfiBias()
    feature.on_sample(bar(1, 4))
    feature.on_sample(bar(2, 0))
    assert feature.values()["ofi_persistence"] == 0.0
    assert 0 < feature.values()["ofi_bias"] < 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-200, 200), st.integers(-900, 900)),
                min_size=1, max_size=90))
def test_bias_persistence_and_z_equal_a_naive_recomputation(bars):
    """At every close: the bias is the normalised weighted mean of past signs, persistence the share of the
    last 30 signs, and z uses numpy's mean and std of the earlier TF2 values."""
    params = OfiBiasParams(persistence_bars=30, baseline_samples=5, baseline_min_samples=2, sigma_floor=1.0)
    samples = [bar(t + 5, *values) for t, values in enumerate(bars)]
    got = drive(OfiBias(params), samples)
    decay = 0.5 ** (1 / params.half_life_bars)
    signs = np.sign([b[0] for b in bars])
    for i, values in enumerate(got):
        weights = decay ** np.arange(i + 1)[::-1]
        assert values["ofi_bias"] == pytest.approx(np.sum(weights * signs[: i + 1]) / np.sum(weights))
        last = signs[max(0, i - 29): i + 1]
        share = np.mean(last == signs[i]) if signs[i] else 0.0
        assert values["ofi_persistence"] == pytest.approx(share)
        earlier = [b[1] for k, b in enumerate(bars[:i]) if (k + 5) % 10 == 0][-5:]
        expected = (bars[i][1] - np.mean(earlier)) / max(np.std(earlier), 1.0) if len(earlier) >= 2 else 0.0
        assert values["ofi_z_10s"] == pytest.approx(expected, abs=1e-9)
