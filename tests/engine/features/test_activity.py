"""F11 trade intensity and F12 volume acceleration: hand-computed counters and a naive recomputation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.features.activity import (
    TradeIntensity,
    TradeIntensityParams,
    VolumeAcceleration,
    VolumeAccelerationParams,
)
from tests.engine.features.conftest import drive, make_sample


def closes(counter: str, per_second: list[int], start: int = 1):
    """Samples at consecutive seconds with a cumulative ``counter`` growing by ``per_second``."""
    total, out = 0, []
    for t, n in enumerate(per_second):
        total += n
        out.append(make_sample(start + t, flow={counter: total}))
    return out


def test_two_orders_a_second_is_an_intensity_of_two():
    """Two aggressive orders every second: intensity 2 over 10 s, EWMA 2, ready after 10 bars."""
    got = drive(TradeIntensity(), closes("orders", [0] + [2] * 10))
    assert got[-1]["trade_intensity"] == pytest.approx(2.0)
    assert got[-1]["trade_intensity_ewma"] == pytest.approx(2.0)
    assert (got[-2]["trade_intensity_ready"], got[-1]["trade_intensity_ready"]) == (0.0, 1.0)


def test_a_burst_scores_a_positive_z():
    """After steady closes of 1 order a second alternating with 3, a 10 s burst of 9 a second scores z > 3."""
    feature = TradeIntensity(TradeIntensityParams(baseline_min_samples=5))
    pattern = [1, 3] * 100 + [9] * 10
    got = drive(feature, closes("orders", pattern, start=1))
    assert got[-1]["trade_intensity"] == pytest.approx(9.0)
    assert got[-1]["trade_intensity_z"] > 3


def test_volume_tripling_gives_log_volume_acceleration():
    """10 lots/s for 300 s then 30 lots/s for 30 s: VA = 30 / 12 = 2.5."""
    got = drive(VolumeAcceleration(), closes("volume", [0] + [10] * 300 + [30] * 30))
    assert got[-1]["volume_accel"] == pytest.approx(2.5)
    assert got[-1]["log_volume_accel"] == pytest.approx(0.9162907318741551)
    assert got[-1]["volume_accel_ready"] == 1.0


def test_a_silent_half_minute_is_floored_not_minus_infinity():
    """10 lots/s for 300 s then nothing for 30 s: V_30s floored at half a lot, log VA = -6.29."""
    got = drive(VolumeAcceleration(), closes("volume", [0] + [10] * 300 + [0] * 30))
    assert got[-1]["log_volume_accel"] == pytest.approx(-6.29156913955832)


def test_no_volume_at_all_is_not_ready():
    """Without any volume VA is 0 and not ready."""
    got = drive(VolumeAcceleration(), closes("volume", [0] * 400))
    assert got[-1] == {"volume_accel": 0.0, "log_volume_accel": 0.0, "volume_accel_ready": 0.0}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=80), st.lists(st.integers(0, 400), min_size=1, max_size=80))
def test_intensity_and_acceleration_equal_a_naive_recount(orders, volume):
    """At every close both features equal a recount of the per-second increments."""
    window = 7
    intensity = drive(TradeIntensity(TradeIntensityParams(window_s=window, ewma_half_life_s=4.0)),
                      closes("orders", orders))
    accel = drive(VolumeAcceleration(VolumeAccelerationParams(short_s=5, long_s=20)), closes("volume", volume))
    decay = 0.5 ** (1 / 4.0)
    for i, values in enumerate(intensity):
        held = min(i, window)
        expected = sum(orders[i - held + 1: i + 1]) / held if held else 0.0
        assert values["trade_intensity"] == pytest.approx(expected)
        if i:
            counts = np.asarray(orders[1: i + 1], dtype=float)
            weights = decay ** np.arange(len(counts))[::-1]
            assert values["trade_intensity_ewma"] == pytest.approx(np.sum(weights * counts) / np.sum(weights))
    for i, values in enumerate(accel):
        long_held, short_held = min(i, 20), min(i, 5)
        long_volume = sum(volume[i - long_held + 1: i + 1]) if long_held else 0
        if not long_volume:
            assert values["log_volume_accel"] == 0.0
            continue
        short_volume = max(sum(volume[i - short_held + 1: i + 1]), 0.5)
        expected = math.log(short_volume / short_held) - math.log(long_volume / long_held)
        assert values["log_volume_accel"] == pytest.approx(expected)
