"""Signal classifier (SPEC 6): triple-barrier labels, uniqueness weights, calibration, planted signal vs
noise, and ``chimera train signals`` end to end."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from ml import signal_model as sm

# ---- triple-barrier labels on hand-built price paths -------------------------------------------------
TS = [10, 20, 30, 40, 50]


def test_target_touched_first_is_a_win():
    # long at 100, target 104, stop 97; the bid path reaches 104 at t=30 before any stop touch
    lab = sm.triple_barrier(1, 100, 104, 97, 5, 100, TS, [101, 102, 104, 96, 90], cost_ticks=1.0)
    assert (lab.label, lab.barrier, lab.t1, lab.net_ticks) == (1, "target", 30, 3.0)


def test_stop_touched_first_is_a_loss_at_the_stop_fill():
    # short at 100, target 95, stop 103: the ask path jumps to 104 (the stop fills with slippage)
    lab = sm.triple_barrier(-1, 100, 95, 103, 5, 100, TS, [99, 101, 104, 94, 90], cost_ticks=0.5)
    assert (lab.label, lab.barrier, lab.t1, lab.net_ticks) == (0, "stop", 30, -4.5)


def test_vertical_barrier_labels_by_the_sign_of_the_net_result():
    # time stop 25 after t0 = 5: the vertical barrier is at 30; the last price before it is 102
    win = sm.triple_barrier(1, 100, 110, 90, 5, 25, TS, [101, 102, 102, 108, 120], cost_ticks=1.0)
    assert (win.label, win.barrier, win.t1, win.net_ticks) == (1, "vertical", 30, 1.0)
    loss = sm.triple_barrier(1, 100, 110, 90, 5, 25, TS, [101, 99, 99, 108, 120], cost_ticks=1.0)
    assert (loss.label, loss.barrier, loss.net_ticks) == (0, "vertical", -2.0)


def test_costs_flip_a_marginal_win():
    path = [101, 102, 102, 102, 102]
    cheap = sm.triple_barrier(1, 100, 102, 95, 0, 100, TS, path, cost_ticks=1.5)
    dear = sm.triple_barrier(1, 100, 102, 95, 0, 100, TS, path, cost_ticks=2.5)
    assert cheap.barrier == dear.barrier == "target"
    assert (cheap.label, dear.label) == (1, 0)
    assert dear.net_ticks == -0.5


def test_barriers_on_the_wrong_side_are_refused():
    with pytest.raises(ValueError):
        sm.triple_barrier(1, 100, 99, 97, 0, 10, TS, [100] * 5, 0.0)


def test_trip_label_follows_the_same_rule():
    assert sm.trip_label("target", True, 3.0, 0, 5, 2.0).label == 1
    assert sm.trip_label("target", True, -0.1, 0, 5, -0.1).label == 0  # fees flipped the win
    assert sm.trip_label("stop", True, -5.0, 0, 5, -5.0).barrier == "stop"
    tightened = sm.trip_label("stop", False, 0.4, 0, 5, 1.0)  # breakeven stop after +1R
    assert (tightened.label, tightened.barrier) == (1, "vertical")
    assert sm.trip_label("time", True, -0.2, 0, 5, -0.2).label == 0


# ---- uniqueness weights -------------------------------------------------------------------------------
def test_uniqueness_on_hand_built_overlapping_spans():
    # group 0: A [0, 10], B [5, 15], C [12, 14], E the instant 7; group 1: D [0, 10] alone
    t0 = np.array([0, 5, 12, 7, 0])
    t1 = np.array([10, 15, 14, 7, 10])
    groups = np.array([0, 0, 0, 0, 1])
    u = sm.uniqueness(t0, t1, groups)
    # A: 0-5 alone, 5-10 with B -> (5 * 1 + 5 * 1/2) / 10
    # B: 5-10 with A, 10-12 alone, 12-14 with C, 14-15 alone -> (2.5 + 2 + 1 + 1) / 10
    # C: always with B -> 1/2; E: an instant covered by A, B and itself -> 1/3; D: alone -> 1
    assert u == pytest.approx([0.75, 0.65, 0.5, 1 / 3, 1.0])


def test_uniqueness_of_disjoint_spans_is_one():
    assert sm.uniqueness(np.array([0, 20]), np.array([10, 30])) == pytest.approx([1.0, 1.0])


# ---- synthetic sets -----------------------------------------------------------------------------------
def synthetic(n: int, seed: int, planted: str) -> tuple[sm.SignalSet, np.ndarray]:
    """Column 0 carries the planted signal ("linear", "ring" or "noise"); columns 1-4 are noise."""
    rng = np.random.default_rng(seed)
    X = np.full((n, len(sm.FEATURES)), np.nan)
    X[:, :5] = rng.normal(size=(n, 5))
    x = X[:, 0]
    if planted == "linear":
        p = 1 / (1 + np.exp(-1.5 * x))
    elif planted == "ring":  # informative but not linear: wins far from the centre
        p = np.where(np.abs(x) > 0.8, 0.8, 0.2)
    else:
        p = np.full(n, 0.5)
    y = (rng.random(n) < p).astype(np.int64)
    t0 = np.arange(n, dtype=float) * 10
    net_r = np.where(y == 1, 1.0, -1.0)
    data = sm.SignalSet(X, y, t0, t0 + 15, np.zeros(n, np.int64), net_r, np.full(n, 0.5),
                        np.array(["mean_reversion"] * n), np.array([""] * n), np.array(["target"] * n))
    return data, p


def test_calibration_turns_a_distorted_score_into_probabilities():
    # the only input is a miscalibrated score (the planted probability cubed, same ranking)
    train, p = synthetic(1500, 1, "linear")
    test, p_test = synthetic(3000, 2, "linear")
    for d, q in ((train, p), (test, p_test)):
        d.X[:, :5] = np.nan
        d.X[:, 0] = q**3
    before = sm.ece(test.y, test.X[:, 0])
    model = sm.fit_calibrated(train, np.arange(len(train)), np.ones(len(train)), 50, 3)
    assert sm.calibration_method(len(train)) == "isotonic" and sm.calibration_method(999) == "sigmoid"
    after = sm.ece(test.y, sm.predict(model, sm.filled(test.X, train.X)))
    assert before > 0.15
    assert after < 0.05
    assert sm.ece(test.y, p_test) < 0.05  # the planted probabilities themselves are calibrated


def test_ece_by_hand():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.95])
    # bin 0: mean y 0.5 vs 0.05; bin 9: mean y 1 vs 0.95 -> 0.5 * 0.45 + 0.5 * 0.05
    assert sm.ece(y, p) == pytest.approx(0.25)


def test_planted_nonlinear_feature_beats_the_baseline_and_noise_is_chance():
    data, _ = synthetic(600, 3, "ring")
    report = sm.cross_validated_report(data, n_splits=3, importance_repeats=2)
    assert report.oof["auc"] > 0.7
    assert report.oof["auc"] > report.baseline["auc"] + 0.1
    assert report.importance[0]["feature"] == sm.FEATURES[0]
    # the economic test: taking the high-probability half lifts the mean R above all signals'
    assert report.economic["filtered"]["mean_r"] > report.economic["all"]["mean_r"]
    noise, _ = synthetic(600, 4, "noise")
    flat = sm.cross_validated_report(noise, n_splits=3, importance_repeats=1)
    assert 0.38 < flat.oof["auc"] < 0.62


def test_cell_intercept_recovers_a_planted_offset_shrunk():
    rng = np.random.default_rng(5)
    n = 4000
    p = np.full(n, 0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-1.0))).astype(float)  # true logit offset +1
    b = sm.cell_intercept(y, p)
    assert b == pytest.approx(1.0 * n / (n + sm.SHRINK_TRADES), abs=0.1)


# ---- the command end to end ---------------------------------------------------------------------------
def test_train_signals_end_to_end(tmp_path, capsys):
    from engine import store
    from engine.app.cli import main
    from engine.store import models as rows
    from ml.registry import load_model

    db = tmp_path / "c.db"
    code = main(["train", "signals", "--sessions", "2", "--minutes", "20", "--seed", "1", "--folds", "2",
                 "--db", str(db), "--promote", "--json"])
    assert code == 0
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) >= {"oof", "baseline", "economic", "baseline_economic", "importance", "regime_adjustment",
                        "calibration", "ece_bins", "labelled", "model", "seeds"}
    assert set(out["oof"]) >= {"auc", "brier", "ece", "log_loss"}
    assert set(out["economic"]) == {"filtered", "all"} and out["economic"]["all"]["trades"] == out["n"]
    assert out["seeds"] == [1, 2] and out["labelled"] == sum(out["barriers"].values()) > 0
    conn = store.connect(db)
    try:
        row = rows.champion(conn, "signal")
    finally:
        conn.close()
    assert row is not None and row.version == out["model"]["version"] and row.mode == "shadow"
    assert row.training["seeds"] == [1, 2] and row.metrics["auc"] == out["oof"]["auc"]
    model = load_model(row.path, row.sha256)  # SHA-256 verified, trusted types only
    assert list(model.classes_) == [0, 1]
    p = sm.predict(model, np.zeros((1, len(sm.FEATURES))))
    assert 0.0 <= float(p[0]) <= 1.0
    target = out["price_target"]  # the price-target model on the same signals, or why not
    assert target["quantile"] == 0.5
    if target["trained"]:
        assert set(target) >= {"model", "registered", "strategy_target", "constant", "n", "beats_baselines"}
        conn = store.connect(db)
        try:
            row = rows.champion(conn, "target")
        finally:
            conn.close()
        assert row is not None and row.version == target["registered"]["version"]
        assert load_model(row.path, row.sha256).predict(np.zeros((1, len(sm.FEATURES)))).shape == (1,)
    else:
        assert "too few" in target["reason"]


def test_train_signals_refuses_bad_folds(tmp_path, capsys):
    from engine.app.cli import main

    assert main(["train", "signals", "--folds", "1", "--db", str(tmp_path / "c.db")]) == 2
    assert "--folds" in capsys.readouterr().err
