"""ML in the pipeline: the scoring stage's latency per signal and the cost of feature F26 per TF2 close.

F26 (``ml/regime_feature.py``): a regime model is trained as ``chimera train regime`` trains it (the
default classifier) on two simulated sessions; a third, four-hour session (1,440 TF2 bars, twice the
default ``[ml] regime_history_bars``) is then fed bar by bar through ``RegimeTracker``, timing each
close: the incremental feature row, and the row plus the model's posteriors (``OneRowForest``: what
the pipeline pays at a close; nothing is paid per event). For comparison, the batch recomputation over the bounded
history at one close (``regime_features`` over the last 720 bars, the approach the incremental one
replaces) is timed at a few closes.

Scoring: the signals of a ten-minute simulated run of two symbols with the regime model live, varied
into 2,000 distinct signals (S_raw, C and time), are passed one at a time through the pipeline's
scoring stage (``ScoringStage``) with the scorer a run uses when a signal classifier is the champion
(``ClassifierScorer``: feature row, calibrated probability through ``OneRowCalibrated``, the cell
intercept, the confidence). The classifier is trained here, as ``chimera train signals`` trains it,
on 1,000 synthetic labelled signals built from the run's feature rows. For comparison the same
scorer is timed through scikit-learn's ``predict_proba``, and the ``S_raw * C`` fallback that scores
while no classifier exists keeps its own rows.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np

from benchmarks.common import main, result
from engine.config import load_config
from engine.pipeline import RunOptions, run_reference
from engine.pipeline.models import LoadedModel, RunModels
from ml import price_target as pt
from ml import regime
from ml import signal_model as sm
from ml.regime_feature import RegimeTracker, predict_proba_one
from ml.scoring import ClassifierScorer, ScoringStage, UntrainedScorer

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


SIGNALS = 2_000  # signals scored one per call by the classifier path
REFERENCE = 200  # of them through scikit-learn's predict_proba (milliseconds each, far more on a loaded machine)
LABELS = 1_000  # synthetic labelled signals of the classifier: ISOTONIC_MIN, so isotonic calibration
FOLDS = 3  # calibration folds of the benchmark's classifier (``chimera train signals``: 5); fewer fits


def _classifier(rows: np.ndarray, seed: int = 7):
    """A small calibrated signal classifier trained as ``chimera train signals`` trains it (``train``:
    purged folds, uniqueness weights, ``MAX_ITER_GRID``'s middle size; ``FOLDS`` folds to keep the
    benchmark short) on ``LABELS`` synthetic labelled signals: the run's feature rows with noise,
    labels planted on S_raw and C. That many labels make the calibration isotonic, as for a classifier
    trained on a full set of sessions."""
    rng = np.random.default_rng(seed)
    n = LABELS
    X = rows[rng.integers(0, len(rows), n)].copy()
    finite = np.isfinite(X)
    X[finite] += rng.normal(scale=0.1, size=int(finite.sum())) * np.maximum(np.abs(X[finite]), 1e-3)
    s = np.nan_to_num(X[:, sm.FEATURES.index("s_raw")]) * np.nan_to_num(X[:, sm.FEATURES.index("confluence")])
    y = (rng.random(n) < 0.25 + 0.5 * s).astype(np.int64)
    t0 = np.arange(n, dtype=np.float64) * 10 * sm.NS
    e = np.zeros(n)
    data = sm.SignalSet(X, y, t0, t0 + 60 * sm.NS, np.zeros(n, np.int64), e, e, np.array(["x"] * n),
                        np.array([""] * n), np.array(["target"] * n))
    start = time.perf_counter()
    model = sm.train(data, max_iter=sm.MAX_ITER_GRID[1], n_splits=FOLDS)
    return model, time.perf_counter() - start


def _target_predictor(rows: np.ndarray):
    """A price-target model trained on ``LABELS`` of the run's feature rows with a planted excursion."""
    rng = np.random.default_rng(3)
    X = rows[rng.integers(0, len(rows), LABELS)].copy()
    mfe = np.maximum(0.0, 1.0 + np.nan_to_num(X[:, sm.FEATURES.index("s_raw")]) + rng.normal(scale=0.3, size=LABELS))
    t0 = np.arange(LABELS, dtype=np.float64) * 10 * sm.NS
    e = np.zeros(LABELS)
    data = sm.SignalSet(X, (mfe > 1).astype(np.int64), t0, t0 + 60 * sm.NS, np.zeros(LABELS, np.int64), e, e,
                        np.array(["x"] * LABELS), np.array([""] * LABELS), np.array(["target"] * LABELS),
                        mfe_r=mfe, target_r=np.full(LABELS, 2.0))
    return pt.TargetPredictor(pt.train(data, 0.5), "bench", True, 1.0, 6.0)


