"""Tests of ml.labels: regime rule building blocks, the rule table, hysteresis and macro-F1."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from engine.events import Regime
from ml.labels import (
    UNKNOWN,
    RegimeInputs,
    RuleParams,
    RuleReference,
    apply_hysteresis,
    breakout_condition,
    causal_quantile,
    drift_t_stat,
    efficiency_ratio,
    fit_reference,
    jump_scale,
    macro_f1,
    raw_rule_labels,
    realised_vol,
    regime_rule_labels,
    shock_condition,
    step_values,
    tf2_inputs,
    two_means_split,
    volatility_ratio,
    volume_acceleration,
)

RL, RH, TU, TD, BO, SH = (int(Regime.RANGE_LOW), int(Regime.RANGE_HIGH), int(Regime.TREND_UP),
                          int(Regime.TREND_DOWN), int(Regime.BREAKOUT), int(Regime.SHOCK))


def test_drift_t_stat_hand_example():
    """Changes 1, 2, -1, 2 sum to 4 with sample std sqrt(2): t = 4 / (sqrt(2)·2)."""
    t = drift_t_stat(np.array([0.0, 1, 3, 2, 4]), 4)
    assert np.isnan(t[:4]).all()
    assert t[4] == pytest.approx(4 / (np.sqrt(2) * 2))


def test_drift_t_stat_is_standard_normal_on_a_random_walk():
    """On a driftless Gaussian walk, t over disjoint 120-bar windows has mean 0 and std 1."""
    mid = np.cumsum(np.random.default_rng(3).normal(0, 2.5, 120 * 2000 + 1))
    t = drift_t_stat(mid, 120)[120::120]
    assert abs(t.mean()) < 0.08 and t.std() == pytest.approx(1.0, abs=0.06)


def test_drift_t_stat_undefined_on_constant_mid():
    """A constant mid has no σ̂, so the t-statistic is NaN, not infinite."""
    assert np.isnan(drift_t_stat(np.full(10, 5.0), 3)).all()


def test_efficiency_ratio_examples():
    """ER is |net move| / path length: 0.5 for 0,1,0,1,2; 1 for a straight line; 0 when flat."""
    assert efficiency_ratio(np.array([0.0, 1, 0, 1, 2]), 4)[4] == pytest.approx(0.5)
    assert efficiency_ratio(np.arange(6.0), 5)[5] == pytest.approx(1.0)
    assert efficiency_ratio(np.zeros(6), 5)[5] == 0.0


def test_volatility_ratio_of_a_doubled_step_size():
    """After 40 steps of ±1 then 10 of ±2, σ(10)/σ(50) = 2 / sqrt((40 + 40) / 50)."""
    steps = np.r_[np.tile([1.0, -1.0], 20), np.tile([2.0, -2.0], 5)]
    mid = np.r_[0.0, np.cumsum(steps)]
    assert volatility_ratio(mid, 10, 50)[-1] == pytest.approx(2 / np.sqrt(80 / 50))
    assert realised_vol(mid, 10)[-1] == pytest.approx(2.0)


def test_volume_acceleration_examples():
    """Constant volume gives VA = 1; tripled volume in the last 3 of 30 bars gives 30 / 12 = 2.5."""
    v = np.full(40, 10.0)
    assert volume_acceleration(v, 3, 30)[-1] == pytest.approx(1.0)
    v[-3:] = 30.0
    assert volume_acceleration(v, 3, 30)[-1] == pytest.approx(2.5)
    assert np.isnan(volume_acceleration(np.zeros(40), 3, 30)[-1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=60), st.integers(2, 15),
       st.sampled_from([0.5, 0.67, 0.99]), st.booleans())
def test_causal_quantile_equals_naive_loop(values, window, q, expanding):
    """The causal quantile at t equals np.quantile of the values strictly before t (window or all)."""
    x = np.array(values)
    got = causal_quantile(x, q, None if expanding else window, 2)
    for t in range(len(x)):
        past = x[:t] if expanding else x[max(0, t - window):t]
        want = np.quantile(past, q) if len(past) >= 2 else np.nan
        assert (np.isnan(got[t]) and np.isnan(want)) or got[t] == pytest.approx(want)


def test_hysteresis_on_a_hand_built_sequence():
    """A new label needs 3 consecutive raw closes to take over; SHOCK takes over at once."""
    raw = [UNKNOWN, RL, RL, TU, TU, RL, TU, TU, TU, SH, RL, RL, RL, RH]
    want = [UNKNOWN, RL, RL, RL, RL, RL, RL, RL, TU, SH, SH, SH, RL, RL]
    assert apply_hysteresis(np.array(raw)).tolist() == want


def test_hysteresis_keeps_unknown_bars_unknown():
    """Warm-up bars stay UNKNOWN and the first known label applies at once."""
    assert apply_hysteresis(np.array([UNKNOWN, UNKNOWN, TD, RL])).tolist() == [UNKNOWN, UNKNOWN, TD, TD]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=50))
def test_macro_f1_equals_sklearn_over_truth_classes(pairs):
    """macro_f1 equals sklearn's macro F1 restricted to the classes present in the truth."""
    pred, truth = np.array(pairs).T
    want = f1_score(truth, pred, labels=sorted(set(truth.tolist())), average="macro", zero_division=0)
    assert macro_f1(pred, truth) == pytest.approx(want)


