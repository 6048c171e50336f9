"""The per-signal fast path of the calibrated signal classifier (``OneRowCalibrated``) gives exactly the
calibrated probability of scikit-learn's ``predict_proba``, for sigmoid and isotonic calibration, on
rows inside, at the edges of and far outside the training data, with missing values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

from ml import signal_model as sm


def _data(n: int, seed: int) -> sm.SignalSet:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(sm.FEATURES)))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing snapshot values
    X[:, sm.FEATURES.index("regime_p_SHOCK")] = np.nan  # a column that is never present
    s = np.nan_to_num(X[:, sm.FEATURES.index("s_raw")]) + 0.5 * np.nan_to_num(X[:, 3])
    y = (rng.random(n) < 1 / (1 + np.exp(-s))).astype(np.int64)
    t0 = np.arange(n, dtype=float)
    e = np.zeros(n)
    return sm.SignalSet(X, y, t0, t0 + 2, np.zeros(n, np.int64), e, e, np.array(["x"] * n),
                        np.array([""] * n), np.array(["target"] * n))


def _rows(data: sm.SignalSet, seed: int, n: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fresh = rng.normal(scale=3.0, size=(n, data.X.shape[1]))
    fresh[rng.random(fresh.shape) < 0.2] = np.nan
    fresh[: n // 10] *= 1e6  # far outside every threshold: the calibration map's clipped ends
    return np.vstack([data.X[:500], fresh, np.full((1, data.X.shape[1]), np.nan)])


@pytest.mark.parametrize(("n", "method"), [(600, "sigmoid"), (sm.ISOTONIC_MIN + 200, "isotonic")])
def test_one_row_path_equals_predict_proba(n, method):
    data = _data(n, seed=n)
    model = sm.fit_calibrated(data, np.arange(n), np.ones(n), 30, 3)
    assert sm.calibration_method(n) == method and len(model.calibrated_classifiers_) >= 2
    fast = sm.OneRowCalibrated(model)
    assert fast.fast
    rows = _rows(data, seed=n + 1)
    expected = sm.predict(model, rows)
    got = np.array([fast.probability(row) for row in rows])
    # the same floating-point operations in the same order: equal bit for bit, not merely close
    np.testing.assert_array_equal(got, expected)
    # and one row at a time through scikit-learn gives the same figures as the batch
    assert [float(sm.predict(model, r[None, :])[0]) for r in rows[:20]] == got[:20].tolist()
    assert len(np.unique(got)) > 10  # the rows reach many leaves and calibration segments


def test_other_models_are_asked_the_ordinary_way():
    data = _data(300, seed=3)
    X = np.nan_to_num(data.X)
    model = CalibratedClassifierCV(LogisticRegression(max_iter=500), method="sigmoid", cv=2).fit(X, data.y)
    fast = sm.OneRowCalibrated(model)
    assert not fast.fast
    # (row by row on both sides: a linear model's batch product may differ from its one-row one in the last bit)
    assert [fast.probability(r) for r in X[:50]] == [float(sm.predict(model, r[None, :])[0]) for r in X[:50]]
