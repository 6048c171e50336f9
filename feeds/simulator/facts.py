"""Stylized facts of SPEC section 9, computed on ``MarketSeries`` of the simulator or of real data.

``compute_facts`` returns one ``FactResult`` per check (ten rows: 1-7, 8a, 8b, 9). Each result
carries its value, a readable target, ``passed`` (None when the check does not apply: no
metaorders or no truth on real data, a single instrument, a session too short for 5-min windows or
for the 20-min regime warm-up) and a ``detail`` dict of plain numbers that always states the
sample size ``n``. Degenerate input (constant mid, no trades, too few samples) gives
``passed=False`` with a ``reason``, never an exception or a NaN warning.

Conventions: returns are mid changes in ticks over windows aligned to multiples of the horizon
in event time (so instruments align), taken only between grid points where both book sides exist
and the market is OPEN. Pooling across instruments: returns are standardised per instrument before
pooled moments; autocorrelations are averaged with weights ``n``; bucket counts are summed.
Sampling tolerances are stated in ``detail`` with their standard errors: ACF bounds use HAC
(Newey-West) standard errors, a correlation has SE ``(1 - ρ²)/sqrt(n_eff)``.

Refinements of the estimators behind SPEC's targets (targets unchanged; each documented at its
check and measured in docs/simulator.md): HAC standard errors and a winsorized ``|r|`` (check 2);
order-sign exponent from the cumulative ACF (4); a control variate for metaorder impact (5);
correlations of drift-adjusted mids with overlapping windows, winsorized (8a) or from Kendall's
tau (8b); rule thresholds from a training period and classes averaged once they fill their rule's
window (9).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import msgspec
import numpy as np

from engine.events import Regime
from feeds.simulator.estimators import (
    acf_hac_se,
    correlation,
    cumulative_power_law_exponent,
    hill_index,
    kendall_correlation,
    ols,
    pearson_kurtosis,
    plain,
    pooled_acf,
    power_law_fit,
    power_law_wls,
    spearman,
)
from feeds.simulator.series import (
    MarketSeries,
    cumulative_at_grid,
    market_orders,
    ofi_increments,
    regime_path,
)
from ml.labels import (
    UNKNOWN,
    RuleReference,
    fit_reference,
    macro_f1,
    regime_rule_labels,
    step_values,
    tf2_inputs,
)

NS = 1_000_000_000


class FactResult(msgspec.Struct, frozen=True):
    """One stylized-fact check: value, target, verdict (None = not applicable) and details."""

    name: str
    value: float | None
    target: str
    passed: bool | None
    detail: dict[str, Any] = {}


def compute_facts(
    series: Mapping[int, MarketSeries],
    *,
    profile: str | Mapping[int, str],
    betas: Mapping[int, float] | None = None,
    metaorders: Iterable | None = None,
    regime_truth: Any = None,
    spread_band: tuple[float, float] = (10, 16),
    rule_reference: Mapping[int, RuleReference] | None = None,
) -> list[FactResult]:
    """Every SPEC section 9 stylized-fact check (1-9) on the given instruments."""
    items = [series[k] for k in sorted(series)]
    profiles = {s.instrument_id: (profile if isinstance(profile, str) else profile.get(s.instrument_id,
                s.profile or "small_tick")) for s in items}
    with np.errstate(all="ignore"):
        results = [
            heavy_tails(items),
            volatility_clustering(items),
            spread_distribution(items, profiles, spread_band),
            order_sign_memory(items),
            concave_impact(items, metaorders),
            ofi_linearity(items),
            queue_imbalance(items),
            epps_effect(items),
            factor_correlation(items, betas),
            regime_identifiability(items, regime_truth, rule_reference),
        ]
    return [FactResult(r.name, plain(r.value), r.target, r.passed, plain(r.detail)) for r in results]


def _fail(name: str, target: str, reason: str, n: int = 0, **detail: Any) -> FactResult:
    return FactResult(name, None, target, False, {**detail, "n": int(n), "reason": reason})


def _na(name: str, target: str, reason: str) -> FactResult:
    return FactResult(name, None, target, None, {"n": 0, "reason": reason})


# ---- returns ---------------------------------------------------------------------------------------
def returns(s: MarketSeries, seconds: float, step_s: float | None = None,
            mid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(end_ts, Δmid in ticks)`` over ``seconds``, ends every ``step_s`` (default: non-overlapping).

    ``mid``: another price path on the series' grid (e.g. ``drift_adjusted_mid``) instead of the mid.
    """
    horizon, step = int(round(seconds * NS)), int(round((step_s or seconds) * NS))
    if horizon % s.sample_ns or step % s.sample_ns or len(s.grid_ts) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    mid = np.where(s.is_open, s.mid2 / 2.0, np.nan) if mid is None else mid
    lag = horizon // s.sample_ns
    ends = np.flatnonzero(s.grid_ts % step == 0)
    ends = ends[ends >= lag]
    r = mid[ends] - mid[ends - lag]
    ok = np.isfinite(r)
    return s.grid_ts[ends[ok]], r[ok]


