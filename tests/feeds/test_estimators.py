"""Tests of feeds.simulator.estimators against closed forms, exact fits and reference libraries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from feeds.simulator.estimators import (
    acf,
    acf_hac_se,
    correlation,
    cumulative_power_law_exponent,
    hill_index,
    kendall_correlation,
    kendall_tau,
    long_run_variance,
    newey_west_bandwidth,
    ols,
    pearson_kurtosis,
    plain,
    pooled_acf,
    power_law_fit,
    power_law_wls,
    spearman,
)


def test_kurtosis_of_gaussian_and_laplace_samples():
    """Pearson kurtosis is about 3 for Gaussian and about 6 for Laplace samples."""
    rng = np.random.default_rng(1)
    assert pearson_kurtosis(rng.normal(size=400_000)) == pytest.approx(3.0, abs=0.05)
    assert pearson_kurtosis(rng.laplace(size=400_000)) == pytest.approx(6.0, abs=0.25)


def test_kurtosis_matches_scipy_non_excess():
    """The estimator equals scipy's biased, non-excess kurtosis."""
    x = np.random.default_rng(2).standard_t(5, 1000)
    assert pearson_kurtosis(x) == pytest.approx(stats.kurtosis(x, fisher=True, bias=True) + 3)


def test_degenerate_inputs_give_nan():
    """Constant or too-short inputs give NaN (and no warning, which the test config would raise)."""
    assert math.isnan(pearson_kurtosis(np.ones(50)))
    assert math.isnan(pearson_kurtosis(np.ones(2)))
    assert math.isnan(hill_index(np.zeros(100)))
    assert np.isnan(acf(np.ones(10), 3)).all()
    assert math.isnan(correlation(np.ones(5), np.arange(5.0)))
    assert all(math.isnan(v) for v in ols(np.ones(5), np.arange(5.0)))
    assert all(math.isnan(v) for v in power_law_fit(np.array([1.0, 2.0]), np.array([1.0, -1.0])))


def test_hill_index_of_a_pareto_tail():
    """The Hill estimator recovers the tail index 3 of a Pareto sample."""
    x = np.random.default_rng(3).pareto(3.0, 200_000) + 1.0
    assert hill_index(x, 0.05) == pytest.approx(3.0, rel=0.06)


def test_acf_of_an_ar1_process():
    """The sample ACF of an AR(1) with φ = 0.6 is close to φ^k."""
    rng = np.random.default_rng(4)
    e = rng.normal(size=200_000)
    x = np.empty_like(e)
    x[0] = e[0]
    for i in range(1, len(e)):
        x[i] = 0.6 * x[i - 1] + e[i]
    assert acf(x, 4)[1:] == pytest.approx(0.6 ** np.arange(1, 5), abs=0.01)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=3, max_size=80), st.integers(1, 10))
def test_acf_equals_direct_sums(values, max_lag):
    """The FFT ACF equals the direct biased estimator Σ d_t d_{t+k} / Σ d_t²."""
    x = np.array(values, dtype=float)
    d = x - x.mean()
    denom = d @ d
    got = acf(x, max_lag)
    for k in range(max_lag + 1):
        want = np.nan if denom <= 0 or k >= len(x) else (d[: len(d) - k] @ d[k:]) / denom
        assert (np.isnan(got[k]) and np.isnan(want)) or got[k] == pytest.approx(want, abs=1e-9)


def test_pooled_acf_weights_by_length():
    """Pooling averages the parts' ACFs with weights n and returns the total n."""
    a, b = np.tile([1.0, -1.0], 50), np.tile([1.0, 1.0, -1.0, -1.0], 75)
    pooled, n = pooled_acf([a, b], 2)
    assert n == 400
    assert pooled[1:] == pytest.approx((acf(a, 2)[1:] * 100 + acf(b, 2)[1:] * 300) / 400)


def test_power_law_fit_and_ols_recover_exact_laws():
    """An exact power law gives its exponent with R² = 1; an exact line gives slope and intercept."""
    x = np.arange(1.0, 50.0)
    slope, r2 = power_law_fit(x, 2.0 * x**-0.5)
    assert slope == pytest.approx(-0.5) and r2 == pytest.approx(1.0)
    assert ols(x, 3 * x + 1) == pytest.approx((3.0, 1.0, 1.0))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=3, max_size=30))
