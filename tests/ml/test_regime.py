"""Regime model: causal features, a classifier that separates planted regimes, and its report."""

from __future__ import annotations

import numpy as np

from engine.events import Regime
from ml.labels import tf2_inputs
from ml.regime import (
    FEATURES,
    MIN_BARS,
    RegimeSet,
    bars_since,
    evaluate,
    mirrored,
    new_classifier,
    posteriors,
    regime_features,
)


def session(seed: int, bars: int = 240):
    """1 s inputs: quiet (σ = 0.3 tick/s) then volatile (σ = 3) halves; truth RANGE_LOW then RANGE_HIGH."""
    rng = np.random.default_rng(seed)
    n = bars * 10
    sigma = np.where(np.arange(n) < n // 2, 0.3, 3.0)
    mid = 1000 + np.cumsum(rng.normal(0, sigma))
    x = tf2_inputs(mid, np.full(n, 1.0), np.full(n, 50.0), np.full(n, 50.0), rng.poisson(5, n).astype(float),
                   np.ones(n, bool))
    truth = np.where(np.arange(len(x.mid)) < len(x.mid) // 2, int(Regime.RANGE_LOW), int(Regime.RANGE_HIGH))
    return x, truth


def test_features_are_causal():
    x, _ = session(1)
    full = regime_features(x)
    assert full.shape == (len(x.mid), len(FEATURES))
    cut = 150
    short, _ = session(1)
    for name in ("mid", "spread", "depth_bid", "depth_ask", "volume", "max_abs_r1s", "sum_sq_r1s", "n_r1s"):
        getattr(short, name)[cut + 1:] = getattr(short, name)[cut + 1:] * 7 + 3  # rewrite the future
    changed = regime_features(short)
    assert np.array_equal(np.isnan(full[: cut + 1]), np.isnan(changed[: cut + 1]))
    assert np.allclose(np.nan_to_num(full[: cut + 1]), np.nan_to_num(changed[: cut + 1]))


def test_separates_planted_volatility_regimes_on_unseen_sessions():
    train = RegimeSet.build([session(s) for s in (1, 2, 3)])
    assert train.X.shape[0] == 3 * (240 - MIN_BARS)
    model = new_classifier().set_params(max_iter=20).fit(train.X, train.y)
    test = RegimeSet.build([session(s) for s in (11, 12)])
    report = evaluate(test.y, model.predict(test.X))
    # the first bars after the switch still carry quiet look-back windows; the rest is clear-cut
    assert report["balanced_accuracy"] >= 0.9
    proba = posteriors(model, session(13)[0])
    assert proba.shape == (240, 6) and np.allclose(proba.sum(axis=1), 1.0)
    assert proba[-1].argmax() == Regime.RANGE_HIGH and proba[60].argmax() == Regime.RANGE_LOW


def test_evaluate_known_answer():
    truth = np.array([0, 0, 0, 0, 5, 5])
    pred = np.array([0, 0, 0, 1, 5, 0])
    report = evaluate(truth, pred)
    assert report["recall"] == {"RANGE_LOW": 0.75, "SHOCK": 0.5}
    assert report["balanced_accuracy"] == 0.625
    # macro-F1 over present classes: RANGE_LOW p=3/4 r=3/4 -> 0.75; SHOCK p=1 r=1/2 -> 2/3
    assert abs(report["macro_f1"] - (0.75 + 2 / 3) / 2) < 1e-12
    assert report["confusion"][0][:2] == [3, 1] and report["confusion"][5][0] == 1


def test_mirrored_session_swaps_trend_labels_and_book_sides():
    x, truth = session(2)
    truth = truth.copy()
    truth[:40] = Regime.TREND_UP
    truth[40:60] = Regime.TREND_DOWN
    m, t = mirrored(x, truth)
    assert np.array_equal(m.mid, -x.mid) and m.depth_bid is x.depth_ask and m.depth_ask is x.depth_bid
    assert np.all(t[:40] == Regime.TREND_DOWN) and np.all(t[40:60] == Regime.TREND_UP)
    assert np.array_equal(t[60:], truth[60:])
    a, b = regime_features(x), regime_features(m)
    col = {name: i for i, name in enumerate(FEATURES)}
    for signed in ("t_drift_20m", "t_drift_1m", "move_1m_z"):
        assert np.allclose(np.nan_to_num(b[:, col[signed]]), -np.nan_to_num(a[:, col[signed]]))
    for unsigned in ("log_sigma_5m", "er_5m", "jump_z_60s", "log_rv1s_10s_rel"):
        assert np.allclose(np.nan_to_num(b[:, col[unsigned]]), np.nan_to_num(a[:, col[unsigned]]))
    both = RegimeSet.build([(x, truth)], mirror=True)
    assert len(both.y) == 2 * (len(truth) - MIN_BARS) and set(both.session.tolist()) == {0}


def testbars_since_jump_known_answer():
    flag = np.array([False, False, True, False, False, True, False], bool)
    assert bars_since(flag, 3).tolist() == [3, 3, 0, 1, 2, 0, 1]
    assert bars_since(np.zeros(4, bool), 3).tolist() == [3, 3, 3, 3]