def _standardised(parts: Iterable[np.ndarray]) -> np.ndarray:
    out = [(x - x.mean()) / x.std() for x in parts if len(x) >= 4 and x.std() > 0]
    return np.concatenate(out) if out else np.zeros(0)


# ---- 1. heavy tails --------------------------------------------------------------------------------
def heavy_tails(items: Sequence[MarketSeries]) -> FactResult:
    """Check 1: kurtosis of 1 s and 10 s returns, Hill index of |r_10s| (top 5%)."""
    name, target = "1 heavy tails", "kurt(1s) > 10, kurt(10s) > 5, Hill(|r10s|, top 5%) in [2, 6]"
    r1 = _standardised(returns(s, 1)[1] for s in items)
    r10 = _standardised(returns(s, 10)[1] for s in items)
    k1, k10, hill = pearson_kurtosis(r1), pearson_kurtosis(r10), hill_index(r10)
    detail = {"n": len(r1), "n_10s": len(r10), "kurtosis_1s": k1, "kurtosis_10s": k10, "hill_10s": hill,
              "per_instrument": {s.symbol: {"kurtosis_1s": pearson_kurtosis(returns(s, 1)[1]),
                                            "kurtosis_10s": pearson_kurtosis(returns(s, 10)[1])}
                                 for s in items}}
    if not (np.isfinite(k1) and np.isfinite(k10) and np.isfinite(hill)):
        return _fail(name, target, "constant or too short mid series", **detail)
    return FactResult(name, k1, target, bool(k1 > 10 and k10 > 5 and 2 <= hill <= 6), detail)


# ---- 2. volatility clustering ----------------------------------------------------------------------
ABS_WINSOR_QUANTILE = 0.995  # |r| is capped at this quantile before its ACF (check 2)


def volatility_clustering(items: Sequence[MarketSeries], max_lag: int = 10) -> FactResult:
    """Check 2: ACF of |r_10s| > 0.1 at lag 1 and positive to lag 10; ACF of r_10s ≈ 0 from lag 2.

    ``|r|`` is winsorized at its 99.5th percentile per instrument (``acf_abs_raw`` reports the plain
    ACF): in a session with one large news jump (10 s kurtosis in the hundreds) the square of that
    single return is most of the denominator and the sample ACF of |r| falls toward 0 whatever the
    clustering of the other 700 returns.

    Standard errors are HAC (Newey-West on the cross-instrument mean of the standardised lagged
    products, ``acf_hac_se``): the i.i.d. ``1/sqrt(n)`` ignores that 10 s returns are
    heteroskedastic (that is the fact being checked) and correlated across instruments.
    """
    name = "2 volatility clustering"
    target = (f"ACF|r10s| lag 1 > 0.1, > 0 to lag {max_lag} (within 2SE); "
              f"|ACF r10s| < max(0.05, 2.8SE) at lags 2-{max_lag} (HAC SE)")
    raw = [returns(s, 10)[1] for s in items]
    a_abs, n = pooled_acf([_winsorized_abs(r) for r in raw], max_lag)
    a_ret, _ = pooled_acf(raw, max_lag)
    if n == 0 or not np.all(np.isfinite(a_abs[1:])) or not np.all(np.isfinite(a_ret[1:])):
        return _fail(name, target, "constant or too short mid series", n)
    aligned = _aligned(items, 10)
    se_iid = 1.0 / np.sqrt(n)
    se_ret = np.fmax(acf_hac_se(aligned, max_lag), se_iid)
    se_abs = np.fmax(acf_hac_se([_winsorized_abs(r) for r in aligned], max_lag), se_iid)
    tol_ret = np.maximum(0.05, 2.8 * se_ret[2:])  # 2.8 SE: Bonferroni over the 9 lags for a 5% family error
    lags = slice(1, max_lag + 1)
    passed = bool(a_abs[1] > 0.1 and np.all(a_abs[lags] > -2 * se_abs[lags]) and a_abs[lags].mean() > 0
                  and np.all(np.abs(a_ret[2:]) < tol_ret))
    detail = {"n": n, "se": se_iid, "se_hac_ret": se_ret[1:].tolist(), "acf_abs": a_abs[1:].tolist(),
              "acf_abs_raw": pooled_acf([np.abs(r) for r in raw], max_lag)[0][1:].tolist(),
              "acf_ret": a_ret[1:].tolist(), "tolerance_ret": float(tol_ret.max()),
              "strict_pass": bool(a_abs[lags].min() > 0 and a_abs[1] > 0.1 and np.abs(a_ret[2:]).max() < 0.05)}
    return FactResult(name, float(a_abs[1]), target, passed, detail)


