"""Signal classifier (SPEC section 6): meta-labels, uniqueness weights, purged CV, calibration.

The strategies are the primary model (side, entry, stop, target, time stop); this module decides
*whether* a signal is worth acting on, as a calibrated probability ``p = P(target before stop | x)``.
Everything here is pure and synchronous: arrays and rows in, arrays, models and reports out.

- **Labels** (triple barrier, ``triple_barrier``): upper barrier = the strategy's target, lower = its
  stop, vertical = its time stop. Label 1 when the target is touched first *and* the trade is still a
  win net of costs, 0 when the stop is touched first, and at the vertical barrier 1 if the net PnL is
  positive (SPEC 12.2). In training the barriers are applied by the execution model itself: a run's
  round trips (``labels_from_records``) enter at the execution model's fills and leave on its stop,
  target or time-stop exit fills, fees included; ``trip_label`` reads the label from such a trip with
  the same rule. Signals that never filled (refused by risk) carry no label.
- **Weights** (``uniqueness``): each label's average uniqueness over its span ``[t0, t1]`` (AFML ch. 4),
  in continuous time: the time-average of ``1 / c(t)`` with ``c(t)`` the number of spans of the same
  group (session and instrument) covering ``t``. A span of zero length takes ``1 / c(t0)``.
- **Features** (``signal_features``): levels, z-scores and ratios of the signal's feature snapshot
  (never a raw price), S_raw, C, K, side, spread/σ1, G/σ1, L/σ1, session-extreme distances/σ1,
  time of day, strategy and regime one-hot, and the regime posteriors (F26) when present.
- **Model**: ``HistGradientBoostingClassifier`` (depth 3, learning rate 0.05, no early stopping:
  its validation split is random and leaks across time), ``max_iter`` chosen by purged CV;
  calibrated with ``CalibratedClassifierCV`` over purged folds, isotonic at ``ISOTONIC_MIN``
  labels or more, sigmoid below. A logistic-regression baseline runs on the same folds.
- **Report** (``cross_validated_report``): out-of-fold AUC, Brier, log-loss, ECE over ``ECE_BINS``
  equal-width bins (before and after calibration), permutation importance on the test folds, the
  per-(strategy, regime) intercepts of SPEC 4.7 and the economic test (mean net R and Sharpe of the
  signals with ``p > p_BE + margin`` against all signals, test folds only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from engine.config.strategies import BUILTIN
from engine.events import Regime
from engine.records import TABLES
from ml.cv import purged_kfold

NS = 1_000_000_000
ISOTONIC_MIN = 1000  # SPEC 6: isotonic calibration from this many out-of-sample labels, sigmoid below
ECE_BINS = 10  # equal-width probability bins of the expected calibration error
MARGIN = 0.05  # SPEC 4.8: trade when p > p_BE + margin
SHRINK_TRADES = 50.0  # SPEC 4.7: the per-cell intercept is shrunk toward 0 with this prior weight
CELL_MIN = 200  # SPEC 6: a regime's calibration is corrected when it has this many samples ...
CELL_ECE = 0.05  # ... and its ECE exceeds this
MAX_ITER_GRID = (50, 100, 200)
THREADS = 1  # OpenMP threads of the boosting fits: more threads on busy cores made fits 50x slower (measured)
STRATEGIES = BUILTIN  # one-hot columns; a user strategy has all of them 0
REGIMES = tuple(r.name for r in Regime)

# Feature snapshot values that are already levels, z-scores or ratios (no prices, no raw sizes).
SNAPSHOT = (
    "trade_imbalance_5s", "trade_imbalance_30s", "ofi_norm_1s", "ofi_norm_10s", "ofi_norm_60s", "ofi_l1_10s",
    "ofi_l2_10s", "ofi_l3_10s", "ofi_l4_10s", "ofi_l5_10s", "ofi_integrated_10s", "sweep_share", "vpin",
    "profile_in_value_area", "hhi_bid", "hhi_ask", "spread_bps", "queue_imbalance", "depth_imbalance_weighted",
    "depth_imbalance_5", "depth_imbalance_10", "ofi_bias", "ofi_persistence", "ofi_z_1s", "ofi_z_10s", "ofi_z_60s",
    "rv_bps_1s_5m", "rv_bps_ewma_1s", "rv_bps_ewma_10s", "vol_ratio_5m_60m", "vol_ratio_1m_30m", "jump_count",
    "trade_intensity_z", "log_volume_accel", "t_drift_5m", "efficiency_ratio_5m", "trend_t_5m", "t_drift_20m",
    "efficiency_ratio_20m", "trend_t_20m", "t_drift_tf1", "t_drift_tf2", "t_drift_tf3", "kyle_lambda_z",
    "book_asymmetry", "vwap_dev_sigma",
)
POSTERIORS = tuple(f"regime_p_{name}" for name in REGIMES)
SCALED = ("spread_sigma", "target_sigma", "stop_sigma", "session_high_sigma", "session_low_sigma")
FEATURES: tuple[str, ...] = (
    *SNAPSHOT, *POSTERIORS, *SCALED, "s_raw", "confluence", "structural", "side", "tod_sin", "tod_cos",
    *(f"strategy_{s}" for s in STRATEGIES), *(f"regime_{r}" for r in REGIMES),
)


# ---- labels -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Label:
    """One meta-label: outcome, the barrier that ended it, its span and the net result in ticks."""

    label: int
    barrier: str  # "target", "stop" or "vertical"
    t0: int
    t1: int
    net_ticks: float


def triple_barrier(side: int, entry: float, target: float, stop: float, t0: int, time_stop_ns: int,
                   ts: Sequence[int], exit_price: Sequence[float], cost_ticks: float) -> Label:
    """The triple-barrier label of a position entered at ``entry`` (ticks) at ``t0``.

    ``ts``/``exit_price``: the price the position could be closed at (bid for a long, ask for a short)
    at increasing times. The first point at or beyond the target ends it at ``target`` (a resting
    limit), the first at or beyond the stop at that point's price (a stop is a market exit and may
    slip), and the vertical barrier ``t0 + time_stop_ns`` at the last price before it. ``cost_ticks``
    is the round trip's cost (fees, spread crossing) in ticks. Label 1 when the target is touched
    first and the net result is positive; 0 when the stop is; at the vertical barrier 1 iff the net
    result is positive.
    """
    if side not in (1, -1):
        raise ValueError(f"side must be +1 or -1, got {side}")
    if (target - entry) * side <= 0 or (entry - stop) * side <= 0:
        raise ValueError("the target must lie beyond the entry and the stop behind it, on the signal's side")
    end = t0 + time_stop_ns
    last = entry
    for t, price in zip(ts, exit_price, strict=True):
        if t < t0:
            continue
        if t > end:
            break
        if (price - target) * side >= 0:
            net = (target - entry) * side - cost_ticks
            return Label(int(net > 0), "target", t0, int(t), net)
        if (price - stop) * side <= 0:
            net = (price - entry) * side - cost_ticks
            return Label(0, "stop", t0, int(t), net)
        last = price
    net = (last - entry) * side - cost_ticks
    return Label(int(net > 0), "vertical", t0, end, net)


def trip_label(exit_reason: str, initial_stop_hit: bool, net_pnl: float, t0: int, t1: int, net_ticks: float) -> Label:
    """The label of a round trip the execution model closed (the same rule as ``triple_barrier``).

    ``target``: 1 iff the trip is a win net of fees. ``stop`` at the initial stop: 0. A stop that
    had tightened (breakeven after +1R, SPEC 11) touched neither original barrier, nor does an exit
    at the end of the session or by a risk guard: those end like the vertical barrier, 1 iff the net
    PnL is positive.
    """
    if exit_reason == "target":
        return Label(int(net_pnl > 0), "target", t0, t1, net_ticks)
    if exit_reason == "stop" and initial_stop_hit:
        return Label(0, "stop", t0, t1, net_ticks)
    return Label(int(net_pnl > 0), "vertical", t0, t1, net_ticks)


def excursion(side: int, entry: float, stop: float, t0: int, end: int, ts: Sequence[int],
              exit_price: Sequence[float]) -> float:
    """The maximum favourable excursion in ticks (>= 0) of a position of ``side`` entered at ``entry`` at ``t0``.

    ``ts``/``exit_price``: the price the position could be closed at, at increasing times. Points in
    ``(t0, end]`` count until the first at or behind ``stop`` (that point and later ones do not: the
    stop ended the trade there).
    """
    if side not in (1, -1):
        raise ValueError(f"side must be +1 or -1, got {side}")
    best = 0.0
    for t, price in zip(ts, exit_price, strict=True):
        if t <= t0:
            continue
        if t > end or (price - stop) * side <= 0:
            break
        best = max(best, (price - entry) * side)
    return best


def book_paths(records: list) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per instrument, the stored book samples' ``(ts, best_bid, best_ask)`` in time order (two-sided only)."""
    rows: dict[int, list[tuple[int, float, float]]] = {}
    for table, row in records:
        if table != "book_samples":
            continue
        iid, _seq, ts, _state, bid, ask = row[:6]
        if bid is not None and ask is not None:
            rows.setdefault(iid, []).append((int(ts), float(bid), float(ask)))
    out = {}
    for iid, points in rows.items():
        points.sort(key=lambda p: p[0])
        arr = np.array(points, dtype=np.float64)
        out[iid] = (arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2])
    return out


