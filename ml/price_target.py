"""Price targets (issue 18): a quantile model of the favourable excursion after a signal sets the take-profit.

**Label** (``signal_model.excursion``): the maximum favourable excursion (MFE) the market offered a position entered
at its entry fill, until the earlier of the time stop and the first touch of the initial stop, read on
the price the position could be closed at (the best bid for a long, the best ask for a short) in the
run's stored book samples (one per ``[store] sample_interval_ms``, 1 s by default). It is measured in
units of the signal's risk R = ``|entry - stop|`` and is never negative. It ignores the strategy's own
target, so it is not censored by it: it is what a take-profit could have had. The set is the signal
classifier's (``ml.signal_model.labels_from_records``): the same meta-labelled signals, each with its
``mfe_r`` and the strategy's own target ``target_r`` (in R).

**Model**: ``HistGradientBoostingRegressor(loss="quantile")`` on the classifier's features
(``signal_model.FEATURES``) predicting the ``q``-quantile of ``mfe_r`` (``[ml] target_quantile``):
the target the market reaches with probability about ``1 - q``. Weights: average uniqueness, as
the classifier's. Folds: the classifier's purged, embargoed K-fold.

**Report** (``cross_validated_report``): out-of-fold pinball loss at ``q`` (lower is better), coverage
(the share of held-out signals whose MFE reached the prediction; about ``1 - q`` when calibrated) and
the median absolute error in R, for the model, for the strategies' own targets used as the
prediction, and for a constant (the training folds' ``q``-quantile). A model that does not beat both
baselines' pinball loss out of sample gives no better target than the strategies; the report says so.

**Use** (``TargetPredictor``): one row through the flattened trees (``OneRowForest``, bit for bit
``predict``), clipped to ``[min_r, max_r]`` (``[ml] target_min_r``, ``target_max_r``), as ticks
beyond the entry. The risk manager takes it as the order's take-profit when the model runs ``live``;
in shadow it is recorded in the signal's evidence and the strategy's target is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from ml import signal_model as sm

MAX_ITER = 100
MIN_LABELS = 20  # fewer labelled signals with an excursion: no price-target model


def pinball(y: np.ndarray, pred: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of ``pred`` at quantile ``q``."""
    diff = np.asarray(y, float) - np.asarray(pred, float)
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff))) if len(diff) else float("nan")


def new_regressor(q: float, seed: int = 0, max_iter: int = MAX_ITER) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(loss="quantile", quantile=q, max_depth=3, learning_rate=0.05,
                                         max_iter=max_iter, early_stopping=False, l2_regularization=1.0,
                                         min_samples_leaf=10, random_state=seed)


def _usable(data: sm.SignalSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The indices of the signals with an excursion, and the set's ``mfe_r`` and ``target_r``."""
    if data.mfe_r is None or data.target_r is None:
        raise ValueError("the signal set carries no excursions (built without book samples)")
    return np.flatnonzero(np.isfinite(data.mfe_r)), data.mfe_r, data.target_r


def _figures(y: np.ndarray, pred: np.ndarray, q: float) -> dict:
    return {"pinball": pinball(y, pred, q), "coverage": float(np.mean(y >= pred)) if len(y) else float("nan"),
            "median_abs_error_r": float(np.median(np.abs(y - pred))) if len(y) else float("nan"),
            "median_prediction_r": float(np.median(pred)) if len(pred) else float("nan")}


def cross_validated_report(data: sm.SignalSet, q: float, n_splits: int = 5, seed: int = 0) -> dict:
    """Out-of-fold figures of the quantile model and its two baselines on the classifier's purged folds."""
    with threadpool_limits(limits=sm.THREADS):
        return _report(data, q, n_splits, seed)


def _report(data: sm.SignalSet, q: float, n_splits: int, seed: int) -> dict:
    idx, mfe_r, target_r = _usable(data)
    if len(idx) < max(MIN_LABELS, 4 * n_splits):
        raise ValueError(f"{len(idx)} signals with an excursion: too few for a price-target model "
                         f"(at least {max(MIN_LABELS, 4 * n_splits)})")
    y = mfe_r[idx]
    w = sm.uniqueness(data.t0, data.t1, data.group)[idx]
    model_p = np.full(len(idx), np.nan)
    const_p = np.full(len(idx), np.nan)
    for tr, te in sm.splits(data, idx, n_splits):
        Xtr, Xte = sm.filled(data.X[idx][tr]), sm.filled(data.X[idx][te], data.X[idx][tr])
        model = new_regressor(q, seed).fit(Xtr, y[tr], sample_weight=w[tr])
        model_p[te] = model.predict(Xte)
        const_p[te] = np.quantile(y[tr], q)
    scored = np.isfinite(model_p)
    ys = y[scored]
    figures = {"model": _figures(ys, model_p[scored], q),
               "strategy_target": _figures(ys, target_r[idx][scored], q),
               "constant": _figures(ys, const_p[scored], q)}
    best_baseline = min(figures["strategy_target"]["pinball"], figures["constant"]["pinball"])
    return {"n": int(scored.sum()), "quantile": q, "folds": n_splits, "median_mfe_r": float(np.median(ys)),
            **figures, "beats_baselines": bool(figures["model"]["pinball"] < best_baseline)}


def train(data: sm.SignalSet, q: float, seed: int = 0) -> HistGradientBoostingRegressor:
    """The final quantile model on every signal with an excursion (weights: average uniqueness)."""
    idx, mfe_r, _ = _usable(data)
    if len(idx) < MIN_LABELS:
        raise ValueError(f"{len(idx)} signals with an excursion: too few for a price-target model")
    w = sm.uniqueness(data.t0, data.t1, data.group)[idx]
    with threadpool_limits(limits=sm.THREADS):
        return new_regressor(q, seed).fit(sm.filled(data.X[idx]), mfe_r[idx], sample_weight=w)


@dataclass(frozen=True)
class Target:
    """A predicted take-profit: ``ticks`` (an absolute price in ticks) and the prediction in R."""

    ticks: int
    r: float


class TargetPredictor:
    """A registered price-target model applied to one signal at a time (see the module docstring)."""

    def __init__(self, model, version: str, live: bool, min_r: float, max_r: float) -> None:
        from ml.regime_feature import OneRowForest

        if not 0 < min_r <= max_r:
            raise ValueError(f"expected 0 < min_r <= max_r, got {min_r}, {max_r}")
        self.model = model
        self.version = version
        self.live = live
        self.min_r, self.max_r = min_r, max_r
        self.forest = OneRowForest(model)

    def predict_r(self, row: np.ndarray) -> float:
        """The model's quantile of the excursion in R for one feature row (unclipped)."""
        x = np.asarray(row, np.float64).reshape(1, -1)
        if self.forest.flat:
            return float(self.forest.raw(x)[0, 0])
        return float(self.model.predict(x)[0])

    def target(self, side: int, entry: int, stop: int, row: np.ndarray) -> Target | None:
        """The take-profit of a signal entering at ``entry`` with ``stop`` (ticks); None without a risk."""
        risk = abs(entry - stop)
        if risk <= 0:
            return None
        r = min(self.max_r, max(self.min_r, self.predict_r(row)))
        return Target(entry + side * max(1, math.floor(r * risk + 0.5)), r)