def test_step_values_reads_the_last_change_at_or_before():
    """A step function sampled at times before, at and after its changes."""
    got = step_values(np.array([10, 20]), np.array([TU, RL]), np.array([5, 10, 15, 20, 99]))
    assert got.tolist() == [UNKNOWN, TU, TU, RL, RL]


def test_tf2_inputs_aggregates_one_second_samples_into_bars():
    """Bars close every 3 samples from index 2; changes, volume and halts fall in their bar."""
    mid = np.array([0.0, 1, 3, 3, 2, 8, 8])
    x = tf2_inputs(mid, np.arange(7.0), np.ones(7), np.ones(7), np.arange(7.0), np.array([1, 1, 1, 1, 0, 1, 1], bool),
                   per_bar=3, first_close=2)
    assert x.mid.tolist() == [3, 8]
    assert x.spread.tolist() == [2, 5]
    assert x.max_abs_r1s.tolist() == [2, 6]
    assert x.sum_sq_r1s.tolist() == [1 + 4, 0 + 1 + 36]
    assert x.n_r1s.tolist() == [2, 3]
    assert x.volume.tolist() == [0 + 1 + 2, 3 + 4 + 5]
    assert x.is_open.tolist() == [True, False]


def inputs(n: int, *, mid=None, spread=None, depth_bid=None, depth_ask=None, volume=None, is_open=None,
           jump=None) -> RegimeInputs:
    """TF2 inputs of a quiet market (σ_1s = 1 tick) with the given series replaced."""
    mid = np.cumsum(np.random.default_rng(0).normal(0, 1, n)) if mid is None else mid
    flat = np.full(n, 100.0)
    return RegimeInputs(
        mid=mid, spread=np.full(n, 3.0) if spread is None else spread,
        depth_bid=flat if depth_bid is None else depth_bid, depth_ask=flat if depth_ask is None else depth_ask,
        volume=np.full(n, 50.0) if volume is None else volume,
        is_open=np.ones(n, bool) if is_open is None else is_open,
        max_abs_r1s=np.full(n, 2.0) if jump is None else jump, sum_sq_r1s=np.full(n, 10.0),
        n_r1s=np.full(n, 10.0))


def spike(n: int, at: int, base: float, value: float) -> np.ndarray:
    out = np.full(n, base)
    out[at] = value
    return out


