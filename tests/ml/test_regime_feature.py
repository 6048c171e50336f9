"""F26 live: the incremental regime features and posteriors equal the batch ones over the same bars."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from engine.config import load_config
from engine.errors import ConfigError
from engine.features.bars import TF1, TF2
from engine.pipeline.models import LoadedModel, RunModels
from engine.pipeline.router import Router
from engine.pipeline.wiring import build_lane, sample_features
from feeds.base import batched
from ml import regime
from ml.labels import causal_quantile, tf2_inputs
from ml.regime_feature import NAMES, OneRowForest, RegimeTracker

FIELDS = ("mid", "spread", "depth_bid", "depth_ask", "volume", "is_open", "max_abs_r1s", "sum_sq_r1s", "n_r1s")


@pytest.fixture(scope="module")
def session():
    """90 simulated minutes (540 TF2 bars: past every look-back and the rule labels' warm-up) and a
    tiny regime model trained on them."""
    from engine.app.commands.train import simulated_regime_session

    (x, truth), = simulated_regime_session(load_config(), seed=3, minutes=90, profile="small_tick")
    data = regime.RegimeSet.build([(x, truth)])
    model = regime.fit(regime.new_classifier(0).set_params(max_iter=15), data.X, data.y)
    return x, model


def _track(x, model, history):
    tracker = RegimeTracker(model, history)
    rows = [tracker.add_bar(*(getattr(x, f)[i].item() for f in FIELDS)) for i in range(len(x.mid))]
    return tracker, np.array(rows)


@pytest.mark.parametrize("history", [None, 720, 150])
def test_incremental_rows_equal_the_batch_features(session, history):
    """Every feature of every bar, bit for bit, with all earlier bars or a bounded history (150 < 540
    bars: the sorted baselines drop their oldest values)."""
    x, model = session
    tracker, live = _track(x, model, history)
    batch = regime.regime_features(x, history)
    assert live.shape == batch.shape == (540, len(regime.FEATURES))
    assert np.array_equal(live, batch, equal_nan=True)
    assert np.isfinite(live[-1]).all()  # the last bar has every window filled
    labels = live[:, regime.FEATURES.index("rule_label")]
    assert (labels[:120] == -1).all() and (labels[120:] >= 0).all()
    proba = np.array([tracker.posteriors(row) for row in live])
    assert np.array_equal(proba, regime.posteriors(model, x, history))


def test_bounded_history_changes_only_the_earlier_bar_baselines(session):
    """With 150 bars of history the baselines differ from the whole-session ones after bar 150 only."""
    x, _ = session
    full, bounded = regime.regime_features(x), regime.regime_features(x, history=150)
    same = np.all((full == bounded) | (np.isnan(full) & np.isnan(bounded)), axis=1)
    assert same[:151].all() and not same.all()


def test_causal_quantile_history_is_a_sliding_window_of_earlier_bars():
    rng = np.random.default_rng(1)
    v = rng.normal(size=300)
    v[rng.random(300) < 0.1] = np.nan
    got = causal_quantile(v, 0.3, None, 5, history=40)
    for i in range(300):
        earlier = v[max(0, i - 40):i]
        earlier = earlier[np.isfinite(earlier)]
        expected = np.quantile(earlier, 0.3) if len(earlier) >= 5 else np.nan
        assert got[i] == pytest.approx(expected, rel=1e-12, abs=1e-12, nan_ok=True)


def _lane_vectors(config, models, minutes: float, seed: int = 4, feed=None):
    """Feature vectors of one simulated instrument's lane (market and feature stages only)."""
    from feeds.simulator import MarketSimulator

    feed = feed or MarketSimulator(["AAPL"], config, seed=seed, duration_s=minutes * 60)
    (d,) = feed.instruments()
    lane = build_lane(d, config, lambda _: [], models)
    router = Router([d.instrument_id])
    market, features = lane.stages[0][1], lane.stages[1][1]
    out = []
    for batch in batched(feed.events(), 256):
        per_lane, _ = router.split(batch)
        out += features.apply(market.apply(per_lane[d.instrument_id]))
    return out


def test_pipeline_posteriors_equal_the_batch_over_the_same_bars(session):
    """The live pipeline's F26 at each TF2 close equals ``regime.posteriors`` over the bars rebuilt
    independently from the 1 s samples with ``tf2_inputs`` (the training inputs' builder), with a
    history (40 bars) shorter than the session so the bounded baselines are exercised."""
    _, model = session
    config = load_config(overrides=["ml.regime_history_bars=40"])
    models = RunModels(regime=LoadedModel("regime", "test", "live", model))
    vectors = [fv for fv in _lane_vectors(config, models, minutes=9) if fv.frames & TF1]
    books = [fv.view if fv.view.bid_px and fv.view.ask_px else None for fv in vectors]
    mid = np.array([(v.bid_px[0] + v.ask_px[0]) / 2 if v else np.nan for v in books])
    spread = np.array([v.ask_px[0] - v.bid_px[0] if v else np.nan for v in books], dtype=float)
    depth_bid = np.array([v.bid_depth[1] if v else np.nan for v in books], dtype=float)  # D_10: windows (5, 10)
    depth_ask = np.array([v.ask_depth[1] if v else np.nan for v in books], dtype=float)
    volume = np.diff([fv.values["volume"] for fv in vectors], prepend=0.0)
    is_open = np.array([not fv.state & 0x4 for fv in vectors])
    closes = [i for i, fv in enumerate(vectors) if fv.frames & TF2]
    x = tf2_inputs(mid, spread, depth_bid, depth_ask, volume, is_open, per_bar=10, first_close=closes[0])
    assert len(x.mid) == len(closes) >= 50
    expected = regime.posteriors(model, x, history=40)
    live = np.array([[vectors[i].values[name] for name in NAMES] for i in closes])
    ready = np.array([vectors[i].values["regime_ml_ready"] for i in closes])
    assert (ready[:29] == 0).all() and (ready[29:] == 1).all()  # ready from the 30th bar (MIN_BARS)
    assert np.array_equal(live[29:], expected[29:])
    assert (live[:29] == 0).all()
    assert {vectors[i].values["regime_ml_live"] for i in closes} == {1.0}


def test_f26_before_a_cut_is_the_same_whole_or_truncated(session):
    """No lookahead: F26 at every TF2 close before a cut equals F26 computed on the stream cut there."""
    from engine.testing import ListFeed
    from feeds.simulator import MarketSimulator

    _, model = session
    config = load_config()
    models = RunModels(regime=LoadedModel("regime", "test", "shadow", model))
    feed = MarketSimulator(["AAPL"], config, seed=6, duration_s=480.0)
    instruments, events = feed.instruments(), list(feed.events())
    cut = events[0].ts_recv + 400 * 10**9
    whole = _lane_vectors(config, models, 0, feed=ListFeed(instruments, events))
    part = _lane_vectors(config, models, 0, feed=ListFeed(instruments, [e for e in events if e.ts_recv < cut]))

    def f26(vectors):
        return [(fv.ts_recv, [fv.values[n] for n in NAMES]) for fv in vectors if fv.frames & TF2 and fv.ts_recv < cut]

    assert f26(part) == f26(whole)
    assert sum(fv.values["regime_ml_ready"] for fv in part if fv.frames & TF2) >= 5


def test_without_a_model_the_feature_vector_is_unchanged():
    """No model loaded (the default): no F26 feature, no regime_* name in the vector."""
    config = load_config()
    assert [type(f).__name__ for f in sample_features(config)] == \
        [type(f).__name__ for f in sample_features(config, RunModels())]
    assert "RegimeFeature" not in [type(f).__name__ for f in sample_features(config)]
    vectors = _lane_vectors(config, None, minutes=0.5)
    assert vectors and not any(name.startswith("regime_") for name in vectors[-1].values)


@pytest.mark.parametrize("value", ["29", "100001", "1.5"])
def test_regime_history_bars_is_validated(value):
    with pytest.raises(ConfigError, match="regime_history_bars"):
        load_config(overrides=[f"ml.regime_history_bars={value}"])


def test_one_row_forest_equals_predict_proba(session):
    """The flat forest gives ``predict_proba`` bit for bit: six classes, two classes, rows with NaN."""
    x, model = session
    X = regime.regime_features(x)
    assert np.isnan(X).any()
    forest = OneRowForest(model)
    assert forest.flat
    got = np.vstack([forest.predict_proba(X[i:i + 1]) for i in range(len(X))])
    assert np.array_equal(got, model.predict_proba(X))
    rng = np.random.default_rng(2)
    binary = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(
        rng.normal(size=(200, 4)), rng.integers(0, 2, 200))
    rows = rng.normal(size=(50, 4))
    rows[::7, 1] = np.nan
    forest = OneRowForest(binary)
    assert np.array_equal(np.vstack([forest.predict_proba(rows[i:i + 1]) for i in range(50)]),
                          binary.predict_proba(rows))
