"""Purged and embargoed K-fold (López de Prado, AFML ch. 7) over time-ordered samples.

Sample ``i`` is observed at ``t0[i]`` and its label depends on the market up to ``t1[i]``
(``t1 >= t0``: the label horizon). Folds are contiguous blocks of samples in time order. For a
test fold spanning ``[min t0, max t1]`` a training sample is dropped (purged) when its own span
``[t0, t1]`` overlaps the test span, and also (embargo) when it starts within ``embargo`` after
the test span ends: features built from look-back windows leak the test period into samples just
after it. ``groups`` (e.g. the session) keep samples of different sessions apart: spans only
overlap within a group.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def purged_kfold(t0: np.ndarray, t1: np.ndarray, n_splits: int, embargo: float,
                 groups: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_idx, test_idx)`` for ``n_splits`` contiguous folds (samples sorted by group, t0)."""
    t0, t1 = np.asarray(t0, dtype=float), np.asarray(t1, dtype=float)
    if t0.shape != t1.shape or np.any(t1 < t0):
        raise ValueError("t0 and t1 need equal shapes and t1 >= t0")
    if n_splits < 2 or n_splits > len(t0):
        raise ValueError(f"n_splits must be in [2, {len(t0)}], got {n_splits}")
    g = np.zeros(len(t0), dtype=np.int64) if groups is None else np.asarray(groups)
    order = np.lexsort((t0, g))
    for test in np.array_split(order, n_splits):
        keep = np.ones(len(t0), dtype=bool)
        keep[test] = False
        for group in np.unique(g[test]):
            members = test[g[test] == group]
            lo, hi = t0[members].min(), t1[members].max()
            same = g == group
            overlaps = (t0 <= hi) & (t1 >= lo)
            embargoed = (t0 > hi) & (t0 <= hi + embargo)
            keep &= ~(same & (overlaps | embargoed))
        yield np.flatnonzero(keep), np.sort(test)
