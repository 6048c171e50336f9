"""ML in the pipeline: the scoring stage's latency per signal and the cost of feature F26 per TF2 close.

F26 (``ml/regime_feature.py``): a regime model is trained as ``chimera train regime`` trains it (the
default classifier) on two simulated sessions; a third, four-hour session (1,440 TF2 bars, twice the
default ``[ml] regime_history_bars``) is then fed bar by bar through ``RegimeTracker``, timing each
close: the incremental feature row, and the row plus the model's posteriors (``OneRowForest``: what
the pipeline pays at a close; nothing is paid per event). For comparison, the batch recomputation over the bounded
history at one close (``regime_features`` over the last 720 bars, the approach the incremental one
replaces) is timed at a few closes.

Scoring: the signals of a ten-minute simulated run of two symbols with the regime model live are
passed one at a time through the pipeline's scoring stage (``ScoringStage`` with the scorer a run
uses: the ``S_raw * C`` fallback while no signal classifier exists), 200 times each.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import main, result
from engine.config import load_config
from engine.pipeline import RunOptions, run_reference
from engine.pipeline.models import LoadedModel, RunModels
from ml import regime
from ml.regime_feature import RegimeTracker, predict_proba_one
from ml.scoring import ScoringStage, UntrainedScorer

FIELDS = ("mid", "spread", "depth_bid", "depth_ask", "volume", "is_open", "max_abs_r1s", "sum_sq_r1s", "n_r1s")


def _session(config, seed: int, minutes: float):
    from engine.app.commands.train import simulated_regime_session

    return simulated_regime_session(config, seed=seed, minutes=minutes, profile="small_tick" if seed % 2 else
                                    "large_tick")


def _f26(config) -> tuple[list[dict], object]:
    train = _session(config, 1, 90) + _session(config, 2, 90)
    model = regime.train_regime(regime.RegimeSet.build(train), seed=1)
    (x, _), = _session(config, 3, 240)
    history = config.ml.regime_history_bars
    tracker = RegimeTracker(model, history)
    features, total = [], []
    columns = [getattr(x, f) for f in FIELDS]
    for i in range(len(x.mid)):
        bar = [c[i].item() for c in columns]
        start = time.perf_counter()
        row = tracker.add_bar(*bar)
        mid = time.perf_counter()
        tracker.posteriors(row)
        end = time.perf_counter()
        features.append(mid - start)
        total.append(end - start)
    batch = []
    for t in range(history, len(x.mid), 120):
        window = type(x)(*(c[t - history + 1: t + 1] for c in columns))
        start = time.perf_counter()
        predict_proba_one(model, regime.regime_features(window, history)[-1:])
        batch.append(time.perf_counter() - start)
    p50, p99 = np.percentile(total, [50, 99]) * 1e3
    f50, f99 = np.percentile(features, [50, 99]) * 1e3
    note = f"{len(total):,} closes of one 4-hour session, history {history} bars"
    rows = [
        result("F26 per TF2 close: features + posteriors, p50", round(p50, 3), "ms", None, higher_is_better=False,
               note=note),
        result("F26 per TF2 close: features + posteriors, p99", round(p99, 3), "ms", 5.0, higher_is_better=False,
               note=note),
        result("F26 per TF2 close: incremental features only, p50 / p99", round(f50, 3), "ms", None,
               higher_is_better=False, note=f"p99 {f99:.3f} ms"),
        result("F26 per TF2 close: batch recompute over the history (replaced)",
               round(float(np.median(batch)) * 1e3, 1), "ms", None, higher_is_better=False,
               note=f"median of {len(batch)} closes, for comparison"),
    ]
    return rows, model


def _scoring(config, model) -> list[dict]:
    from feeds.simulator import MarketSimulator

    models = RunModels(regime=LoadedModel("regime", "bench", "live", model))
    feed = MarketSimulator(["AAPL", "TSLA"], config, seed=5, duration_s=600.0)
    signals = run_reference(feed, config, RunOptions(models=models))[0]
    stage = ScoringStage(UntrainedScorer())
    times = []
    for signal in signals:
        batch = [signal]
        for _ in range(200):
            start = time.perf_counter()
            stage.apply(batch)
            times.append(time.perf_counter() - start)
    p50, p99 = np.percentile(times, [50, 99]) * 1e6
    note = (f"{len(signals)} signals x 200; scorer: S_raw*C fallback (no signal classifier yet); the regime "
            "model's work is at TF2 closes (F26)")
    return [result("ML scoring per signal, p50", round(p50, 2), "µs", None, higher_is_better=False, note=note),
            result("ML scoring per signal, p99", round(p99, 2), "µs", 1000.0, higher_is_better=False, note=note)]


def run() -> list[dict]:
    config = load_config()
    rows, model = _f26(config)
    return rows + _scoring(config, model)


if __name__ == "__main__":
    main(run)
