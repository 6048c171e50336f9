"""Purged, embargoed K-fold: no training sample overlaps a test fold's label horizon plus embargo."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.cv import purged_kfold


def naive_conflict(t0, t1, g, train, test, embargo):
    """Reference: any training sample whose span meets a test sample's [t0, t1 + embargo] in its group."""
    for i in train:
        for j in test:
            if g[i] == g[j] and t0[i] <= t1[j] + embargo and t1[i] >= t0[j]:
                return True
    return False


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 40), st.integers(0, 2)), min_size=6, max_size=60),
       st.integers(2, 5), st.integers(0, 30))
def test_no_training_sample_meets_a_test_label_horizon(rows, k, embargo):
    t0 = np.array([r[0] for r in rows], float)
    t1 = t0 + np.array([r[1] for r in rows])
    g = np.array([r[2] for r in rows])
    seen = []
    for train, test in purged_kfold(t0, t1, min(k, len(rows)), embargo, g):
        assert not set(train) & set(test)
        # embargo applies after the fold's whole span; the naive check per test sample is a subset of that
        assert not naive_conflict(t0, t1, g, train, test, embargo)
        seen.extend(test)
    assert sorted(seen) == list(range(len(rows)))


def test_known_answer():
    t0 = np.arange(10.0)
    t1 = t0 + 2  # each label looks 2 ahead
    folds = list(purged_kfold(t0, t1, 2, embargo=1))
    train, test = folds[0]
    assert test.tolist() == [0, 1, 2, 3, 4]
    # test span [0, 6]; samples 5, 6 overlap it; sample 7 (t0 = 7) is embargoed; 8, 9 remain
    assert train.tolist() == [8, 9]
    train, test = folds[1]
    # test span [5, 11]: samples 3, 4 (t1 = 5, 6) overlap it and are purged
    assert train.tolist() == [0, 1, 2]


def test_groups_do_not_purge_each_other():
    t0 = np.array([0.0, 1, 0, 1])
    t1 = t0 + 5
    folds = list(purged_kfold(t0, t1, 2, embargo=0, groups=np.array([0, 0, 1, 1])))
    assert [f[1].tolist() for f in folds] == [[0, 1], [2, 3]]
    assert [f[0].tolist() for f in folds] == [[2, 3], [0, 1]]


def test_bad_arguments():
    with pytest.raises(ValueError):
        list(purged_kfold(np.arange(3.0), np.arange(3.0) - 1, 2, 0))
    with pytest.raises(ValueError):
        list(purged_kfold(np.arange(3.0), np.arange(3.0), 4, 0))