def test_shock_rules_fire_on_halt_spread_depth_and_jump():
    """Each SHOCK condition alone triggers it: a halt or a 6σ jump (for 60 s), a spread spike, a thin book."""
    p, n = RuleParams(jump_scale="rms", spread_history_bars=180), 300
    halted = spike(n, 200, 1, 0).astype(bool)
    assert shock_condition(inputs(n, is_open=halted), p).nonzero()[0].tolist() == list(range(200, 206))
    assert shock_condition(inputs(n, jump=spike(n, 270, 2.0, 6.5)), p).nonzero()[0].tolist() == list(range(270, 276))
    assert not shock_condition(inputs(n, jump=spike(n, 270, 2.0, 5.9)), p).any()
    assert shock_condition(inputs(n, spread=spike(n, 250, 3.0, 4.0)), p).nonzero()[0].tolist() == [250]
    thin = spike(n, 260, 100.0, 25.0)
    assert not shock_condition(inputs(n, depth_bid=thin), p).any()  # one thin side is not enough
    assert shock_condition(inputs(n, depth_bid=thin, depth_ask=thin), p).nonzero()[0].tolist() == [260]


def test_breakout_needs_vol_and_volume_expansion_outside_the_range():
    """A flat-ish range then a fast high-volume escape is a BREAKOUT; without volume it is not."""
    rng = np.random.default_rng(5)
    n = 600
    mid = np.r_[np.cumsum(rng.normal(0, 1, 560)), np.zeros(40)]
    mid[560:] = mid[559] + np.cumsum(np.full(40, 4.0))
    volume = np.full(n, 50.0)
    volume[560:] = 200.0
    p = RuleParams()
    assert breakout_condition(inputs(n, mid=mid, volume=volume), p)[565:575].all()
    assert not breakout_condition(inputs(n, mid=mid, volume=volume), p)[:560].any()
    assert not breakout_condition(inputs(n, mid=mid), p)[565:600].any()


def test_rule_order_first_match_wins():
    """A halt during a strong trend is labelled SHOCK, not TREND_UP."""
    n = 400
    mid = np.arange(n, dtype=float) * 2 + np.random.default_rng(1).normal(0, 1, n)
    halted = np.ones(n, bool)
    halted[300] = False
    raw = raw_rule_labels(inputs(n, mid=mid, is_open=halted))
    assert raw[299] == TU and raw[300] == SH
    assert (raw[:120] == UNKNOWN).all()


def planted_path(seed: int, drift: float = 0.15, seg_s: int = 7200):
    """1 s mids with planted regimes: range low/high (σ 1 / 1.6 ticks/√s) and drifts of ±drift/s."""
    rng = np.random.default_rng(seed)
    order = [RL, RH, TU, RL, RH, TD]
    level, mids, truth = 10_000.0, [], []
    for reg in order:
        mu = {TU: drift, TD: -drift}.get(reg, 0.0)
        m = level + np.cumsum(rng.normal(mu, 1.6 if reg == RH else 1.0, seg_s))
        level = m[-1]
        mids.append(m)
        truth.append(np.full(seg_s, reg))
    mid, truth = np.concatenate(mids), np.concatenate(truth)
    n = len(mid)
    x = tf2_inputs(mid, np.full(n, 2.0), np.full(n, 500.0), np.full(n, 500.0), np.full(n, 10.0),
                   np.ones(n, bool), per_bar=10, first_close=9)
    return x, truth[9::10][: len(x.mid)]


def test_planted_regimes_are_recovered():
    """Planted range/trend segments of 2 h are recovered with macro-F1 >= 0.85 and recall >= 0.75."""
    x, truth = planted_path(11)
    pred = regime_rule_labels(x, vol_reference=realised_vol(x.mid, 30))
    assert macro_f1(pred, truth) >= 0.85
    for c in (RL, RH, TU, TD):
        sel = (truth == c) & (pred != UNKNOWN)
        assert np.mean(pred[sel] == c) >= 0.75


def test_causal_vol_threshold_still_separates_the_ranges():
    """Without a training reference, the causal q67 still gives macro-F1 >= 0.8 on the planted path."""
    x, truth = planted_path(12)
    assert macro_f1(regime_rule_labels(x), truth) >= 0.8


