"""Small statistical estimators for the stylized facts: moments, tails, ACF, fits, ranks.

Pure numpy functions on 1-D arrays. Each returns NaN (never raises, never warns) when its
statistic is undefined: too few values, zero variance, no positive points to fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def pearson_kurtosis(x: np.ndarray) -> float:
    """``E[(x-μ)^4] / Var(x)^2`` (Normal = 3); NaN for fewer than 4 values or zero variance."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 4:
        return float("nan")
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    return float(np.mean(d**4) / m2**2) if m2 > 0 else float("nan")


def hill_index(x: np.ndarray, tail: float = 0.05) -> float:
    """Hill estimator of the tail index of ``|x|`` over its top ``tail`` share (NaN if undefined)."""
    a = np.sort(np.abs(np.asarray(x, dtype=np.float64)))[::-1]
    k = int(tail * len(a))
    if k < 2 or a[k] <= 0:
        return float("nan")
    return float(1.0 / np.mean(np.log(a[:k] / a[k])))


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation at lags 0..max_lag (FFT; NaN where undefined)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(max_lag + 1, np.nan)
    d = x - x.mean() if len(x) else x
    denom = float(d @ d)
    if len(x) < 2 or denom <= 0:
        return out
    f = np.fft.rfft(d, 2 * len(d))
    full = np.fft.irfft(f * np.conj(f))[: min(max_lag + 1, len(d))] / denom
    out[: len(full)] = full
    return out


def pooled_acf(parts: Sequence[np.ndarray], max_lag: int) -> tuple[np.ndarray, int]:
    """n-weighted mean of per-instrument ACFs, and the total n."""
    rows = [(acf(x, max_lag), len(x)) for x in parts if len(x) > max_lag + 1]
    n = sum(w for _, w in rows)
    if not rows or n == 0:
        return np.full(max_lag + 1, np.nan), 0
    return sum(a * w for a, w in rows) / n, n


def newey_west_bandwidth(n: int) -> int:
    """Newey-West (1994) rule-of-thumb lag truncation ``floor(4 (n/100)^(2/9))`` for ``n`` observations."""
    return int(4 * (max(n, 1) / 100.0) ** (2.0 / 9.0))


def long_run_variance(x: np.ndarray, bandwidth: int) -> float:
    """Newey-West (Bartlett kernel) long-run variance of a series: ``γ0 + 2 Σ_l (1 - l/(L+1)) γ_l``."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    d = x - x.mean()
    total = float(d @ d) / n
    for lag in range(1, min(bandwidth, n - 1) + 1):
        total += 2.0 * (1.0 - lag / (bandwidth + 1.0)) * float(d[lag:] @ d[:-lag]) / n
    return max(total, 0.0)


def acf_hac_se(parts: Sequence[np.ndarray], max_lag: int, bandwidth: int | None = None) -> np.ndarray:
    """HAC standard errors of the pooled sample ACF at lags 0..max_lag (NaN at lag 0).

    ``parts`` are equally long, time-aligned series (one per instrument). The lag-k estimate is a
    mean of standardised products ``z_t z_{t-k}``; its variance is the Newey-West long-run variance
    of the cross-instrument mean of those products over the number of time points, so volatility
    clustering (heteroskedastic products), their serial dependence and the correlation between
    instruments all widen it. Under i.i.d. data it reduces to ``1/sqrt(n)``.
    """
    rows = [np.asarray(x, dtype=np.float64) for x in parts if len(x) > max_lag + 1]
    out = np.full(max_lag + 1, np.nan)
    if not rows or len({len(x) for x in rows}) != 1:
        return out
    z = [(x - x.mean()) / x.std() for x in rows if x.std() > 0]
    if not z:
        return out
    n = len(z[0])
    L = newey_west_bandwidth(n) if bandwidth is None else bandwidth
    for lag in range(1, max_lag + 1):
        products = np.mean([x[lag:] * x[:-lag] for x in z], axis=0)
        out[lag] = np.sqrt(long_run_variance(products, L) / len(products))
    return out


def power_law_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """OLS of ``log y`` on ``log x`` over points with x, y > 0: ``(exponent, R²)``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    lx, ly = np.log(x[ok]), np.log(y[ok])
    slope, _, r2 = ols(lx, ly)
    return slope, r2