def _time(stage: ScoringStage, signals: list) -> np.ndarray:
    times = np.empty(len(signals))
    for i, signal in enumerate(signals):
        batch = [signal]
        start = time.perf_counter()
        stage.apply(batch)
        times[i] = time.perf_counter() - start
    return times


def _scoring(config, model) -> list[dict]:
    """Per-signal scoring: the champion signal classifier's path, scikit-learn's own call for
    comparison, and the ``S_raw * C`` fallback used while no classifier exists."""
    from feeds.simulator import MarketSimulator

    models = RunModels(regime=LoadedModel("regime", "bench", "live", model))
    feed = MarketSimulator(["AAPL", "TSLA"], config, seed=5, duration_s=600.0)
    run_signals = run_reference(feed, config, RunOptions(models=models))[0]
    if not run_signals:
        raise RuntimeError("the benchmark session produced no signal")
    # 2,000 distinct signals: the run's signals (their feature snapshots) with S_raw, C and time varied
    rng = np.random.default_rng(11)
    signals = [msgspec.structs.replace(run_signals[i % len(run_signals)], score=float(rng.random()),
                                       confluence=float(rng.uniform(0.5, 1.0)),
                                       ts_recv=run_signals[i % len(run_signals)].ts_recv + i * 1_000_000)
               for i in range(SIGNALS)]
    rows = np.vstack([ClassifierScorer.row(s) for s in signals])
    classifier, fit_s = _classifier(rows)
    scorer = ClassifierScorer(classifier, "bench", {}, live=True)
    if not scorer.one_row.fast:
        raise RuntimeError("the classifier is not on the one-row path")
    stage = ScoringStage(scorer)
    _time(stage, signals[:200])  # warm-up
    fast = _time(stage, signals)
    scorer.one_row.fast = False  # the same scorer through scikit-learn's predict_proba (the reference)
    slow = _time(stage, signals[:REFERENCE])
    scorer.one_row.fast = True
    both = ScoringStage(scorer, _target_predictor(rows))
    _time(both, signals[:200])
    with_target = _time(both, signals)
    fallback = ScoringStage(UntrainedScorer())
    untrained = np.concatenate([_time(fallback, signals) for _ in range(5)])
    t50, t99 = np.percentile(with_target, [50, 99]) * 1e3
    c50, c99 = np.percentile(fast, [50, 99]) * 1e3
    s50, s99 = np.percentile(slow, [50, 99]) * 1e3
    u50, u99 = np.percentile(untrained, [50, 99]) * 1e6
    note = (f"{SIGNALS:,} signals ({len(run_signals)} of a 10-min 2-symbol run, S_raw/C/time varied), one per "
            f"call; classifier: HGB {sm.MAX_ITER_GRID[1]} iterations x {len(classifier.calibrated_classifiers_)} "
            f"folds, {classifier.method} calibration, trained on {LABELS:,} synthetic labels in {fit_s:.1f} s")
    return [
        result("ML scoring per signal (signal classifier), p50", round(c50, 3), "ms", None, higher_is_better=False,
               note=note),
        result("ML scoring per signal (signal classifier), p99", round(c99, 3), "ms", 1.0, higher_is_better=False,
               note=note),
        result("ML scoring per signal (classifier + price-target model), p99", round(t99, 3), "ms", 1.0,
               higher_is_better=False, note=f"p50 {t50:.3f} ms; the classifier above and a quantile HGB of "
                                            f"{pt.MAX_ITER} iterations, one row through its flattened trees"),
        result("ML scoring per signal via scikit-learn predict_proba (replaced), p50 / p99", round(s50, 3), "ms",
               None, higher_is_better=False,
               note=f"p99 {s99:.3f} ms; the same scorer on {REFERENCE} of the signals, for comparison"),
        result("ML scoring per signal (S_raw*C fallback, no classifier), p50", round(u50, 2), "µs", None,
               higher_is_better=False, note=f"{SIGNALS:,} signals x 5"),
        result("ML scoring per signal (S_raw*C fallback, no classifier), p99", round(u99, 2), "µs", 1000.0,
               higher_is_better=False, note=f"{SIGNALS:,} signals x 5"),
    ]


def run() -> list[dict]:
    config = load_config()
    rows, model = _f26(config)
    return rows + _scoring(config, model)


if __name__ == "__main__":
    main(run)