def test_q99_jump_scale_is_gaussian_consistent_and_resists_heavy_tails():
    """The tail σ_1s equals the RMS for Gaussian 1 s changes and is twice it for Student-t(3) ones."""
    rng = np.random.default_rng(21)
    n = 8000
    for draws, gaussian in ((rng.normal(0, 2.0, (n, 10)), True), (rng.standard_t(3, (n, 10)), False)):
        x = inputs(n, jump=np.abs(draws).max(axis=1))
        x = RegimeInputs(**{**{k: getattr(x, k) for k in x.__slots__}, "sum_sq_r1s": (draws**2).sum(axis=1)})
        tail = jump_scale(x, RuleParams())[-1]  # q99.9 of |r_1s| / 3.29
        rms = jump_scale(x, RuleParams(jump_scale="rms"))[-1]
        if gaussian:
            assert tail == pytest.approx(rms, rel=0.06) and rms == pytest.approx(2.0, rel=0.03)
        else:
            assert tail > 2.0 * rms  # a 6σ_rms move is ordinary under t(3); 6σ_tail is not


def test_reference_thresholds_replace_the_in_session_histories():
    """With a training reference, the jump, spread and RANGE_HIGH rules use its fixed thresholds."""
    n = 300
    ref = RuleReference(jump_sigma=1.0, spread_high=5.0, range_high=1.5)
    p = RuleParams()
    assert shock_condition(inputs(n, jump=spike(n, 200, 2.0, 6.5)), p, ref)[200:206].all()
    assert not shock_condition(inputs(n, jump=spike(n, 200, 2.0, 5.5)), p, ref).any()
    assert shock_condition(inputs(n, spread=spike(n, 250, 3.0, 5.5)), p, ref).nonzero()[0].tolist() == [250]
    mid = np.cumsum(np.random.default_rng(8).normal(0, 1.0, n))  # σ per bar 1 < range_high: RANGE_LOW
    labels = raw_rule_labels(inputs(n, mid=mid), p, reference=ref)
    assert set(labels[p.warmup_bars:].tolist()) <= {RL, SH}
    low = raw_rule_labels(inputs(n, mid=mid), p, reference=RuleReference(jump_sigma=1.0, spread_high=5.0,
                                                                          range_high=0.5))
    assert np.mean(low[p.warmup_bars:] == RH) > 0.9


def test_fit_reference_splits_two_planted_volatility_levels():
    """Training bars from a σ 1 and a σ 3 range give a RANGE_HIGH threshold between them."""
    rng = np.random.default_rng(9)
    mid = np.cumsum(np.r_[rng.normal(0, 1.0, 3000), rng.normal(0, 3.0, 1500), rng.normal(0, 1.0, 3000)])
    n = len(mid)
    x = tf2_inputs(mid, np.full(n, 2.0), np.full(n, 500.0), np.full(n, 500.0), np.full(n, 10.0),
                   np.ones(n, bool), per_bar=10)
    ref = fit_reference(x)
    sigma_per_bar = np.sqrt(10.0)
    assert 1.2 * sigma_per_bar < ref.range_high < 2.5 * sigma_per_bar
    assert ref.spread_high == 2.0 and ref.jump_sigma > 0


def test_two_means_split_lies_between_two_clusters():
    """Lloyd's 2-means threshold of two separated clusters is their midpoint region; one value gives NaN."""
    rng = np.random.default_rng(4)
    values = np.r_[rng.normal(0, 0.2, 700), rng.normal(3, 0.2, 300)]
    assert 1.2 < two_means_split(values) < 1.8
    assert np.isnan(two_means_split(np.ones(5)))


def test_overlay_lets_a_shock_end_at_once_and_keeps_the_underlying_smoothing():
    """With overlay a SHOCK blip lasts its raw bars only, and the range label underneath stays."""
    raw = np.array([RL] * 5 + [SH] + [RL, RH, RL, RH, RL] + [RH] * 4)
    plain_smoothing = apply_hysteresis(raw, 3, (SH,))
    overlaid = apply_hysteresis(raw, 3, (SH,), overlay=True)
    assert plain_smoothing[6:11].tolist() == [SH] * 5  # flicker keeps the SHOCK for minutes
    assert overlaid[5] == SH and overlaid[6:11].tolist() == [RL] * 5
    assert overlaid[-2:].tolist() == [RH, RH]
