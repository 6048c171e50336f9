"""Overfitting guards of the optimiser (SPEC 8): the Deflated Sharpe Ratio, the probability of backtest
overfitting by combinatorially symmetric cross-validation, and walk-forward selection over sessions.

- Deflated Sharpe Ratio (Bailey & López de Prado, "The Deflated Sharpe Ratio", JPM 2014): the
  probability that the true Sharpe exceeds ``SR0``, the expected maximum of ``N`` independent trials'
  Sharpe ratios under the null, ``SR0 = sqrt(V) ((1 - g) Z(1 - 1/N) + g Z(1 - 1/(N e)))`` with ``V`` the
  variance of the trials' Sharpe ratios and ``g`` the Euler-Mascheroni constant;
  ``DSR = Phi((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2))`` where the kurtosis
  is not excess (3 for a normal) and every Sharpe ratio is per observation (not annualised).
- PBO (Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", 2017): the
  ``T x N`` matrix of per-period results of ``N`` trials is cut into ``S`` row blocks; for every choice
  of ``S/2`` blocks as in-sample, the best in-sample trial's out-of-sample rank ``w`` (in (0, 1)) gives the
  logit ``ln(w / (1 - w))``; PBO is the share of logits <= 0.
- Walk-forward: sessions in order, cut into windows; the best trial of window ``k`` is scored on
  window ``k + 1``; only these out-of-sample figures are concatenated and reported.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def expected_max_sharpe(trials: int, variance: float) -> float:
    """``SR0``: the expected maximum Sharpe ratio of ``trials`` independent trials whose Sharpe ratios have
    variance ``variance`` and true value zero."""
    if trials < 2 or variance <= 0:
        return 0.0
    z = _NORMAL.inv_cdf
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * z(1 - 1 / trials) + EULER_GAMMA * z(1 - 1 / (trials * math.e)))


def deflated_sharpe(sharpe: float, observations: int, trials: int, variance: float, skew: float = 0.0,
                    kurtosis: float = 3.0) -> float:
    """The Deflated Sharpe Ratio of a per-observation ``sharpe`` estimated on ``observations`` returns, the
    best of ``trials`` whose Sharpe ratios have variance ``variance``; nan with fewer than 2 observations."""
    if observations < 2:
        return math.nan
    sr0 = expected_max_sharpe(trials, variance)
    denominator = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if denominator <= 0:
        return math.nan
    return _NORMAL.cdf((sharpe - sr0) * math.sqrt(observations - 1) / math.sqrt(denominator))


def moments(values: Sequence[float]) -> tuple[float, float, float]:
    """Sharpe (mean / sample deviation), skewness and (non-excess) kurtosis of a return series."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or float(x.std(ddof=1)) == 0:
        return 0.0, 0.0, 3.0
    centred = x - x.mean()
    m2 = float(np.mean(centred**2))
    return (float(x.mean() / x.std(ddof=1)), float(np.mean(centred**3)) / m2**1.5,
            float(np.mean(centred**4)) / m2**2)


def pbo_cscv(matrix: np.ndarray, blocks: int = 16,
             score: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, np.ndarray]:
    """The probability of backtest overfitting of the trials (columns) of a ``T x N`` matrix of per-period
    results, with ``blocks`` row blocks (an even number; lowered to the largest even count <= T).

    Returns:
        ``(pbo, logits)``: the share of logits <= 0, and the logit of every combination.
    """
    matrix = np.asarray(matrix, dtype=float)
    rows, trials = matrix.shape
    if trials < 2:
        raise ValueError(f"PBO needs at least 2 trials, got {trials}")
    blocks = min(blocks, rows - rows % 2)
    if blocks < 2:
        raise ValueError(f"PBO needs at least 2 periods, got {rows}")
    score = score or _sharpe_columns
    parts = np.array_split(np.arange(rows), blocks)
    logits = []
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        inside = np.concatenate([parts[i] for i in chosen])
        outside = np.concatenate([parts[i] for i in range(blocks) if i not in chosen])
        best = int(np.argmax(score(matrix[inside])))
        oos = score(matrix[outside])
        rank = float(np.sum(oos < oos[best]) + 0.5 * (np.sum(oos == oos[best]) - 1) + 1)  # 1..N, ties averaged
        w = rank / (trials + 1)
        logits.append(math.log(w / (1 - w)))
    values = np.array(logits)
    return float(np.mean(values <= 0)), values


def _sharpe_columns(block: np.ndarray) -> np.ndarray:
    """Each column's mean over standard deviation (its mean when a half holds a single period)."""
    if block.shape[0] < 2:
        return block.mean(axis=0)
    std = block.std(axis=0, ddof=1)
    mean = block.mean(axis=0)
    return np.divide(mean, std, out=np.zeros_like(mean), where=std > 0)


@dataclass(frozen=True)
class WalkForwardStep:
    """One step: the trial chosen on window ``train`` and its figure there and on the next window."""

    train: tuple[int, ...]
    test: tuple[int, ...]
    trial: int
    in_sample: float
    out_of_sample: float


def walk_forward(sessions: int, windows: int, score: Callable[[int, tuple[int, ...]], float],
                 trials: Sequence[int]) -> list[WalkForwardStep]:
    """Cut ``sessions`` (0..sessions-1, in order) into ``windows`` consecutive windows; for each window but
    the last, choose the trial with the best ``score(trial, sessions)`` on it and score it on the next.
    Ties go to the lower trial number."""
    if windows < 2 or sessions < windows:
        raise ValueError(f"walk-forward needs 2 <= windows <= sessions, got {windows} windows of {sessions}")
    cuts = [tuple(int(i) for i in part) for part in np.array_split(np.arange(sessions), windows)]
    steps = []
    for train, test in itertools.pairwise(cuts):
        best = max(sorted(trials), key=lambda t: score(t, train))
        steps.append(WalkForwardStep(train, test, best, score(best, train), score(best, test)))
    return steps
