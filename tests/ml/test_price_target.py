"""The price-target model: the excursion label by hand, the quantile model on planted data against its
baselines, one-row prediction equal to scikit-learn's, and its take-profit in the risk manager (live) or
only in the evidence (shadow)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.risk import RiskManager
from ml import price_target as pt
from ml import signal_model as sm
from ml.registry import load_model, save_model
from ml.scoring import ScoringStage, UntrainedScorer, feature_row
from strategies.base import Signal
from tests.ml.helpers import champion_db

NS = 1_000_000_000


# ---- the label ---------------------------------------------------------------------------------------
def test_excursion_long_stops_at_the_stop_touch():
    ts = [1, 2, 3, 4, 5]
    bid = [101.0, 104.0, 96.0, 95.0, 110.0]  # 95 touches the stop: 110 after it does not count
    assert sm.excursion(1, 100.0, 95.0, 0, 10, ts, bid) == 4.0


def test_excursion_short_ends_at_the_time_stop_and_is_never_negative():
    ts = [1, 2, 3, 4]
    ask = [99.0, 97.0, 98.0, 90.0]  # a short from 100: 3 ticks by t=2; t=4 is past the time stop (end 3)
    assert sm.excursion(-1, 100.0, 105.0, 0, 3, ts, ask) == 3.0
    assert sm.excursion(-1, 100.0, 105.0, 0, 3, ts, [101.0, 102.0, 103.0, 90.0]) == 0.0
    assert sm.excursion(1, 100.0, 95.0, 5, 9, ts, [101.0] * 4) == 0.0  # no point after t0
    with pytest.raises(ValueError):
        sm.excursion(0, 100.0, 95.0, 0, 3, ts, ask)


def test_book_paths_keep_two_sided_samples_in_time_order():
    records = [("book_samples", (7, 2, 2_000, 0, 100, 102, "", "", "", "")),
               ("book_samples", (7, 1, 1_000, 0, 99, 101, "", "", "", "")),
               ("book_samples", (7, 3, 3_000, 0, None, 101, "", "", "", "")),  # one-sided: dropped
               ("trades", (7,))]
    ts, bid, ask = sm.book_paths(records)[7]
    assert ts.tolist() == [1_000, 2_000] and bid.tolist() == [99, 100] and ask.tolist() == [101, 102]


def test_pinball_by_hand():
    # q = 0.5: half the absolute error; q = 0.9 punishes under-prediction 9x more than over-prediction
    assert pt.pinball(np.array([1.0, 2.0]), np.array([1.5, 1.5]), 0.5) == pytest.approx(0.25)
    assert pt.pinball(np.array([2.0]), np.array([1.0]), 0.9) == pytest.approx(0.9)
    assert pt.pinball(np.array([1.0]), np.array([2.0]), 0.9) == pytest.approx(0.1)


# ---- the model on planted data ----------------------------------------------------------------------
def planted(n: int, seed: int, informative: bool) -> sm.SignalSet:
    """Signals whose excursion is about 3R when feature 0 is positive and 0.5R otherwise (or pure noise)."""
    rng = np.random.default_rng(seed)
    X = np.full((n, len(sm.FEATURES)), np.nan)
    x = rng.normal(size=n)
    X[:, 0] = x
    X[:, 1] = rng.normal(size=n)
    centre = np.where(x > 0, 3.0, 0.5) if informative else np.full(n, 1.75)
    mfe = np.maximum(0.0, centre + rng.normal(scale=0.3, size=n))
    t0 = np.arange(n, dtype=float) * 100
    e = np.zeros(n)
    return sm.SignalSet(X, (mfe > 1).astype(np.int64), t0, t0 + 50, np.zeros(n, np.int64), e, e,
                        np.array(["x"] * n), np.array([""] * n), np.array(["target"] * n),
                        mfe_r=mfe, target_r=np.full(n, 2.0))


def test_planted_excursion_beats_both_baselines_with_the_right_coverage():
    report = pt.cross_validated_report(planted(600, 1, True), 0.5, n_splits=3)
    assert report["beats_baselines"]
    assert report["model"]["pinball"] < 0.5 * report["constant"]["pinball"]
    assert report["model"]["pinball"] < 0.5 * report["strategy_target"]["pinball"]
    assert 0.4 < report["model"]["coverage"] < 0.6  # the median: reached about half the time
    assert report["model"]["median_abs_error_r"] < 0.4


def test_noise_gives_no_better_target_than_a_constant():
    report = pt.cross_validated_report(planted(600, 2, False), 0.5, n_splits=3)
    assert report["model"]["pinball"] > 0.95 * report["constant"]["pinball"]


def test_too_few_signals_with_an_excursion_are_refused():
    data = planted(30, 3, True)
    data.mfe_r[:20] = np.nan
    with pytest.raises(ValueError, match="too few"):
        pt.cross_validated_report(data, 0.5, n_splits=3)
    with pytest.raises(ValueError, match="too few"):
        pt.train(data, 0.5)


@pytest.fixture(scope="module")
def model():
    return pt.train(planted(400, 4, True), 0.5)


def test_one_row_prediction_is_scikit_learns_and_survives_the_registry(model, tmp_path):
    predictor = pt.TargetPredictor(model, "t", True, 0.01, 100.0)
    assert predictor.forest.flat
    rng = np.random.default_rng(9)
    for _ in range(50):
        row = np.where(rng.random(len(sm.FEATURES)) < 0.3, np.nan, rng.normal(size=len(sm.FEATURES)))
        assert predictor.predict_r(row) == model.predict(row.reshape(1, -1))[0]
    path = tmp_path / "target.skops"
    loaded = load_model(path, save_model(model, path))  # trusted types only, SHA-256 checked
    row = np.zeros(len(sm.FEATURES))
    assert loaded.predict(row.reshape(1, -1))[0] == model.predict(row.reshape(1, -1))[0]


def test_target_ticks_are_clipped_and_on_the_signal_side(model):
    high, low = np.zeros(len(sm.FEATURES)), np.zeros(len(sm.FEATURES))
    high[0], low[0] = 1.0, -1.0
    free = pt.TargetPredictor(model, "t", True, 0.01, 100.0)
    r_high, r_low = free.predict_r(high), free.predict_r(low)
    assert r_high > 2.0 and r_low < 1.0
    clipped = pt.TargetPredictor(model, "t", True, 1.0, 2.0)
    assert clipped.target(1, 1000, 990, high) == pt.Target(1020, 2.0)  # long: 2R above, capped
    assert clipped.target(-1, 1000, 1010, low) == pt.Target(990, 1.0)  # short: 1R below, floored
    assert clipped.target(1, 1000, 1000, high) is None  # no risk, no target
    with pytest.raises(ValueError):
        pt.TargetPredictor(model, "t", True, 2.0, 1.0)


# ---- in the pipeline's cores -------------------------------------------------------------------------
def _signal() -> Signal:
    sig = Signal(signal_id="0:1:mean_reversion", instrument_id=0, ts_recv=NS, seq=1, strategy="mean_reversion",
                 side=1, entry_type=1, entry_price=1000, stop=990, targets=(1015,), time_stop_ns=60 * NS, score=0.7)
    assert np.isnan(feature_row(sig)[0])  # no feature snapshot: the row is NaN there
    return sig


@pytest.mark.parametrize("live", [True, False])
def test_live_model_sets_the_orders_take_profit_and_shadow_only_records_it(model, live):
    predictor = pt.TargetPredictor(model, "target-1", live, 1.0, 6.0)
    sig = _signal()
    expected = predictor.target(1, 1000, 990, feature_row(sig))
    assert expected is not None
    [scored] = ScoringStage(UntrainedScorer(), predictor).apply([sig])
    assert scored.signal.evidence["model_target"] == float(expected.ticks)
    assert scored.signal.evidence["model_target_r"] == expected.r
    assert scored.target == (expected.ticks if live else 0)
    [intent] = RiskManager([], order_size=1).apply([scored])
    assert intent.target == (expected.ticks if live else 1015)  # shadow: the strategy's own target


def test_without_a_model_the_scoring_stage_is_unchanged():
    sig = _signal()
    [scored] = ScoringStage(UntrainedScorer()).apply([sig])
    assert scored.target == 0 and scored.signal is sig
    [intent] = RiskManager([], order_size=1).apply([scored])
    assert intent.target == 1015


# ---- in a run ----------------------------------------------------------------------------------------
def test_a_run_takes_its_take_profits_from_a_live_model(tmp_path, model):
    import orjson

    from engine import store
    from engine.config import load_config, with_values
    from engine.pipeline import RunOptions, run_reference
    from engine.pipeline.models import load_run_models
    from engine.records import TABLES
    from feeds.simulator import MarketSimulator

    db, _ = champion_db(tmp_path, model, "target-1", "target")
    conn = store.connect(db)
    try:
        models = load_run_models(conn, no_ml=False, real_data=False)
    finally:
        conn.close()
    assert models.describe() == [{"kind": "target", "version": "target-1", "mode": "live"}]
    assert "target-1" in models.target_note()
    config = with_values(load_config(None), {"run.seed": 1})
    feed = MarketSimulator(["AAPL", "NVDA", "TSLA"], config, 1, 900.0)
    _, records = run_reference(feed, config, RunOptions(duration_s=900.0, models=models))
    signals = {r[0]: dict(zip(TABLES["signals"], r, strict=True)) for t, r in records if t == "signals"}
    trips = [dict(zip(TABLES["round_trips"], r, strict=True)) for t, r in records if t == "round_trips"]
    entries = {r[0]: r[1] for t, r in records if t == "orders" and r[12] == "entry"}
    assert signals and trips, "the session produced no signal or no round trip"
    for row in signals.values():
        evidence = orjson.loads(row["evidence"])
        risk = abs(row["entry_price"] - row["stop"])
        distance = (evidence["model_target"] - row["entry_price"]) * row["side"]  # beyond the entry, on its side
        assert distance >= 1 and abs(distance / risk - evidence["model_target_r"]) <= 0.5 / risk + 1e-9
        assert 1.0 <= evidence["model_target_r"] <= 6.0  # [ml] target_min_r, target_max_r
    for trip in trips:
        signal = signals[entries[trip["trip_id"]]]
        assert trip["target"] == orjson.loads(signal["evidence"])["model_target"]  # the model's, not the strategy's