# ---- uniqueness weights ------------------------------------------------------------------------------
def uniqueness(t0: np.ndarray, t1: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Average uniqueness of each span ``[t0, t1]`` (continuous time; see the module docstring)."""
    t0, t1 = np.asarray(t0, dtype=np.float64), np.asarray(t1, dtype=np.float64)
    if t0.shape != t1.shape or np.any(t1 < t0):
        raise ValueError("t0 and t1 need equal shapes and t1 >= t0")
    g = np.zeros(len(t0), dtype=np.int64) if groups is None else np.asarray(groups)
    out = np.ones(len(t0))
    for group in np.unique(g):
        idx = np.flatnonzero(g == group)
        a, b = t0[idx], t1[idx]
        edges = np.unique(np.concatenate([a, b]))
        mids = (edges[:-1] + edges[1:]) / 2
        conc = ((a[None, :] <= mids[:, None]) & (b[None, :] >= mids[:, None])).sum(axis=1)
        for k, i in enumerate(idx):
            if b[k] == a[k]:
                out[i] = 1.0 / max(1, int(((a <= a[k]) & (b >= a[k])).sum()))
                continue
            inside = (mids > a[k]) & (mids < b[k])
            widths = np.diff(edges)[inside]
            out[i] = float(np.sum(widths / conc[inside]) / (b[k] - a[k]))
    return out


# ---- features ----------------------------------------------------------------------------------------
def signal_features(values: dict, *, strategy: str, regime: str, side: int, entry: float, stop: float,
                    target: float, score: float, confluence: float, structural: int, ts: int) -> np.ndarray:
    """One row of ``FEATURES`` from a signal (NaN where the snapshot has no value)."""
    row = np.full(len(FEATURES), np.nan)
    pos = {name: i for i, name in enumerate(FEATURES)}
    for name in (*SNAPSHOT, *POSTERIORS):
        v = values.get(name)
        if v is not None:
            row[pos[name]] = float(v)
    sigma = float(values.get("sigma1") or 0.0) if values.get("sigma1_ready") else 0.0
    sigma = sigma or float(values.get("rv_1s_5m") or 0.0)
    if sigma > 0:
        row[pos["spread_sigma"]] = float(values.get("spread") or 0.0) / sigma
        row[pos["target_sigma"]] = abs(target - entry) / sigma
        row[pos["stop_sigma"]] = abs(entry - stop) / sigma
        if "session_high_dist" in values:
            row[pos["session_high_sigma"]] = float(values["session_high_dist"]) / sigma
        if "session_low_dist" in values:
            row[pos["session_low_sigma"]] = float(values["session_low_dist"]) / sigma
    row[pos["s_raw"]], row[pos["confluence"]], row[pos["structural"]] = score, confluence, structural
    row[pos["side"]] = side
    day = (ts % (86_400 * NS)) / (86_400 * NS) * 2 * math.pi
    row[pos["tod_sin"]], row[pos["tod_cos"]] = math.sin(day), math.cos(day)
    for s in STRATEGIES:
        row[pos[f"strategy_{s}"]] = float(strategy == s)
    for r in REGIMES:
        row[pos[f"regime_{r}"]] = float(regime == r)
    return row


# ---- the labelled set from a run's records -----------------------------------------------------------
@dataclass
class SignalSet:
    """Labelled signals: features, labels, spans, groups, and per signal the figures of the economic test."""

    X: np.ndarray
    y: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    group: np.ndarray
    net_r: np.ndarray  # the trip's net R (PnL after fees / initial risk)
    p_be: np.ndarray  # SPEC 4.8 break-even probability (L + c) / (G + L)
    strategy: np.ndarray
    regime: np.ndarray
    barrier: np.ndarray
    unlabelled: int = 0
    mfe_r: np.ndarray | None = None  # the favourable excursion in R (``excursion``; NaN: no book samples)
    target_r: np.ndarray | None = None  # the strategy's own target distance in R

    @classmethod
    def concat(cls, parts: Sequence[SignalSet]) -> SignalSet:
        if not parts:
            return cls.empty()
        fields = ("X", "y", "t0", "t1", "group", "net_r", "p_be", "strategy", "regime", "barrier")
        arrays = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
        for f in ("mfe_r", "target_r"):
            if all(getattr(p, f) is not None for p in parts):
                arrays[f] = np.concatenate([getattr(p, f) for p in parts])
        return cls(**arrays, unlabelled=sum(p.unlabelled for p in parts))

    @classmethod
    def empty(cls) -> SignalSet:
        e = np.zeros(0)
        return cls(np.zeros((0, len(FEATURES))), e.astype(np.int64), e, e, e.astype(np.int64), e, e,
                   e.astype(str), e.astype(str), e.astype(str), mfe_r=e, target_r=e)

    def __len__(self) -> int:
        return len(self.y)


def _rows(records: list, table: str) -> list[dict]:
    names = TABLES[table]
    return [dict(zip(names, row, strict=True)) for t, row in records if t == table]


def labels_from_records(records: list, tick_value: dict[int, float], fee_ticks: Callable[[int, float], float],
                        group: int) -> SignalSet:
    """The labelled signals of one run (``run_reference``'s records): each signal whose entry filled is
    joined to its round trip (entry order ``o-<signal_id>``) and labelled by ``trip_label``.

    ``fee_ticks(instrument_id, price)``: the round-trip taker fees of one lot in ticks; with the spread
    at the signal (a market exit crosses it) it is the cost ``c`` of p_BE. ``group`` numbers the run;
    spans only overlap within (run, instrument).
    """
    entry_of = {o["client_id"]: o["signal_id"] for o in _rows(records, "orders") if o["purpose"] == "entry"}
    paths = book_paths(records)
    trips = {entry_of.get(t["trip_id"]): t for t in _rows(records, "round_trips")}
    xs: list[np.ndarray] = []
    out: dict[str, list] = {k: [] for k in ("y", "t0", "t1", "group", "net_r", "p_be", "strategy", "regime", "barrier",
                                            "mfe_r", "target_r")}
    unlabelled = 0
    for s in _rows(records, "signals"):
        trip = trips.get(s["signal_id"])
        if trip is None or trip["pnl"] is None or not trip["qty"] or not trip["initial_stop"]:
            unlabelled += 1
            continue
        iid = s["instrument_id"]
        risk = abs(trip["entry_price"] - trip["initial_stop"])
        if risk <= 0:
            unlabelled += 1
            continue
        net_ticks = float(trip["pnl"]) / (trip["qty"] * tick_value[iid])
        stop_hit = trip["final_stop"] == trip["initial_stop"]
        lab = trip_label(trip["exit_reason"], stop_hit, float(trip["pnl"]), int(s["ts_recv"]),
                         max(int(s["ts_recv"]), int(trip["exit_ts"])), net_ticks)
        values = orjson.loads(s["features"]) if s["features"] else {}
        regime = s["regime"] or ""
        target = float(s["target"]) if s["target"] is not None else float(trip["target"] or s["entry_price"])
        xs.append(signal_features(values, strategy=s["strategy"], regime=regime, side=int(s["side"]),
                                  entry=float(s["entry_price"]), stop=float(s["stop"]), target=target,
                                  score=float(s["score"]), confluence=float(s["confluence"] or 0.0),
                                  structural=int(s["structural"] or 0), ts=int(s["ts_recv"])))
        gain = abs(target - float(s["entry_price"]))
        loss = abs(float(s["entry_price"]) - float(s["stop"]))
        cost = fee_ticks(iid, float(s["entry_price"])) + float(values.get("spread") or 0.0)
        out["y"].append(lab.label)
        out["t0"].append(lab.t0)
        out["t1"].append(lab.t1)
        out["group"].append(group * 1000 + iid)
        out["net_r"].append(net_ticks / risk)
        out["p_be"].append(min(1.0, (loss + cost) / (gain + loss)) if gain + loss > 0 else 1.0)
        out["strategy"].append(s["strategy"])
        out["regime"].append(regime)
        out["barrier"].append(lab.barrier)
        out["target_r"].append(gain / loss if loss > 0 else np.nan)
        out["mfe_r"].append(_mfe_r(trip, int(s["time_stop_ns"] or 0), paths.get(iid), risk))
    if not xs:
        empty = SignalSet.empty()
        empty.unlabelled = unlabelled
        return empty
    return SignalSet(np.vstack(xs), np.array(out["y"], np.int64), np.array(out["t0"], np.float64),
                     np.array(out["t1"], np.float64), np.array(out["group"], np.int64),
                     np.array(out["net_r"]), np.array(out["p_be"]), np.array(out["strategy"], dtype=str),
                     np.array(out["regime"], dtype=str), np.array(out["barrier"], dtype=str), unlabelled,
                     mfe_r=np.array(out["mfe_r"], np.float64), target_r=np.array(out["target_r"], np.float64))


def _mfe_r(trip: dict, time_stop_ns: int, path: tuple | None, risk: float) -> float:
    """A round trip's favourable excursion in R from its entry fill (NaN without book samples)."""
    if path is None:
        return float("nan")
    ts, bid, ask = path
    side, t0 = int(trip["side"]), int(trip["entry_ts"])
    end = t0 + time_stop_ns if time_stop_ns > 0 else int(trip["exit_ts"])
    lo, hi = np.searchsorted(ts, t0, side="right"), np.searchsorted(ts, end, side="right")
    if lo >= hi:
        return float("nan")
    prices = bid[lo:hi] if side > 0 else ask[lo:hi]
    ticks = excursion(side, float(trip["entry_price"]), float(trip["initial_stop"]), t0, end, ts[lo:hi], prices)
    return ticks / risk


# ---- models ------------------------------------------------------------------------------------------
def new_classifier(max_iter: int = 100, seed: int = 0) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=max_iter, early_stopping=False,
                                          l2_regularization=1.0, min_samples_leaf=10, random_state=seed)


def filled(X: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Columns without any finite value in ``reference`` (default ``X``) set to 0 (HGB's binning needs one)."""
    ref = X if reference is None else reference
    empty = ~np.isfinite(ref).any(axis=0) if len(ref) else np.ones(X.shape[1], bool)
    if empty.any():
        X = X.copy()
        X[:, empty] = 0.0
    return X


def embargo_of(data: SignalSet) -> float:
    """SPEC 6: the embargo is the longest holding time, and at least 1 % of the samples' time span."""
    hold = float(np.max(data.t1 - data.t0)) if len(data) else 0.0
    span = float(np.max(data.t1) - np.min(data.t0)) if len(data) else 0.0
    return max(hold, 0.01 * span)


def splits(data: SignalSet, idx: np.ndarray, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Purged, embargoed K-fold over the samples ``idx`` (indices into ``idx``'s order)."""
    return list(purged_kfold(data.t0[idx], data.t1[idx], n_splits, embargo_of(data), data.group[idx]))


def calibration_method(n_labels: int) -> str:
    return "isotonic" if n_labels >= ISOTONIC_MIN else "sigmoid"


def fit_calibrated(data: SignalSet, idx: np.ndarray, weights: np.ndarray, max_iter: int, n_splits: int,
                   seed: int = 0) -> CalibratedClassifierCV:
    """HGB calibrated on purged inner folds of ``idx`` (isotonic or sigmoid by label count)."""
    with threadpool_limits(limits=THREADS):
        return _fit_calibrated(data, idx, weights, max_iter, n_splits, seed)


def _fit_calibrated(data: SignalSet, idx: np.ndarray, weights: np.ndarray, max_iter: int, n_splits: int,
                    seed: int) -> CalibratedClassifierCV:
    X = filled(data.X[idx])
    inner = [(tr, te) for tr, te in splits(data, idx, n_splits) if len(np.unique(data.y[idx][tr])) == 2]
    if not inner:
        raise ValueError("no calibration fold holds both outcomes")
    model = CalibratedClassifierCV(new_classifier(max_iter, seed), method=calibration_method(len(idx)), cv=inner)
    return model.fit(X, data.y[idx], sample_weight=weights[idx])


def predict(model, X: np.ndarray) -> np.ndarray:
    """P(label 1) for each row."""
    return model.predict_proba(X)[:, list(model.classes_).index(1)]


class OneRowCalibrated:
    """``predict(model, row)`` of a calibrated classifier for one row at a time, without scikit-learn's
    per-call overhead (its single-row ``predict_proba`` costs about 2 ms: input validation and one call
    per tree of every fold's booster).

    ``CalibratedClassifierCV`` averages its folds: each fold's booster gives a raw score (its
    ``decision_function``: here ``OneRowForest.raw`` of ``ml/regime_feature.py``, bit for bit), the
    fold's calibrator maps it to P(label 1) (sigmoid: ``expit(-(a * f + b))``; isotonic: linear
    interpolation on the fitted thresholds, clipped to their ends) and the probabilities are summed in
    fold order and divided by the number of folds, as scikit-learn does. Every other model (or a fold the
    fast path does not cover) is asked the ordinary way.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.folds: list[tuple] = []
        self.fast = False
        from ml.regime_feature import OneRowForest

        calibrated = getattr(model, "calibrated_classifiers_", None)
        if not calibrated or [int(c) for c in getattr(model, "classes_", ())] != [0, 1]:
            return
        folds: list[tuple] = []
        for fold in calibrated:
            estimator, calibrators = fold.estimator, list(getattr(fold, "calibrators", ()))
            forest = OneRowForest(estimator)
            if not forest.flat or len(calibrators) != 1 or [int(c) for c in estimator.classes_] != [0, 1] \
                    or getattr(estimator, "n_trees_per_iteration_", 0) != 1:
                return
            cal = calibrators[0]
            if fold.method == "sigmoid" and hasattr(cal, "a_") and hasattr(cal, "b_"):
                folds.append((forest, np.float64(cal.a_), np.float64(cal.b_), None, None))
            elif (fold.method == "isotonic" and getattr(cal, "out_of_bounds", None) == "clip"
                  and hasattr(cal, "X_thresholds_")):
                folds.append((forest, None, None, np.asarray(cal.X_thresholds_, np.float64),
                              np.asarray(cal.y_thresholds_, np.float64)))
            else:
                return
        self.folds = folds
        self.fast = True

    def arrays(self) -> list[dict] | None:
        """The fast path as plain arrays and numbers (None without one): per fold, the flat forest and its
        calibrator. ``from_arrays`` rebuilds the same probabilities without the model (cheap to send
        from a worker process and to build: no scikit-learn object is made)."""
        if not self.fast:
            return None
        return [{"forest": forest.arrays(), "a": a, "b": b, "xs": xs, "ys": ys} for forest, a, b, xs, ys in self.folds]

    @classmethod
    def from_arrays(cls, folds: list[dict]) -> OneRowCalibrated:
        from ml.regime_feature import OneRowForest

        scorer = cls(None)
        scorer.folds = [(OneRowForest.from_arrays(f["forest"]), f["a"], f["b"], f["xs"], f["ys"]) for f in folds]
        scorer.fast = True
        return scorer

    def probability(self, row: np.ndarray) -> float:
        """P(label 1) of one feature row (shape ``(len(FEATURES),)``), equal to ``predict(model, row[None, :])``."""
        if not self.fast:
            return float(predict(self.model, np.asarray(row, np.float64).reshape(1, -1))[0])
        x = np.asarray(row, np.float64).reshape(1, -1)
        total = np.zeros(1)
        for forest, a, b, xs, ys in self.folds:
            f = forest.raw(x)[:, 0]
            p = expit(-(a * f + b)) if xs is None else np.interp(f, xs, ys)
            p[(p > 1.0) & (p <= 1.0 + 1e-5)] = 1.0  # scikit-learn's rounding guard
            total += p
        total /= len(self.folds)
        return float(total[0])


def ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over ``bins`` equal-width bins of ``p``: sum of |mean y - mean p| x share."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if not len(y):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(y[m].mean() - p[m].mean())
    return float(total)


def reliability(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    which = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    return [{"bin": f"[{b / bins:.1f}, {(b + 1) / bins:.1f})", "n": int((which == b).sum()),
             "mean_p": float(np.mean(p[which == b])), "frequency": float(np.mean(y[which == b]))}
            for b in range(bins) if (which == b).any()]


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def cell_intercept(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    """The intercept b minimising the (weighted) log-loss of ``sigmoid(logit p + b)``, shrunk toward 0
    with ``SHRINK_TRADES`` prior trades: ``b * n / (n + 50)`` (SPEC 4.7)."""
    y = np.asarray(y, float)
    w = np.ones(len(y)) if w is None else np.asarray(w, float)
    z, b = logit(np.asarray(p)), 0.0
    for _ in range(50):  # Newton steps on a one-dimensional convex loss
        q = 1 / (1 + np.exp(-(z + b)))
        grad, hess = np.sum(w * (q - y)), np.sum(w * q * (1 - q))
        if hess <= 1e-12:
            break
        step = grad / hess
        b -= step
        if abs(step) < 1e-9:
            break
    b = float(np.clip(b, -5.0, 5.0))
    return b * len(y) / (len(y) + SHRINK_TRADES)


def regime_adjustment(data: SignalSet, idx: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict:
    """SPEC 6: per regime with >= ``CELL_MIN`` held-out samples and ECE > ``CELL_ECE``, the intercept
    ``b[strategy, regime]`` of each of its cells (key ``"strategy|regime"``)."""
    out: dict = {"checked": {}, "intercepts": {}}
    regimes = data.regime[idx]
    for regime in sorted(set(regimes.tolist())):
        m = regimes == regime
        e = ece(data.y[idx][m], p[m])
        out["checked"][regime or "unknown"] = {"n": int(m.sum()), "ece": e}
        if m.sum() < CELL_MIN or not e > CELL_ECE:
            continue
        for strategy in sorted(set(data.strategy[idx][m].tolist())):
            c = m & (data.strategy[idx] == strategy)
            out["intercepts"][f"{strategy}|{regime or 'unknown'}"] = cell_intercept(data.y[idx][c], p[c], w[c])
    return out


def adjusted(p: np.ndarray, strategy: np.ndarray, regime: np.ndarray, intercepts: dict) -> np.ndarray:
    """``logit p_adj = logit p + b[strategy, regime]`` (0 for cells without an intercept)."""
    b = np.array([intercepts.get(f"{s}|{r or 'unknown'}", 0.0) for s, r in zip(strategy, regime, strict=True)])
    return 1 / (1 + np.exp(-(logit(p) + b)))


def economic(net_r: np.ndarray, take: np.ndarray) -> dict:
    """Mean net R and Sharpe (mean / std of per-trade R) of the taken signals and of all of them."""
    def stats(r: np.ndarray) -> dict:
        std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
        mean = float(r.mean()) if len(r) else 0.0
        return {"trades": int(len(r)), "mean_r": mean, "sharpe": mean / std if std > 0 else 0.0}
    return {"filtered": stats(net_r[take]), "all": stats(net_r)}


def scores(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict:
    both = len(np.unique(y)) == 2
    return {"auc": float(roc_auc_score(y, p)) if both else None, "brier": float(brier_score_loss(y, p)),
            "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])), "ece": ece(y, p),
            "base_rate": float(np.mean(y))}


def choose_max_iter(data: SignalSet, weights: np.ndarray, n_splits: int, seed: int = 0) -> tuple[int, dict]:
    """``max_iter`` from ``MAX_ITER_GRID`` with the lowest purged-CV log-loss (uncalibrated)."""
    with threadpool_limits(limits=THREADS):
        return _choose_max_iter(data, weights, n_splits, seed)


def _choose_max_iter(data: SignalSet, weights: np.ndarray, n_splits: int, seed: int) -> tuple[int, dict]:
    idx = np.arange(len(data))
    losses = {}
    folds = [(tr, te) for tr, te in splits(data, idx, n_splits) if len(np.unique(data.y[tr])) == 2]
    for m in MAX_ITER_GRID:
        total, n = 0.0, 0
        for tr, te in folds:
            model = new_classifier(m, seed).fit(filled(data.X[tr]), data.y[tr], sample_weight=weights[tr])
            p = predict(model, filled(data.X[te], data.X[tr]))
            total += log_loss(data.y[te], np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]) * len(te)
            n += len(te)
        losses[m] = total / n if n else float("inf")
    best = min(losses, key=lambda k: (losses[k], k))
    return best, {str(k): v for k, v in losses.items()}


def baseline() -> LogisticRegression:
    return LogisticRegression(C=0.1, max_iter=2000)


def _standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN -> the training column mean, then z-scores with the training mean and std (for the baseline)."""
    finite = np.isfinite(train)
    count = finite.sum(axis=0)
    mean = np.where(count > 0, np.where(finite, train, 0.0).sum(axis=0) / np.maximum(count, 1), 0.0)
    a = np.where(np.isfinite(train), train, mean)
    b = np.where(np.isfinite(test), test, mean)
    std = a.std(axis=0)
    std[std == 0] = 1.0
    return (a - mean) / std, (b - mean) / std


@dataclass
class Report:
    n: int
    max_iter: int
    method: str
    oof: dict
    baseline: dict
    uncalibrated: dict
    economic: dict
    baseline_economic: dict
    importance: list
    adjustment: dict
    reliability: list
    cv_losses: dict
    folds: int
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"n": self.n, "max_iter": self.max_iter, "calibration": self.method, "folds": self.folds,
                "ece_bins": ECE_BINS, "oof": self.oof, "uncalibrated": self.uncalibrated, "baseline": self.baseline,
                "economic": self.economic, "baseline_economic": self.baseline_economic,
                "importance": self.importance, "regime_adjustment": self.adjustment,
                "reliability": self.reliability, "max_iter_cv_log_loss": self.cv_losses, **self.extra}


def cross_validated_report(data: SignalSet, n_splits: int = 5, seed: int = 0, importance_repeats: int = 3) -> Report:
    """Out-of-fold figures of the calibrated classifier and the baseline on the same purged folds."""
    with threadpool_limits(limits=THREADS):
        return _report(data, n_splits, seed, importance_repeats)


def _report(data: SignalSet, n_splits: int, seed: int, importance_repeats: int) -> Report:
    if len(data) < 4 * n_splits or len(np.unique(data.y)) < 2:
        raise ValueError(f"{len(data)} labelled signals with {len(np.unique(data.y))} outcome(s): too few to "
                         f"cross-validate with {n_splits} folds")
    w = uniqueness(data.t0, data.t1, data.group)
    max_iter, cv_losses = choose_max_iter(data, w, n_splits, seed)
    idx = np.arange(len(data))
    p_cal = np.full(len(data), np.nan)
    p_raw = np.full(len(data), np.nan)
    p_base = np.full(len(data), np.nan)
    importances = []
    for tr, te in splits(data, idx, n_splits):
        if len(np.unique(data.y[tr])) < 2:
            continue
        Xtr, Xte = filled(data.X[tr]), filled(data.X[te], data.X[tr])
        raw = new_classifier(max_iter, seed).fit(Xtr, data.y[tr], sample_weight=w[tr])
        p_raw[te] = predict(raw, Xte)
        try:
            p_cal[te] = predict(fit_calibrated(data, tr, w, max_iter, max(2, n_splits - 1), seed), Xte)
        except ValueError:
            p_cal[te] = p_raw[te]
        a, b = _standardised(data.X[tr], data.X[te])
        p_base[te] = predict(baseline().fit(a, data.y[tr], sample_weight=w[tr]), b)
        if len(np.unique(data.y[te])) == 2:
            imp = permutation_importance(raw, Xte, data.y[te], scoring="roc_auc", n_repeats=importance_repeats,
                                         random_state=seed)
            importances.append(imp.importances_mean)
    scored = np.isfinite(p_cal)
    ys, s_idx = data.y[scored], idx[scored]
    adjustment = regime_adjustment(data, s_idx, p_cal[scored], w[scored])
    p_adj = adjusted(p_cal[scored], data.strategy[scored], data.regime[scored], adjustment["intercepts"])
    take = p_adj > data.p_be[scored] + MARGIN
    take_base = p_base[scored] > data.p_be[scored] + MARGIN
    mean_imp = np.mean(importances, axis=0) if importances else np.zeros(len(FEATURES))
    top = np.argsort(-mean_imp)[:15]
    return Report(
        n=int(scored.sum()), max_iter=max_iter, method=calibration_method(int(scored.sum())),
        oof=scores(ys, p_cal[scored]), baseline=scores(ys, p_base[scored]), uncalibrated=scores(ys, p_raw[scored]),
        economic=economic(data.net_r[scored], take), baseline_economic=economic(data.net_r[scored], take_base),
        importance=[{"feature": FEATURES[i], "auc_drop": float(mean_imp[i])} for i in top],
        adjustment=adjustment, reliability=reliability(ys, p_cal[scored]), cv_losses=cv_losses, folds=n_splits)


def train(data: SignalSet, max_iter: int, n_splits: int = 5, seed: int = 0) -> CalibratedClassifierCV:
    """The final calibrated model on every labelled signal (weights: average uniqueness)."""
    w = uniqueness(data.t0, data.t1, data.group)
    return fit_calibrated(data, np.arange(len(data)), w, max_iter, n_splits, seed)