def test_spearman_and_correlation_equal_scipy(pairs):
    """Spearman (average ranks for ties) and Pearson equal scipy's on any sample."""
    x, y = np.array(pairs, dtype=float).T
    if x.std() == 0 or y.std() == 0:
        assert math.isnan(spearman(x, y))
        return
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)
    assert correlation(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-9)


def test_plain_makes_json_ready_values():
    """numpy scalars and arrays become Python numbers and lists; NaN becomes None."""
    got = plain({"a": np.float64(1.5), "b": np.array([1, 2]), "c": np.bool_(True), "d": float("nan"),
                 "e": (np.int64(3),)})
    assert got == {"a": 1.5, "b": [1, 2], "c": True, "d": None, "e": [3]}
    assert type(got["b"][0]) is int


def test_power_law_wls_recovers_exponent_and_scale_with_negative_points():
    """WLS finds δ and Y of y = Y·x^δ + noise even when noise makes some y negative."""
    rng = np.random.default_rng(6)
    x = np.exp(rng.uniform(-9, -3, 2000))
    y = 20 * x**0.6 + rng.normal(0, 0.2, 2000)
    assert (y < 0).any()
    delta, scale = power_law_wls(x, y)
    assert delta == pytest.approx(0.6, abs=0.03) and scale == pytest.approx(20, rel=0.2)
    x = np.arange(1.0, 20.0)
    assert power_law_wls(x, 3 * x**0.437) == pytest.approx((0.437, 3.0), abs=1e-3)


def test_newey_west_long_run_variance_of_an_ar1():
    """The Bartlett long-run variance of an AR(1) with φ = 0.5 and unit shocks approaches 1/(1-φ)² = 4."""
    rng = np.random.default_rng(30)
    e = rng.normal(size=200_000)
    x = np.empty_like(e)
    x[0] = e[0]
    for i in range(1, len(e)):
        x[i] = 0.5 * x[i - 1] + e[i]
    assert long_run_variance(x, 60) == pytest.approx(4.0, rel=0.08)
    assert long_run_variance(x, 0) == pytest.approx(x.var())
    assert newey_west_bandwidth(720) == 6 and newey_west_bandwidth(100) == 4


def test_acf_hac_se_is_iid_for_white_noise_and_wider_under_volatility_clustering():
    """For i.i.d. returns the HAC SE of the pooled ACF is 1/sqrt(mn); clustered volatility widens it."""
    rng = np.random.default_rng(31)
    iid = [rng.normal(size=4000) for _ in range(3)]
    assert acf_hac_se(iid, 3)[1:] == pytest.approx(1 / np.sqrt(12_000), rel=0.15)
    vol = np.exp(np.convolve(rng.normal(size=4050), np.ones(50) / 7, mode="valid")[:4000])
    clustered = [vol * rng.normal(size=4000) for _ in range(3)]
    assert (acf_hac_se(clustered, 3)[1:] > 1.3 / np.sqrt(12_000)).all()
    assert np.isnan(acf_hac_se([np.ones(3)], 3)).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=3, max_size=60))
def test_kendall_tau_equals_scipy_tau_b(pairs):
    """Kendall's tau-b with ties equals scipy's, chunked or not."""
    x, y = (np.array(v, dtype=float) for v in zip(*pairs, strict=True))
    expected = stats.kendalltau(x, y).statistic
    got = kendall_tau(x, y, chunk=7)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_kendall_correlation_recovers_rho_under_scale_mixing():
    """sin(πτ/2) recovers ρ = 0.5 of a Gaussian scale mixture where Pearson's estimate is noisier."""
    rng = np.random.default_rng(32)
    n = 3000
    z = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=n)
    scale = np.where(rng.random(n) < 0.02, 25.0, 1.0)[:, None]
    x, y = (z * scale).T
    assert kendall_correlation(x, y) == pytest.approx(0.5, abs=0.05)
    assert np.isnan(kendall_correlation(np.ones(5), np.arange(5.0)))


@pytest.mark.parametrize("gamma", [0.2, 0.5, 0.9, 1.2])
def test_cumulative_power_law_exponent_is_exact_for_power_laws(gamma):
    """The running-sum fit returns γ for an exact ACF(k) = A k^-γ, and NaN without positive sums."""
    k = np.arange(1, 101, dtype=float)
    assert cumulative_power_law_exponent(0.4 * k**-gamma) == pytest.approx(gamma, abs=0.011)
    assert np.isnan(cumulative_power_law_exponent(-np.ones(10)))