def cumulative_power_law_exponent(acf_values: np.ndarray, exponents: np.ndarray | None = None) -> float:
    """γ of ``ACF(k) = A k^-γ`` fitted on the running sum ``S(K) = Σ_{j<=K} ACF(j)`` (NaN if undefined).

    ``acf_values[k - 1]`` is the ACF at lag k. For each γ on a grid, ``log S(K)`` is matched to
    ``log A + log H(K, γ)`` with ``H(K, γ) = Σ_{j<=K} j^-γ`` (A by least squares) over the lags where
    ``S > 0``; γ minimises the squared error. The running sum averages the noise of the single lags;
    matching the exact partial sums (not ``K^(1-γ)``) keeps it unbiased for a pure power law.
    """
    a = np.asarray(acf_values, dtype=np.float64)
    running = np.cumsum(np.where(np.isfinite(a), a, 0.0))
    ok = running > 0
    if ok.sum() < 3:
        return float("nan")
    lags = np.arange(1, len(a) + 1, dtype=np.float64)
    grid = np.linspace(0.0, 1.5, 151) if exponents is None else np.asarray(exponents, float)
    log_s = np.log(running[ok])
    log_h = np.log(np.cumsum(lags[None, :] ** -grid[:, None], axis=1)[:, ok])
    resid = log_s[None, :] - log_h
    resid -= resid.mean(axis=1, keepdims=True)
    return float(grid[int(np.argmin((resid**2).sum(axis=1)))])


def power_law_wls(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
                  exponents: np.ndarray | None = None) -> tuple[float, float]:
    """Weighted least squares of ``y ≈ Y·x^δ`` (x > 0) by grid search over δ: ``(δ, Y)``.

    Unlike a log-log fit it keeps points with ``y <= 0`` (noisy impacts), so it is unbiased.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones(len(x)) if w is None else np.asarray(w, float)
    grid = np.linspace(0.0, 1.5, 151) if exponents is None else np.asarray(exponents, float)
    if len(x) < 3 or np.any(x <= 0):
        return float("nan"), float("nan")
    delta, _ = _wls_grid(x, y, w, grid)
    step = float(np.min(np.diff(grid))) if len(grid) > 1 else 0.0
    lo, hi = max(delta - step, float(grid.min())), min(delta + step, float(grid.max()))
    return _wls_grid(x, y, w, np.linspace(lo, hi, 41))  # refine around the best


def _wls_grid(x: np.ndarray, y: np.ndarray, w: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    f = x[None, :] ** grid[:, None]
    scale = (w * y * f).sum(axis=1) / (w * f * f).sum(axis=1)
    loss = (w * (y - scale[:, None] * f) ** 2).sum(axis=1)
    best = int(np.argmin(loss))
    return float(grid[best]), float(scale[best])


def ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Simple regression ``y = b·x + c``: ``(b, c, R²)`` (NaN when x or y is constant)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        return float("nan"), float("nan"), float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if sxx <= 0 or syy <= 0:
        return float("nan"), float("nan"), float("nan")
    b = sxy / sxx
    return b, float(y.mean() - b * x.mean()), sxy * sxy / (sxx * syy)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties; NaN when a side is constant)."""
    return correlation(_rank(np.asarray(x, float)), _rank(np.asarray(y, float)))


def _rank(x: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    return (first + (counts - 1) / 2.0)[inverse]


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation (NaN for fewer than 3 pairs or a constant side)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    return float(dx @ dy / np.sqrt(sxx * syy)) if sxx > 0 and syy > 0 else float("nan")


def kendall_tau(x: np.ndarray, y: np.ndarray, chunk: int = 512) -> float:
    """Kendall's tau-b (ties allowed) by chunked pairwise signs: O(n^2) work, O(chunk n) memory."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 3:
        return float("nan")
    concordance, ties_free_x, ties_free_y = 0.0, 0.0, 0.0
    for i in range(0, n, chunk):
        dx = np.sign(x[i:i + chunk, None] - x[None, :])
        dy = np.sign(y[i:i + chunk, None] - y[None, :])
        concordance += float(np.sum(dx * dy))
        ties_free_x += float(np.count_nonzero(dx))
        ties_free_y += float(np.count_nonzero(dy))
    if ties_free_x == 0 or ties_free_y == 0:
        return float("nan")
    return concordance / np.sqrt(ties_free_x * ties_free_y)


def kendall_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Correlation from Kendall's tau, ``sin(π τ / 2)``: consistent for elliptical laws, robust to scale mixing.

    For returns whose volatility switches between regimes (a Gaussian scale mixture) Pearson's
    estimate is carried by the few most volatile windows; this one weights every pair of windows
    alike (Lindskog, McNeil & Schmock 2003).
    """
    tau = kendall_tau(x, y)
    return float(np.sin(np.pi * tau / 2.0)) if np.isfinite(tau) else float("nan")


def plain(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays made Python numbers and lists, NaN/inf made None."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [plain(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    return obj


__all__ = [
    "pearson_kurtosis",
    "hill_index",
    "acf",
    "pooled_acf",
    "newey_west_bandwidth",
    "long_run_variance",
    "acf_hac_se",
    "power_law_fit",
    "cumulative_power_law_exponent",
    "power_law_wls",
    "ols",
    "spearman",
    "correlation",
    "kendall_tau",
    "kendall_correlation",
    "plain",
]
