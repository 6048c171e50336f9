"""Regime model (SPEC section 5): a HistGradientBoostingClassifier over the six regimes.

Features are causal, one row per TF2 (10 s) close, computed from the same ``RegimeInputs`` the rule
labels read (``ml/labels.py``): each uses bars ``<= t`` only, its baselines bars ``< t``. The model's
posteriors at a close are feature F26 (``posteriors``: one batch per session or per close, no
per-event work). Training labels are the simulator's true regimes (truth labels) or, on real data,
the rule labels; rows before ``MIN_BARS`` (the shortest look-back) are not used.

``evaluate`` reports balanced accuracy, macro-F1, per-class recall and the confusion matrix
(rows: truth, columns: prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import confusion_matrix, f1_score, recall_score

from engine.events import Regime
from ml.cv import purged_kfold
from ml.labels import (
    UNKNOWN,
    RegimeInputs,
    RuleParams,
    causal_quantile,
    drift_t_stat,
    efficiency_ratio,
    jump_scale,
    realised_vol,
    regime_rule_labels,
    volatility_ratio,
    volume_acceleration,
)

CLASSES = [int(r) for r in Regime]
MIN_BARS = 30  # 5 min: the shortest baseline any feature needs
EMBARGO_BARS = 120  # the longest look-back (20 min): rows this close after a test fold share its data
FEATURES = (
    "log_sigma_1m", "log_sigma_5m", "log_sigma_30m", "log_sigma_5m_rel", "vr_1m_30m", "vr_5m_60m", "va_30s_300s",
    "t_drift_20m", "t_drift_5m", "er_20m", "er_5m", "spread_rel", "depth_rel", "jump_z_60s", "closed_60s",
    "range_pos_30m", "rule_label",
)


def regime_features(x: RegimeInputs) -> np.ndarray:
    """``(bars, len(FEATURES))`` causal features (NaN where a window is not filled yet)."""
    p = RuleParams()
    mid = x.mid
    with np.errstate(invalid="ignore", divide="ignore"):
        s1, s5, s30 = realised_vol(mid, 6), realised_vol(mid, 30), realised_vol(mid, 180, min_periods=30)
        s5_med = causal_quantile(s5, 0.5, None, MIN_BARS)
        spread_med = causal_quantile(x.spread, 0.5, 180, MIN_BARS)
        depth = np.minimum(x.depth_bid / causal_quantile(x.depth_bid, 0.5, 180, MIN_BARS),
                           x.depth_ask / causal_quantile(x.depth_ask, 0.5, 180, MIN_BARS))
        jump = _rolling_max(x.max_abs_r1s, 6) / jump_scale(x, p)
        closed = _rolling_max((~np.asarray(x.is_open, bool)).astype(float), 6)
        hi, lo = _lagged_extreme(mid, 180, np.max, 4), _lagged_extreme(mid, 180, np.min, 4)
        position = np.where(hi > lo, (mid - lo) / (hi - lo), 0.5)
        columns = [
            np.log(s1 + 1e-3), np.log(s5 + 1e-3), np.log(s30 + 1e-3), np.log((s5 + 1e-3) / (s5_med + 1e-3)),
            volatility_ratio(mid, 6, 180, min_long=30), volatility_ratio(mid, 30, 360, min_long=60),
            volume_acceleration(x.volume, 3, 30), drift_t_stat(mid, 120), drift_t_stat(mid, 30),
            efficiency_ratio(mid, 120), efficiency_ratio(mid, 30), x.spread / spread_med, depth, jump, closed,
            position, regime_rule_labels(x).astype(float),
        ]
    out = np.column_stack(columns).astype(np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


@dataclass(frozen=True)
class RegimeSet:
    """Rows of many sessions: features, truth labels, bar index and session id (equal lengths)."""

    X: np.ndarray
    y: np.ndarray
    bar: np.ndarray
    session: np.ndarray

    @classmethod
    def build(cls, sessions: Sequence[tuple[RegimeInputs, np.ndarray]]) -> RegimeSet:
        """From ``(inputs, truth per bar)`` pairs; rows with unknown truth or before ``MIN_BARS`` dropped."""
        xs, ys, bars, ids = [], [], [], []
        for k, (inputs, truth) in enumerate(sessions):
            feats = regime_features(inputs)
            keep = (np.arange(len(truth)) >= MIN_BARS) & (np.asarray(truth) != UNKNOWN)
            xs.append(feats[keep])
            ys.append(np.asarray(truth)[keep])
            bars.append(np.flatnonzero(keep))
            ids.append(np.full(int(keep.sum()), k))
        return cls(np.concatenate(xs), np.concatenate(ys).astype(np.int64), np.concatenate(bars),
                   np.concatenate(ids))


def new_classifier(seed: int = 0) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08, max_leaf_nodes=31,
                                          l2_regularization=1.0, class_weight="balanced", random_state=seed)


def train_regime(data: RegimeSet, seed: int = 0) -> HistGradientBoostingClassifier:
    return fit(new_classifier(seed), data.X, data.y)


def fit(model: HistGradientBoostingClassifier, X: np.ndarray, y: np.ndarray) -> HistGradientBoostingClassifier:
    """``model.fit`` with columns that hold no value at all (windows longer than short sessions) set to 0.

    scikit-learn's binning fails on a column without a single finite value; at prediction time a
    NaN in such a column goes where the training zeros went.
    """
    empty = ~np.isfinite(X).any(axis=0)
    if empty.any():
        X = X.copy()
        X[:, empty] = 0.0
    return model.fit(X, y)


def cross_validate(data: RegimeSet, n_splits: int = 3, seed: int = 0) -> dict:
    """Purged, embargoed K-fold over the training sessions (labels are the regime at the close: t1 = t0)."""
    pred = np.full(len(data.y), UNKNOWN)
    for train, test in purged_kfold(data.bar, data.bar, n_splits, EMBARGO_BARS, data.session):
        if len(np.unique(data.y[train])) < 2:
            continue
        pred[test] = fit(new_classifier(seed), data.X[train], data.y[train]).predict(data.X[test])
    scored = pred != UNKNOWN
    return evaluate(data.y[scored], pred[scored])


def posteriors(model: HistGradientBoostingClassifier, x: RegimeInputs) -> np.ndarray:
    """F26: ``(bars, 6)`` posterior of each regime at every TF2 close (columns in ``Regime`` order)."""
    proba = model.predict_proba(regime_features(x))
    out = np.zeros((len(proba), len(CLASSES)))
    out[:, [int(c) for c in model.classes_]] = proba
    return out


def evaluate(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Balanced accuracy, macro-F1, per-class recall (classes present in the truth) and the confusion matrix."""
    present = [c for c in CLASSES if np.any(truth == c)]
    recall = recall_score(truth, pred, labels=present, average=None, zero_division=0)
    return {
        "n": len(truth),
        "balanced_accuracy": float(np.mean(recall)) if len(truth) else None,  # mean recall of present classes
        "macro_f1": float(f1_score(truth, pred, labels=present, average="macro", zero_division=0)),
        "recall": {Regime(c).name: float(r) for c, r in zip(present, recall, strict=True)},
        "support": {Regime(c).name: int(np.sum(truth == c)) for c in present},
        "labels": [Regime(c).name for c in CLASSES],
        "confusion": confusion_matrix(truth, pred, labels=CLASSES).tolist(),
    }


def _rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for k in range(window):
        shifted = np.full(len(x), np.nan)
        shifted[k:] = x[: len(x) - k] if k else x
        out = np.fmax(out, shifted)
    return out


def _lagged_extreme(x: np.ndarray, window: int, fn, lag: int) -> np.ndarray:
    """``fn`` over bars ``[t - lag - window + 1, t - lag]`` (at least ``MIN_BARS`` of them)."""
    out = np.full(len(x), np.nan)
    for t in range(lag + MIN_BARS - 1, len(x)):
        seg = x[max(0, t - lag - window + 1): t - lag + 1]
        seg = seg[np.isfinite(seg)]
        if len(seg) >= MIN_BARS:
            out[t] = fn(seg)
    return out
