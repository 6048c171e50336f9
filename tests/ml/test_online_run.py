"""The online layer in a run: with ``[ml.online] enabled`` and a signal champion, the scoring stage serves
through it and the execution stage teaches it every labelled trade it closes; off, or with ``--no-ml``,
nothing of it is built."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from engine import store
from engine.app.cli import main
from engine.config import load_config, with_values
from engine.pipeline import Pipeline, RunOptions
from engine.pipeline.models import load_run_models
from engine.pipeline.wiring import build_portfolio_stages
from engine.store import models as rows
from feeds.simulator import MarketSimulator
from ml.online import OnlineLearner
from ml.registry import save_model
from ml.scoring import ClassifierScorer, DisabledScorer
from tests.ml.helpers import planted_classifier

SYMBOLS = ["AAPL", "NVDA", "TSLA"]


@pytest.fixture(scope="module")
def classifier():
    """A calibrated classifier whose probability rises with S_raw (planted on synthetic rows)."""
    return planted_classifier()


@pytest.fixture
def registry(tmp_path, classifier):
    db = tmp_path / "c.db"
    path = (tmp_path / "models" / "signal-1.skops").resolve()
    sha = save_model(classifier, path)
    conn = store.connect(db)
    rows.register_model(conn, version="signal-1", kind="signal", path=str(path), sha256=sha,
                        training={"source": "simulator"}, metrics={}, mode="shadow")
    rows.promote_model(conn, "signal-1")
    conn.close()
    return db


def online_config(enabled: bool = True):
    return with_values(load_config(None), {"run.seed": 1, "ml.online.enabled": enabled, "ml.online.warmup_trades": 3,
                                           "ml.online.retrain_every": 1_000_000, "ml.online.executor": "thread"})


def models_of(db, no_ml: bool = False):
    conn = store.connect(db)
    try:
        return load_run_models(conn, no_ml=no_ml, real_data=False)
    finally:
        conn.close()


def test_a_run_serves_through_the_layer_and_teaches_it_every_labelled_trade(registry):
    config = online_config()
    feed = MarketSimulator(SYMBOLS, config, 1, 900.0)
    pipeline = Pipeline(feed, config, str(registry), "run", RunOptions(duration_s=900.0, models=models_of(registry)))
    asyncio.run(pipeline.run())
    scoring, execution = pipeline.portfolio[0][1], pipeline.portfolio[-1][1]
    learner = execution.trade_listener
    assert isinstance(learner, OnlineLearner)
    assert isinstance(scoring.scorer, ClassifierScorer) and scoring.scorer.online is learner
    conn = store.connect(registry)
    try:
        trips = store.fetch_dicts(conn, "round_trips", "run")
        signals = store.fetch_dicts(conn, "signals", "run")
    finally:
        conn.close()
    assert trips, "the session closed no trade"
    labelled = [t for t in trips if t["qty"] and t["initial_stop"] and t["entry_price"] != t["initial_stop"]]
    assert learner.closed == len(labelled)  # each labelled trade learned once, as training labels them
    assert learner.recalibration.n == len(labelled)
    assert not learner.open or len(learner.open) <= len(signals)
    assert learner.state()["version"] == "signal-1"


def test_off_by_default_and_bypassed_by_no_ml(registry):
    instruments = MarketSimulator(SYMBOLS, online_config(), 1, 60.0).instruments()
    assert load_config(None).ml.online.enabled is False
    off = build_portfolio_stages(instruments, online_config(False), False, models=models_of(registry))
    assert off[-1][1].trade_listener is None and off[0][1].scorer.online is None
    no_ml = build_portfolio_stages(instruments, online_config(), True, models=models_of(registry, no_ml=True))
    assert no_ml[-1][1].trade_listener is None and isinstance(no_ml[0][1].scorer, DisabledScorer)
    on = build_portfolio_stages(instruments, online_config(), False, models=models_of(registry))
    assert isinstance(on[-1][1].trade_listener, OnlineLearner)
    on[-1][1].trade_listener.close()


def test_the_run_summary_shows_the_layer_only_when_it_ran(registry, capsys):
    base = ["run", "--symbol", "AAPL", "--duration", "20", "--db", str(registry), "--json", "--no-progress"]
    code = main([*base, "--set", "ml.online.enabled=true", "--set", "ml.online.executor=\"thread\""])
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    online = summary["online"]
    assert online["version"] == "signal-1"
    assert online["recalibration"]["trades"] == online["closed_trades"]
    assert set(online) >= {"closed_trades", "recalibration", "rolling_log_loss", "retrains", "events"}
    code = main(base)
    assert code == 0 and "online" not in orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    code = main([*base, "--no-ml", "--set", "ml.online.enabled=true"])
    assert code == 0 and "online" not in orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