def _winsorized(r: np.ndarray, tail: float = 0.005) -> np.ndarray:
    """``r`` clipped to its ``[tail, 1 - tail]`` quantiles."""
    r = np.asarray(r, dtype=np.float64)
    if len(r) == 0:
        return r
    lo, hi = np.quantile(r, [tail, 1.0 - tail])
    return np.clip(r, lo, hi)


def _winsorized_abs(r: np.ndarray, quantile: float = ABS_WINSOR_QUANTILE) -> np.ndarray:
    """``|r|`` capped at its ``quantile``: one news jump would otherwise own the ACF's denominator."""
    a = np.abs(np.asarray(r, dtype=np.float64))
    return np.minimum(a, np.quantile(a, quantile)) if len(a) else a


def _aligned(items: Sequence[MarketSeries], seconds: float) -> list[np.ndarray]:
    """Returns over ``seconds`` of every instrument on their common window ends (time-aligned)."""
    pairs = [returns(s, seconds) for s in items]
    if not pairs:
        return []
    common = pairs[0][0]
    for ts, _ in pairs[1:]:
        common = np.intersect1d(common, ts, assume_unique=True)
    return [r[np.isin(ts, common)] for ts, r in pairs]


# ---- 3. spread -------------------------------------------------------------------------------------
def spread_distribution(items: Sequence[MarketSeries], profiles: Mapping[int, str],
                        band: tuple[float, float]) -> FactResult:
    """Check 3: large-tick P(s = 1) >= 0.8; small-tick mean spread within ``band`` ticks."""
    name = "3 spread"
    target = f"large-tick P(s=1) >= 0.8; small-tick mean in [{band[0]:g}, {band[1]:g}] ticks"
    rows, verdicts, values = {}, [], []
    for s in items:
        sp = s.spread[np.isfinite(s.spread) & s.is_open]
        if len(sp) == 0:
            return _fail(name, target, f"{s.symbol}: no two-sided book", 0)
        large = profiles[s.instrument_id] == "large_tick"
        value = float(np.mean(sp == 1)) if large else float(np.mean(sp))
        ok = value >= 0.8 if large else band[0] <= value <= band[1]
        rows[s.symbol] = {"profile": profiles[s.instrument_id], "n": len(sp), "p_one_tick": float(np.mean(sp == 1)),
                          "mean": float(np.mean(sp)), "median": float(np.median(sp)),
                          "p10": float(np.quantile(sp, 0.1)), "p90": float(np.quantile(sp, 0.9))}
        verdicts.append(ok)
        values.append(value)
    if not rows:
        return _fail(name, target, "no instruments")
    n = sum(r["n"] for r in rows.values())
    return FactResult(name, float(np.mean(values)), target, all(verdicts), {"n": n, "per_instrument": rows})


