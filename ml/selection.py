"""Choosing from a finished study and judging the choice (SPEC 8, selection and overfitting guards).

From the completed trials: the feasible Pareto front (non-dominated on the three objectives among the
trials that meet the minimum trades); each member's Deflated Sharpe Ratio with N = the number of
distinct parameter sets evaluated and V = the variance of every trial's per-trade Sharpe; the chosen
set is the member with the highest DSR among those whose max drawdown is within the cap (ties to the
lower trial number). The study's PBO comes from CSCV over every trial's PnL per time bucket (the same
grid for all: common random numbers); walk-forward picks the best trial by net mean R on each window of
sessions and reports it on the next. The verdict lists every guard the choice fails: it survives only
when its held-out sessions (seeds never used for selection) keep a positive mean R and at least half the
in-sample PnL per session, DSR >= 0.95, PBO < 0.2, the walk-forward efficiency >= 0.5 and, when the
perturbation check ran, it is robust to a +-10 % move of each gene (``ml.optimize.perturbation_check``).
"""

from __future__ import annotations

import math

import numpy as np
import optuna

from ml.validation import deflated_sharpe, moments, pbo_cscv, walk_forward

DSR_MIN = 0.95
PBO_MAX = 0.2
WFE_MIN = 0.5


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return sorted(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
                  key=lambda t: t.number)


def feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.user_attrs["constraint"][0] <= 0


def pareto_front(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The feasible trials no other feasible trial dominates (mean R up, Sharpe up, drawdown down)."""
    points = [(t, (t.values[0], t.values[1], -t.values[2])) for t in trials if feasible(t)]

    def dominated(p: tuple) -> bool:
        return any(all(a >= b for a, b in zip(q, p, strict=True)) and q != p for _, q in points)

    return [t for t, p in points if not dominated(p)]


def trade_returns(trial: optuna.trial.FrozenTrial, sessions: list[int] | None = None) -> list[float]:
    rows = trial.user_attrs["sessions"]
    picked = rows if sessions is None else [rows[i] for i in sessions]
    return [r for s in picked for r in s["net_r"]]


def dsr_of(trial: optuna.trial.FrozenTrial, trials: list[optuna.trial.FrozenTrial]) -> float:
    """The trial's Deflated Sharpe over its per-trade net R, N = distinct parameter sets evaluated."""
    sharpes = [moments(trade_returns(t))[0] for t in trials if len(trade_returns(t)) > 1]
    distinct = len({tuple(sorted(t.params.items())) for t in trials})
    returns = trade_returns(trial)
    sharpe, skew, kurtosis = moments(returns)
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    return deflated_sharpe(sharpe, len(returns), distinct, variance, skew, kurtosis)


def pbo_of(trials: list[optuna.trial.FrozenTrial], blocks: int = 16) -> float | None:
    """PBO by CSCV over the trials' PnL per bucket (None with fewer than 2 trials or 2 buckets)."""
    columns = [[x for s in t.user_attrs["sessions"] for x in s["pnl_path"]] for t in trials]
    if len(columns) < 2 or len({len(c) for c in columns}) != 1 or len(columns[0]) < 2:
        return None
    return pbo_cscv(np.array(columns).T, blocks)[0]


def _mean_r(trial: optuna.trial.FrozenTrial, sessions: tuple[int, ...]) -> float:
    values = trade_returns(trial, list(sessions))
    return float(np.mean(values)) if values else 0.0


def walk_forward_of(trials: list[optuna.trial.FrozenTrial], windows: int) -> dict[str, object] | None:
    """Walk-forward over the sessions in order (None with fewer sessions than 2 windows)."""
    if not trials:
        return None
    count = len(trials[0].user_attrs["sessions"])
    windows = min(windows, count)
    if windows < 2:
        return None
    by_number = {t.number: t for t in trials}
    steps = walk_forward(count, windows, lambda n, s: _mean_r(by_number[n], s), list(by_number))
    pnl = [(by_number[s.trial], s.train, s.test) for s in steps]
    is_pnl = sum(_pnl(t, train) / len(train) for t, train, _ in pnl)
    oos_pnl = sum(_pnl(t, test) / len(test) for t, _, test in pnl)
    return {
        "steps": [{"train": list(s.train), "test": list(s.test), "trial": s.trial, "is_mean_r": s.in_sample,
                   "oos_mean_r": s.out_of_sample} for s in steps],
        "oos_mean_r": float(np.mean([s.out_of_sample for s in steps])),
        "efficiency": oos_pnl / is_pnl if is_pnl > 0 else None,
    }


def _pnl(trial: optuna.trial.FrozenTrial, sessions: tuple[int, ...]) -> float:
    rows = trial.user_attrs["sessions"]
    return float(sum(rows[i]["pnl"] for i in sessions))


def choose(trials: list[optuna.trial.FrozenTrial], drawdown_cap: float) -> tuple[list[dict], dict | None]:
    """The Pareto front (with each member's DSR) and the chosen member, or None without a feasible one."""
    front = [{"trial": t.number, "params": dict(t.params), **t.user_attrs["metrics"], "dsr": _finite(dsr_of(t, trials))}
             for t in pareto_front(trials)]
    eligible = [m for m in front if m["max_drawdown"] <= drawdown_cap]
    if not eligible:
        return front, None
    best = max(eligible, key=lambda m: (m["dsr"] if m["dsr"] is not None else -1.0, -m["trial"]))
    return front, best


def verdict(chosen: dict, holdout: dict, sessions: int, holdout_sessions: int, pbo: float | None,
            wf: dict | None, perturbation: list[dict] | None = None) -> tuple[bool, list[str]]:
    """Whether the chosen set survives out of sample, and why not (``perturbation``: the rows of the
    perturbation check on the held-out sessions, None when it did not run)."""
    reasons = []
    if holdout["trades"] == 0 or holdout["mean_r"] <= 0:
        reasons.append(f"held-out mean R {holdout['mean_r']:.3f} over {holdout['trades']} trades is not positive")
    is_per_session = chosen["pnl"] / max(1, sessions)
    oos_per_session = holdout["pnl"] / max(1, holdout_sessions)
    if is_per_session > 0 and oos_per_session < 0.5 * is_per_session:
        reasons.append(f"held-out PnL per session {oos_per_session:.2f} is under half the in-sample "
                       f"{is_per_session:.2f}")
    if chosen["dsr"] is None or chosen["dsr"] < DSR_MIN:
        reasons.append(f"deflated Sharpe {_fmt(chosen['dsr'])} < {DSR_MIN}")
    if pbo is None or pbo >= PBO_MAX:
        reasons.append(f"PBO {_fmt(pbo)} is not < {PBO_MAX}")
    efficiency = wf["efficiency"] if wf else None
    if efficiency is None or efficiency < WFE_MIN:
        reasons.append(f"walk-forward efficiency {_fmt(efficiency)} < {WFE_MIN}")
    if perturbation is not None:
        reasons += _fragile(holdout, perturbation)
    return not reasons, reasons


def _fragile(holdout: dict, rows: list[dict]) -> list[str]:
    if holdout["sharpe"] <= 0:
        return [f"held-out Sharpe {holdout['sharpe']:.3f} is not positive: no robustness to keep under perturbation"]
    failed = sorted({f"{r['gene']} {'+' if r['direction'] > 0 else '-'}" for r in rows if not r["ok"]})
    if not failed:
        return []
    return [f"not robust: a 10% move of {', '.join(failed)} keeps under half the held-out Sharpe "
            f"{holdout['sharpe']:.3f}"]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
