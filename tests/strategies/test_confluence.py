"""Confluence (SPEC 4): the families' C from the per-timeframe evidence, the gate matrix, the regime hysteresis."""

from __future__ import annotations

import math

import pytest

from engine.config.strategies import ConfluenceParams
from strategies.confluence import Confluence
from tests.strategies.helpers import tracker


def test_reversal_confluence_follows_the_formula():
    """C = 0.5 eps d_1s + 0.3 (1 - |d_10s|) + 0.2 (1 + eps d_60s) / 2."""
    c = tracker(0.6, -0.2, -0.4)
    assert c.reversal(1) == pytest.approx(0.5 * 0.6 + 0.3 * 0.8 + 0.2 * 0.6 / 2)
    assert c.reversal(-1) == pytest.approx(-0.3 + 0.24 + 0.2 * 1.4 / 2)
    assert c.confluence("sweep_reversal", 1) == (pytest.approx(0.6), True)


def test_reversal_needs_the_fast_frame_turned_and_the_slow_frame_not_strongly_against():
    """eps d_1s > 0 and eps d_60s > -0.6, and |d_10s| not rising over the last 3 closes."""
    assert not tracker(-0.1, 0.0, 0.0).reversal_ok(1)
    assert not tracker(0.9, 0.0, -0.7).reversal_ok(1)
    rising = tracker(0.9, 0.0, 0.0)
    rising.frames["10s"].history.extend([0.1, 0.2, 0.5])
    assert not rising.reversal_ok(1)
    assert tracker(0.9, 0.0, 0.0).reversal_ok(1)


def test_exhaustion_reads_only_the_closes_whose_z_scores_were_in_use():
    """SPEC 4.3's |d_10s| over the last 3 closes: a warm-up close (no z-scores yet, d from the drift alone) is no
    d_TF and stays out of the history; the first ready closes, -1.0 then -0.55 (exhausting), pass."""
    c = Confluence(ConfluenceParams(z_min_samples=3))
    frame = c.frames["10s"]
    for ofi in (0.0, 50.0, -50.0):  # warm-up: d is the drift term alone
        frame.close({"ofi_10s": ofi, "micro_lean": 0.0, "cvd": 0.0, "t_drift_tf2": 0.5, "t_drift_tf2_ready": 1.0},
                    "ofi_10s", "t_drift_tf2")
        assert frame.d == pytest.approx(math.tanh(0.5 / 3 / 2))
    assert list(frame.history) == []
    frame.close({"ofi_10s": -400.0, "micro_lean": 0.0, "cvd": 0.0, "t_drift_tf2": 0.0, "t_drift_tf2_ready": 1.0},
                "ofi_10s", "t_drift_tf2")
    assert len(frame.history) == 1 and frame.history[0] < -0.5
    frame.history.append(-0.55)
    c.frames["1s"].d = 0.9
    assert c.reversal_ok(1)
    frame.history.appendleft(0.09)  # a warm-up close counted as the third: |-0.55| > |0.09| would fail
    assert not c.reversal_ok(1)


def test_trend_confluence_weights_the_ready_frames():
    """C = sum w eps d / sum w over the frames with evidence (0.2, 0.3, 0.5); unready frames drop out."""
    assert tracker(0.5, 0.4, 0.2).trend(1) == pytest.approx(0.2 * 0.5 + 0.3 * 0.4 + 0.5 * 0.2)
    assert tracker(0.5, 0.4, 0.2, ready=(True, False, False)).trend(-1) == pytest.approx(-0.5)
    assert tracker(0.5, 0.4, 0.2, ready=(False, False, False)).trend(1) == 0.0


@pytest.mark.parametrize(("regime", "strategy", "side", "factor"), [
    ("", "mean_reversion", 1, 1.0),
    ("SHOCK", "sweep_reversal", 1, 0.0),
    ("SHOCK", "vacuum_entry", 1, 1.0),
    ("TREND_UP", "mean_reversion", -1, 0.0),
    ("BREAKOUT", "mean_reversion", 1, 0.0),
    ("RANGE_LOW", "vacuum_entry", 1, 0.0),
    ("RANGE_HIGH", "vacuum_entry", 1, 1.0),
    ("TREND_UP", "sweep_reversal", -1, 0.5),
    ("TREND_UP", "sweep_reversal", 1, 1.0),
])
def test_the_gate_matrix(regime, strategy, side, factor):
    """SPEC 4.7's default gates; an unknown regime gates nothing."""
    c = Confluence()
    c.regime = regime
    assert c.gate(strategy, side) == factor


def values(drift: float, shock: float = 0.0) -> dict[str, float]:
    return {"trend_ready_20m": 1.0, "t_drift_20m": drift, "efficiency_ratio_20m": 0.5, "shock_jump_count": shock,
            "rv_60s_5m": 1.0}


def test_a_new_regime_label_must_persist_three_closes_but_shock_applies_at_once():
    """Hysteresis: TREND_UP replaces RANGE_LOW on the third consecutive close; SHOCK at once."""
    c = Confluence()
    c.update_regime(values(0.0))
    assert c.regime == "RANGE_LOW"
    for expected in ("RANGE_LOW", "RANGE_LOW", "TREND_UP"):
        c.update_regime(values(3.0))
        assert c.regime == expected
    c.update_regime(values(3.0, shock=1.0))
    assert c.regime == "SHOCK"
    assert math.isclose(Confluence().reversal(1), 0.3 + 0.1)
