"""Overfitting guards: deflated Sharpe against the paper's worked example, PBO on synthetic trials,
walk-forward selection on a hand-built score table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.validation import deflated_sharpe, expected_max_sharpe, moments, pbo_cscv, walk_forward


def test_deflated_sharpe_matches_the_papers_worked_example():
    """Bailey & López de Prado (2014): 100 trials, V[SR] = 1/2 annualised, SR 2.5 annualised over 1,250
    days with skew -3 and kurtosis 10 give SR0 = 0.1132 per day and DSR = 0.9004."""
    variance = 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe(2.5 / math.sqrt(250), 1250, 100, variance, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_one_trial_is_the_probabilistic_sharpe_ratio():
    """With one trial SR0 is 0, so a zero Sharpe has DSR one half and a positive one more."""
    assert deflated_sharpe(0.0, 100, 1, 0.01) == pytest.approx(0.5)
    assert deflated_sharpe(0.2, 100, 1, 0.01) > 0.95


def test_more_trials_deflate_more():
    """The same Sharpe ratio is worth less the more trials it was the best of."""
    values = [deflated_sharpe(0.15, 500, n, 0.002) for n in (2, 10, 100, 1000)]
    assert values == sorted(values, reverse=True)


def test_moments_of_a_known_series():
    """Sharpe, skew and non-excess kurtosis of (-1, 1, -1, 1) are 0, 0 and 1."""
    assert moments([-1.0, 1.0, -1.0, 1.0]) == pytest.approx((0.0, 0.0, 1.0))
    assert moments([1.0, 2.0, 3.0])[0] == pytest.approx(2.0)


def test_pbo_of_pure_noise_is_near_one_half():
    """Twenty strategies of pure noise: the in-sample best is a coin flip out of sample (PBO ~ 0.5)."""
    rng = np.random.default_rng(7)
    pbo, logits = pbo_cscv(rng.normal(0, 1, size=(320, 20)), blocks=16)
    assert len(logits) == math.comb(16, 8)
    assert 0.35 < pbo < 0.65


def test_pbo_with_one_truly_better_strategy_is_low():
    """One strategy with a real edge among noise is chosen in sample and stays on top out of sample."""
    rng = np.random.default_rng(7)
    matrix = rng.normal(0, 1, size=(320, 20))
    matrix[:, 3] += 0.6
    pbo, _ = pbo_cscv(matrix, blocks=16)
    assert pbo < 0.05


def test_pbo_lowers_blocks_to_the_rows_available():
    """Six periods allow six blocks (20 combinations)."""
    _, logits = pbo_cscv(np.arange(12.0).reshape(6, 2), blocks=16)
    assert len(logits) == math.comb(6, 3)


def test_walk_forward_chooses_on_each_window_and_scores_on_the_next():
    """Trial 1 is best on sessions 0-1, trial 0 on sessions 2-3: each is scored on the window after it."""
    table = {0: [0, 0, 5, 5, 1, 1], 1: [3, 3, 0, 0, 2, 2]}

    def score(trial, sessions):
        return float(sum(table[trial][s] for s in sessions))

    steps = walk_forward(6, 3, score, [0, 1])
    assert [(s.train, s.test, s.trial, s.in_sample, s.out_of_sample) for s in steps] == [
        ((0, 1), (2, 3), 1, 6.0, 0.0), ((2, 3), (4, 5), 0, 10.0, 2.0)]


def test_walk_forward_needs_two_windows():
    """Fewer than two windows is refused with the counts named."""
    with pytest.raises(ValueError, match="1 windows of 4"):
        walk_forward(4, 1, lambda t, s: 0.0, [0])