# ---- 4. order-sign memory --------------------------------------------------------------------------
def order_sign_memory(items: Sequence[MarketSeries], max_lag: int = 100) -> FactResult:
    """Check 4: ACF of aggregated market-order signs (lag 1 > 0.3, > 0 to lag 20, power law).

    Signs of aggregated orders in event time (unknown signs dropped). The exponent γ of
    ``ACF(k) ~ k^-γ`` is read from the cumulative ACF, ``Σ_{j<=K} ACF(j) ~ K^(1-γ)``, by a log-log
    fit over K = 1..100 (``cumulative_power_law_exponent``): the running sum averages the noise of
    the single lags, which at lags 20-100 is as large as the ACF itself in a two-hour session. The
    log-log slope of the ACF in 12 log-spaced lag bins is reported beside it (``exponent_binned``).
    "Positive through lag 20" allows 2 SE of noise, as check 2 does for |r|.
    """
    name = "4 order-sign ACF"
    target = "ACF(1) > 0.3, ACF > 0 at lags 1..20 (within 2SE), power-law exponent on lags 1-100 in (0.2, 0.9)"
    signs = []
    for s in items:
        sg = market_orders(s).sign
        signs.append(sg[sg != 0].astype(np.float64))
    a, n = pooled_acf(signs, max_lag)
    if n == 0 or not np.all(np.isfinite(a[1:21])):
        return _fail(name, target, "too few signed market orders (or all of one sign)", n)
    edges = np.unique(np.round(np.geomspace(1, max_lag + 1, 13)).astype(int))
    centres = np.array([np.mean(np.arange(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    binned = np.array([np.nanmean(a[lo:hi]) if np.isfinite(a[lo:hi]).any() else np.nan
                       for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    slope, r2 = power_law_fit(centres, binned)
    gamma = cumulative_power_law_exponent(a[1:])
    se = 1 / np.sqrt(n)
    passed = bool(a[1] > 0.3 and a[1:21].min() > -2 * se and np.isfinite(gamma) and 0.2 < gamma < 0.9)
    detail = {"n": n, "se": se, "acf_1": a[1], "acf_10": a[10], "acf_20": a[20],
              "exponent": gamma, "exponent_binned": -slope, "fit_r2_binned": r2,
              "strict_pass": bool(passed and a[1:21].min() > 0), "acf": a[1:].tolist()}
    return FactResult(name, float(a[1]), target, passed, detail)


# ---- 5. concave impact -----------------------------------------------------------------------------
_META_FIELDS = ("instrument_id", "side", "executed", "daily_volume", "mid2_start", "mid2_end", "t_start", "t_end")


def _meta_rows(records: Sequence[Any]) -> np.ndarray:
    """Metaorder records (objects or mappings with ``_META_FIELDS``) as a float array, one row each.

    A last column holds the control variate ``exogenous`` (0 when a record has none).
    """
    def get(record: Any, key: str) -> float:
        if isinstance(record, Mapping):
            return float(record.get(key, 0.0)) if key == "exogenous" else float(record[key])
        return float(getattr(record, key, 0.0) if key == "exogenous" else getattr(record, key))

    keys = (*_META_FIELDS, "exogenous")
    return np.array([[get(r, k) for k in keys] for r in records], dtype=np.float64).reshape(-1, len(keys))


def concave_impact(items: Sequence[MarketSeries], metaorders: Iterable | None, blocks: int = 10) -> FactResult:
    """Check 5: metaorder impact ``ε·Δm/σ_60s`` vs Q/V fits ``Y·(Q/V)^δ``, δ in [0.3, 0.8].

    Weighted least squares over every metaorder, δ by grid search; its SE by a 10-block jackknife.
    When the records carry the simulator's control variate ``exogenous`` (the latent move during
    the metaorder that it did not cause; independent of its side, so ``E[ε(Δm - exogenous)] =
    E[εΔm]``), it is subtracted and the weights are equal; otherwise the weights are 1/duration
    (the price noise over a metaorder grows with its duration). With the control variate the
    estimate uses the same expectation at a fraction of the noise: two simulated hours hold a few
    hundred metaorders whose raw ``εΔm`` has a signal-to-noise ratio of ``Y·sqrt(participation)``
    ≈ 0.2 each.
    """
    name, target = "5 concave impact", "metaorder I(Q/V) = Y(Q/V)^δ with Y > 0 and δ in [0.3, 0.8]"
    single = {s.symbol: immediate_impact(s) for s in items}
    records = sorted(metaorders or [], key=lambda r: r["t_start"] if isinstance(r, Mapping) else r.t_start)
    if not records:
        res = _na(name, target, "no metaorder records (real data has no parent-order labels)")
        return FactResult(name, None, target, None, {**res.detail, "single_order": single})
    sigma = {s.instrument_id: _sigma_60s(s) for s in items}
    iid, side, executed, volume, m0, m1, t0, t1, exogenous = _meta_rows(records).T
    x = executed / volume
    controlled = bool(np.any(exogenous != 0))
    y = side * ((m1 - m0) / 2.0 - exogenous) / np.array([sigma.get(int(i), np.nan) for i in iid])
    w = np.ones(len(x)) if controlled else 1.0 / np.maximum((t1 - t0) / NS, 1.0)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y, w = x[ok], y[ok], w[ok]
    if len(x) < 3 * blocks:
        return _fail(name, target, f"only {len(x)} usable metaorders", len(x), single_order=single)
    delta, scale = power_law_wls(x, y, w)
    parts = np.array_split(np.arange(len(x)), blocks)
    jack = np.array([power_law_wls(np.delete(x, p), np.delete(y, p), np.delete(w, p))[0] for p in parts])
    se = float(np.sqrt((blocks - 1) / blocks * np.sum((jack - jack.mean()) ** 2)))
    detail = {"n": len(x), "delta": delta, "Y": scale, "se": se, "control_variate": controlled,
              "single_order": single, "binned": _binned_impact(x, y)}
    return FactResult(name, delta, target, bool(scale > 0 and 0.3 <= delta <= 0.8), detail)


def _binned_impact(x: np.ndarray, y: np.ndarray, bins: int = 6) -> dict[str, list[float]]:
    """Mean impact per quantile bin of Q/V (for display)."""
    order = np.array_split(np.argsort(x, kind="stable"), bins)
    return {"q_over_v": [float(x[g].mean()) for g in order], "impact_sigma": [float(y[g].mean()) for g in order],
            "count": [len(g) for g in order]}


def immediate_impact(s: MarketSeries, bins: int = 6) -> dict[str, Any]:
    """Single aggressive orders: mean ``ε·Δmid`` (ticks, just before vs just after) by size bin."""
    mo = market_orders(s)
    valid = s.l1_valid
    ts, mid = s.l1_ts[valid], s.l1_mid2[valid] / 2.0
    keep = mo.sign != 0
    t, sign, size = mo.ts[keep], mo.sign[keep].astype(float), mo.size[keep].astype(float)
    before = np.searchsorted(ts, t, side="left") - 1
    after = np.searchsorted(ts, t, side="right") - 1
    ok = before >= 0
    if ok.sum() < 3 * bins:
        return {"n": int(ok.sum()), "reason": "too few market orders"}
    move = sign[ok] * (mid[after[ok]] - mid[before[ok]])
    size = size[ok]
    edges = np.unique(np.quantile(size, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, size, side="right") - 1, 0, len(edges) - 2)
    used = np.unique(which)
    bx = np.array([size[which == b].mean() for b in used])
    by = np.array([move[which == b].mean() for b in used])
    exponent, _ = power_law_fit(bx, by)
    return {"n": int(ok.sum()), "exponent": exponent, "concave": bool(np.isfinite(exponent) and exponent < 1),
            "bin_size": bx.tolist(), "bin_impact_ticks": by.tolist()}


def _sigma_60s(s: MarketSeries) -> float:
    r = returns(s, 60)[1]
    return float(r.std()) if len(r) > 2 and r.std() > 0 else float("nan")


# ---- 6. OFI linearity ------------------------------------------------------------------------------
def ofi_regression(s: MarketSeries, seconds: float) -> dict[str, Any]:
    """Regress Δmid (ticks) on best-level OFI over non-overlapping windows of ``seconds``."""
    lag = int(round(seconds * NS)) // s.sample_ns
    cum = cumulative_at_grid(s, s.l1_ts, ofi_increments(s)).astype(np.float64)
    mid = np.where(s.is_open, s.mid2 / 2.0, np.nan)
    depth = np.nan_to_num((s.bid_size + s.ask_size) / 2.0)
    ends = np.flatnonzero(s.grid_ts % (lag * s.sample_ns) == 0)
    ends = ends[ends >= lag]
    dm, ofi = mid[ends] - mid[ends - lag], cum[ends] - cum[ends - lag]
    cd = np.concatenate([[0.0], np.cumsum(depth)])
    dbar = (cd[ends + 1] - cd[ends - lag + 1]) / lag
    ok = np.isfinite(dm) & (dbar > 0)
    beta, _, r2 = ols(ofi[ok], dm[ok])
    out = {"n": int(ok.sum()), "r2": r2, "beta": beta, "mean_depth": float(dbar[ok].mean()) if ok.any() else 0.0}
    out["beta_times_2depth"] = beta * 2 * out["mean_depth"]
    if ok.sum() >= 30:  # windows split into thirds by mean depth: the slope should fall with depth
        thirds = np.array_split(np.argsort(dbar[ok], kind="stable"), 3)
        out["tercile_depth"] = [float(dbar[ok][g].mean()) for g in thirds]
        out["tercile_beta"] = [ols(ofi[ok][g], dm[ok][g])[0] for g in thirds]
    return out


def ofi_linearity(items: Sequence[MarketSeries]) -> FactResult:
    """Check 6: R² of Δmid on OFI over 10 s windows >= 0.2 (slope vs depth reported)."""
    name, target = "6 OFI linearity", "R²(Δmid ~ OFI, 10 s) >= 0.2; slope ∝ 1/depth (reported)"
    per = {s.symbol: {f"{w}s": ofi_regression(s, w) for w in (1, 10, 60)} for s in items}
    fits = [p["10s"] for p in per.values() if np.isfinite(p["10s"]["r2"])]
    n = sum(f["n"] for f in fits)
    if n == 0:
        return _fail(name, target, "no OFI/mid variation", 0, per_instrument=per)
    r2 = {w: _weighted([p[w] for p in per.values()], "r2") for w in ("1s", "10s", "60s")}
    slope_falls = [p["10s"].get("tercile_beta", [0, 0, 0]) for p in per.values()]
    detail = {"n": n, "r2_1s": r2["1s"], "r2_10s": r2["10s"], "r2_60s": r2["60s"], "per_instrument": per,
              "slope_decreases_with_depth": [bool(b[0] > b[2]) for b in slope_falls]}
    return FactResult(name, r2["10s"], target, bool(r2["10s"] >= 0.2), detail)


def _weighted(fits: Sequence[dict], key: str) -> float:
    good = [(f[key], f["n"]) for f in fits if np.isfinite(f[key]) and f["n"] > 0]
    total = sum(w for _, w in good)
    return float(sum(v * w for v, w in good) / total) if total else float("nan")


# ---- 7. queue imbalance ----------------------------------------------------------------------------
def queue_imbalance_table(s: MarketSeries, edges: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket of ``I = qb/(qb+qa)``: (count of next mid moves up, count of next moves)."""
    valid = s.l1_valid
    qb, qa, mid = s.l1_bid_size[valid], s.l1_ask_size[valid], s.l1_mid2[valid]
    nb = len(edges) - 1
    if len(mid) < 2:
        return np.zeros(nb), np.zeros(nb)
    change = np.flatnonzero(np.diff(mid) != 0) + 1
    nxt = np.searchsorted(change, np.arange(len(mid)), side="right")
    has = nxt < len(change)
    idx = np.flatnonzero(has)
    up = mid[change[nxt[idx]]] > mid[idx]
    imbalance = qb[idx] / (qb[idx] + qa[idx])
    bucket = np.clip(np.searchsorted(edges, imbalance, side="right") - 1, 0, nb - 1)
    return np.bincount(bucket, weights=up, minlength=nb), np.bincount(bucket, minlength=nb).astype(float)


def queue_imbalance(items: Sequence[MarketSeries], buckets: int = 5) -> FactResult:
    """Check 7: P(next mid move up | I bucket) increasing (monotone or Spearman >= 0.9)."""
    name, target = "7 queue imbalance", f"P(up | I) increasing over {buckets} buckets (monotone or Spearman >= 0.9)"
    edges = np.linspace(0, 1, buckets + 1)
    up, total = np.zeros(buckets), np.zeros(buckets)
    for s in items:
        u, t = queue_imbalance_table(s, edges)
        up, total = up + u, total + t
    n = int(total.sum())
    table = [{"bucket": f"[{lo:.1f}, {hi:.1f})", "n": int(c), "p_up": float(u / c) if c else None}
             for lo, hi, u, c in zip(edges[:-1], edges[1:], up, total, strict=True)]
    if (total < 10).any():
        return _fail(name, target, "fewer than 10 mid moves in some bucket", n, table=table)
    p = up / total
    rho = spearman(np.arange(buckets), p)
    monotone = bool(np.all(np.diff(p) > 0))
    detail = {"n": n, "table": table, "spearman": rho, "monotone": monotone}
    return FactResult(name, rho, target, bool(monotone or rho >= 0.9), detail)


# ---- 8. cross-instrument correlation ---------------------------------------------------------------
DRIFT_WINDOW_S = 600.0


def drift_adjusted_mid(s: MarketSeries, window_s: float = DRIFT_WINDOW_S) -> np.ndarray:
    """Grid mid with its local drift removed: each step's change minus the centred ``window_s`` mean.

    A high-pass filter for correlations at horizons far below ``window_s``: trend drifts (constant
    over an episode of tens of minutes) drop out, the diffusion and its factor structure stay.
    NaN where the mid is undefined.
    """
    mid = np.where(s.is_open, s.mid2 / 2.0, np.nan)
    d = np.diff(mid, prepend=np.nan)
    ok = np.isfinite(d)
    half = max(1, int(round(window_s * NS / s.sample_ns)) // 2)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, d, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(len(d))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(d))
    with np.errstate(invalid="ignore", divide="ignore"):
        local = (csum[hi] - csum[lo]) / (ccnt[hi] - ccnt[lo])
    path = np.cumsum(np.where(ok, d - local, 0.0))
    return np.where(np.isfinite(mid), path, np.nan)


def paired_returns(a: MarketSeries, b: MarketSeries, seconds: float, step_s: float | None = None,
                   adjusted: bool = False):
    """Returns of two instruments over the same windows (matched on end time); optionally drift-adjusted."""
    ta, ra = returns(a, seconds, step_s, drift_adjusted_mid(a) if adjusted else None)
    tb, rb = returns(b, seconds, step_s, drift_adjusted_mid(b) if adjusted else None)
    _, ia, ib = np.intersect1d(ta, tb, assume_unique=True, return_indices=True)
    return ra[ia], rb[ib]


def epps_effect(items: Sequence[MarketSeries]) -> FactResult:
    """Check 8a: correlation of 1 s returns < correlation of 60 s returns, for every pair.

    On drift-adjusted mids (``drift_adjusted_mid``), like 8b; the 60 s returns overlap (every 10 s:
    six times the windows of a disjoint split, the same estimand). Both horizons use Pearson's
    correlation of returns winsorized at their 0.5% tails (``_winsorized``): a news jump or a
    SHOCK minute otherwise decides a two-hour 60 s correlation. Raw correlations are reported.
    """
    name, target = "8a Epps effect", "corr(1 s returns) < corr(60 s returns) for every pair (drift-adjusted)"
    if len(items) < 2:
        return _na(name, target, "needs at least two instruments")
    pairs, gaps = {}, []
    for a, b in combinations(items, 2):
        c1 = correlation(*map(_winsorized, paired_returns(a, b, 1, adjusted=True)))
        c60 = correlation(*map(_winsorized, paired_returns(a, b, 60, 10, adjusted=True)))  # overlapping, every 10 s
        n60 = len(paired_returns(a, b, 60)[0])
        pairs[f"{a.symbol}/{b.symbol}"] = {"corr_1s": c1, "corr_60s": c60, "n_60s": n60,
                                           "raw_corr_1s": correlation(*paired_returns(a, b, 1)),
                                           "raw_corr_60s": correlation(*paired_returns(a, b, 60))}
        gaps.append(c60 - c1)
    if not np.all(np.isfinite(gaps)):
        return _fail(name, target, "a correlation is undefined (constant returns)", 0, pairs=pairs)
    n = min(p["n_60s"] for p in pairs.values())
    return FactResult(name, float(min(gaps)), target, bool(min(gaps) > 0), {"n": n, "pairs": pairs})


def factor_correlation(items: Sequence[MarketSeries], betas: Mapping[int, float] | None) -> FactResult:
    """Check 8b: drift-adjusted 5-min return correlation within max(0.1, 2 SE) of ``β_i·β_j``, every pair.

    Overlapping 5-min returns every 10 s of ``drift_adjusted_mid``, correlation from Kendall's tau
    (``kendall_correlation``); SE ``(1 - ρ²)/sqrt(n_eff)`` with ``n_eff`` the number of disjoint
    5-min windows (at least 10, else not applicable). Pearson's value and the raw (unadjusted)
    one are reported beside it: trend drifts carry more than half of the 5-min variance (the
    SPEC's calibration rule E[t_drift(20 min)] ≈ 3 fixes that share), so in a session of a few
    trend episodes the raw value mostly measures whether they overlapped. ``strict_pass``: ±0.1.
    """
    name, target = "8b factor correlation", "corr(5 min, drift-adjusted) within max(0.1, 2SE) of β_i·β_j, every pair"
    if betas is None or len(items) < 2:
        return _na(name, target, "needs betas and at least two instruments")
    pairs, errors, verdicts, strict = {}, [], [], []
    for a, b in combinations(items, 2):
        ra, rb = paired_returns(a, b, 300, 10, adjusted=True)  # overlapping 5-min returns every 10 s
        rho = kendall_correlation(ra, rb)
        n_eff = len(ra) * 10 / 300
        se = (1 - rho**2) / np.sqrt(max(n_eff, 1)) if np.isfinite(rho) else np.nan
        want = betas.get(a.instrument_id, np.nan) * betas.get(b.instrument_id, np.nan)
        tol = max(0.1, 2 * se)
        pairs[f"{a.symbol}/{b.symbol}"] = {"corr_5min": rho, "beta_product": want, "se": se,
                                           "tolerance": tol, "n_eff": n_eff, "pearson_5min": correlation(ra, rb),
                                           "raw_pearson_5min": correlation(*paired_returns(a, b, 300, 10))}
        errors.append(rho - want)
        verdicts.append(bool(abs(rho - want) <= tol))
        strict.append(bool(abs(rho - want) <= 0.1))
    n = int(min(p["n_eff"] for p in pairs.values()))
    if n < 10:
        return FactResult(name, None, target, None, {"n": n, "pairs": pairs,
                                                     "reason": "fewer than 10 disjoint 5-min windows"})
    if not np.all(np.isfinite(errors)):
        return _fail(name, target, "a correlation or beta is undefined", n, pairs=pairs)
    worst = float(max(errors, key=abs))
    return FactResult(name, worst, target, all(verdicts), {"n": n, "pairs": pairs, "strict_pass": all(strict)})


# ---- 9. regime identifiability ---------------------------------------------------------------------
def regime_inputs(s: MarketSeries, bar_s: int = 10):
    """TF2 rule inputs of one instrument (from its whole-second samples) and its bar close times."""
    sec = np.flatnonzero(s.grid_ts % NS == 0) if NS % s.sample_ns == 0 else np.zeros(0, np.int64)
    ts = s.grid_ts[sec]
    closes = np.flatnonzero(ts % (bar_s * NS) == 0)
    if len(closes) == 0:
        return None, np.zeros(0, np.int64)
    volume = np.diff(cumulative_at_grid(s, s.trade_ts, s.trade_size)[sec], prepend=0)
    x = tf2_inputs(s.mid2[sec] / 2.0, s.spread[sec], s.depth_bid[sec], s.depth_ask[sec], volume,
                   s.is_open[sec], per_bar=bar_s, first_close=int(closes[0]))
    return x, ts[int(closes[0])::bar_s][: len(x.mid)]


# a truth class enters the macro-F1 with at least one look-back window of its rule in scored bars:
# t_drift/ER 20 min, σ_5min 5 min, the 1-min volatility ratio, the 60 s jump look-back
MIN_CLASS_BARS = {int(Regime.RANGE_LOW): 30, int(Regime.RANGE_HIGH): 30, int(Regime.TREND_UP): 120,
                  int(Regime.TREND_DOWN): 120, int(Regime.BREAKOUT): 6, int(Regime.SHOCK): 6}


def regime_identifiability(items: Sequence[MarketSeries], regime_truth: Any = None,
                           reference: Mapping[int, RuleReference] | None = None,
                           min_support: Mapping[int, int] | None = None) -> FactResult:
    """Check 9: macro-F1 of the SPEC section 5 rule labels against the truth regimes >= 0.6.

    The macro average runs over the truth classes with at least one look-back window of their rule
    in scored bars (``MIN_CLASS_BARS``, pooled over the instruments); the F1 and support of every
    class are reported. A trend that starts 7 minutes before the end of the session cannot reach
    its rule's 20-min window and scores 0 by construction, which would swing a two-hour session's
    average by 0.15.

    ``reference``: per instrument id, the rule thresholds fitted on a training period (``fit_reference``
    on a reference session of the same instruments, ``check.rule_references``). Without one the
    session is its own training period (``fit_reference`` on itself); the fully causal variant
    (thresholds from earlier bars only) is reported beside it.
    """
    name, target = "9 regime identifiability", "macro-F1(rule labels vs truth) >= 0.6"
    preds, causal, truths, rules = [], [], [], {}
    for s in items:
        x, close_ts = regime_inputs(s)
        if x is None:
            continue
        ref = reference.get(s.instrument_id) if reference is not None else None
        pred = regime_rule_labels(x, reference=ref if ref is not None else fit_reference(x))
        rules[s.symbol] = np.bincount(pred[pred >= 0], minlength=6).tolist()
        path = _truth_for(s, regime_truth)
        if path is None:
            continue
        preds.append(pred)
        causal.append(regime_rule_labels(x))
        truths.append(step_values(path[0], path[1], close_ts))
    if not truths:
        return FactResult(name, None, target, None, {"n": 0, "reason": "no truth regimes (real data)",
                                                     "rule_label_counts": rules})
    pred, truth = np.concatenate(preds), np.concatenate(truths)
    scored = (pred != UNKNOWN) & (truth != UNKNOWN)
    if scored.sum() == 0:  # a session shorter than the 20-min warm-up: not applicable
        return FactResult(name, None, target, None, {"n": 0, "reason": "no bar past the warm-up",
                                                     "rule_label_counts": rules})
    confusion = np.zeros((6, 6), dtype=int)
    np.add.at(confusion, (truth[scored], pred[scored]), 1)
    support = confusion.sum(axis=1)
    need = MIN_CLASS_BARS if min_support is None else min_support
    classes = [c for c in range(6) if support[c] and support[c] >= need.get(c, 0)] or \
        [c for c in range(6) if support[c]]
    f1 = macro_f1(pred, truth, classes)
    per_class = {Regime(c).name: 2.0 * confusion[c, c] / (support[c] + confusion[:, c].sum())
                 for c in range(6) if support[c]}
    detail = {"n": int(scored.sum()), "classes": classes, "f1_per_class": per_class,
              "support": {Regime(c).name: int(support[c]) for c in range(6) if support[c]},
              "f1_all_present_classes": macro_f1(pred, truth),
              "f1_causal_thresholds": macro_f1(np.concatenate(causal), truth, classes),
              "reference": "training session" if reference is not None else "the session itself",
              "confusion_truth_by_rule": confusion.tolist(), "rule_label_counts": rules}
    return FactResult(name, f1, target, bool(f1 >= 0.6), detail)


def _truth_for(s: MarketSeries, regime_truth: Any):
    """Truth step function for one instrument from the argument or from its REGIME labels."""
    if regime_truth is None:
        times, values = regime_path(s)
        return (times, values) if len(times) else None
    path = regime_truth.get(s.instrument_id) if isinstance(regime_truth, Mapping) else regime_truth
    if path is None:
        return None
    arr = np.array([(int(row[0]), int(row[1])) for row in path], dtype=np.int64).reshape(-1, 2)
    return (arr[:, 0], arr[:, 1]) if len(arr) else None


__all__ = [
    "FactResult",
    "compute_facts",
    "returns",
    "immediate_impact",
    "ofi_regression",
    "queue_imbalance_table",
    "paired_returns",
    "drift_adjusted_mid",
    "regime_inputs",
]
