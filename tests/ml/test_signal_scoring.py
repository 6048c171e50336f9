"""The champion signal classifier in a run: live, each signal's confidence is its calibrated probability;
shadow, the probability is recorded and the fallback decides; ``--no-ml`` bypasses it."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from engine import store
from engine.app.cli import main
from engine.config import load_config, with_values
from engine.pipeline import RunOptions, run_reference
from engine.pipeline.models import DISABLED_NOTE, load_run_models
from engine.records import TABLES
from feeds.simulator import MarketSimulator
from ml import signal_model as sm
from ml.scoring import CLASSIFIER, ClassifierScorer
from tests.ml.helpers import champion_db, planted_classifier


@pytest.fixture(scope="module")
def classifier():
    """A calibrated classifier whose probability rises with S_raw (planted on synthetic rows)."""
    return planted_classifier()


@pytest.fixture
def registry(tmp_path, classifier):
    return champion_db(tmp_path, classifier, "signal-1", "signal",
                       training={"intercepts": {"mean_reversion|unknown": 0.3}})[0]


def _signals(db, real_data: bool) -> tuple[list, list[dict]]:
    config = with_values(load_config(None), {"run.seed": 1})
    conn = store.connect(db)
    try:
        models = load_run_models(conn, no_ml=False, real_data=real_data)
    finally:
        conn.close()
    feed = MarketSimulator(["AAPL", "NVDA", "TSLA"], config, 1, 900.0)
    signals, records = run_reference(feed, config, RunOptions(duration_s=900.0, models=models))
    names = TABLES["signals"]
    return signals, [dict(zip(names, r, strict=True)) for t, r in records if t == "signals"], models


def test_live_classifier_sets_the_confidence(registry):
    signals, table, models = _signals(registry, real_data=False)
    assert models.describe() == [{"kind": "signal", "version": "signal-1", "mode": "live"}]
    assert table, "the session produced no signal"
    scorer = models.scorer()
    by_id = {s.signal_id: s for s in signals}
    for row in table:
        assert row["score_mode"] == "signal-1" and row["confidence_mode"] == CLASSIFIER
        assert row["probability"] == pytest.approx(row["confidence"])
        # the probability is the model's calibrated p plus the intercept of its (strategy, regime) cell
        assert row["probability"] == pytest.approx(scorer.probability(by_id[row["signal_id"]]))
        assert 0.0 < row["probability"] < 1.0


def test_intercept_moves_the_probability_on_the_logit_scale(classifier):
    plain = ClassifierScorer(classifier, "v", {}, live=True)
    shifted = ClassifierScorer(classifier, "v", {"mean_reversion|unknown": 0.5}, live=True)
    from strategies.base import Signal

    sig = Signal(signal_id="0:1:mean_reversion", instrument_id=0, ts_recv=0, seq=1, strategy="mean_reversion",
                 side=1, entry_type=1, entry_price=100, stop=95, targets=(105,), time_stop_ns=10, score=0.7)
    p, q = plain.probability(sig), shifted.probability(sig)
    assert sm.logit(np.array([q]))[0] - sm.logit(np.array([p]))[0] == pytest.approx(0.5)


def test_shadow_classifier_is_recorded_but_does_not_decide(registry):
    _, table, models = _signals(registry, real_data=True)
    assert models.describe() == [{"kind": "signal", "version": "signal-1", "mode": "shadow"}]
    assert table
    for row in table:
        assert row["score_mode"] == "shadow:signal-1" and row["confidence_mode"] != CLASSIFIER
        assert row["probability"] == pytest.approx(min(1.0, max(0.0, row["score"] * row["confluence"])))
        assert 0.0 < orjson.loads(row["evidence"])["classifier_p"] < 1.0


def test_run_summary_lists_the_classifier_and_no_ml_bypasses_it(registry, capsys):
    code = main(["run", "--symbol", "AAPL", "--duration", "20", "--db", str(registry), "--json", "--no-progress"])
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert {"kind": "signal", "version": "signal-1", "mode": "live"} in summary["models"]
    assert "signal-1" in summary["confidence"]
    code = main(["run", "--symbol", "AAPL", "--duration", "20", "--db", str(registry), "--json", "--no-progress",
                 "--no-ml"])
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["models"] == [] and summary["confidence"] == DISABLED_NOTE
