"""SPEC 8's perturbation check of the chosen parameters, and the per-trial CPU split of ``evaluate``.

Planted landscapes give the known answers: a Sharpe peaked sharply at min_rr = 2 loses everything under a
10 % move of min_rr (not robust); a flat plateau keeps it (robust).
"""

from __future__ import annotations

from engine.config import load_config
from engine.pipeline.evaluation import Dataset, Metrics, Session, evaluate
from engine.pipeline.run import COST_PARTS
from ml import optimize, selection
from ml.executors import SerialExecutor

CONFIG = load_config("config.toml")
MIN_RR = optimize.GENES["strategies.sweep_reversal.min_rr"]  # float in [1, 3]: a 10 % move is 0.2
P_MAX = optimize.GENES["strategies.sweep_reversal.p_max_ticks"]  # int in [2, 12]: a 10 % move is 1
MIN_EVENTS = optimize.GENES["strategies.stacked_absorption.min_events"]  # int in [2, 5]: 0.3, so 1
EXTEND = optimize.GENES["strategies.common.extend_target"]  # bool: not perturbed
GENES = [MIN_RR, P_MAX, MIN_EVENTS, EXTEND]
PARAMS = {MIN_RR.key: 2.0, P_MAX.key: 6, MIN_EVENTS.key: 3, EXTEND.key: True}


def metrics_with(sharpe: float) -> Metrics:
    session = Session(label="toy", net_r=(sharpe,), pnl=sharpe, max_drawdown=0.0, pnl_path=(sharpe,))
    return Metrics(trades=40, mean_r=sharpe, sharpe=sharpe, max_drawdown=0.0, pnl=sharpe, sessions=(session,))


def peak(params: dict, dataset) -> Metrics:
    """Sharpe 1 at min_rr = 2, falling to 0 within 0.05 of it."""
    return metrics_with(max(0.0, 1.0 - abs(params[MIN_RR.key] - 2.0) / 0.05))


def plateau(params: dict, dataset) -> Metrics:
    """Sharpe between 0.9 and 1 over the whole search range of every gene."""
    return metrics_with(1.0 - 0.05 * abs(params[MIN_RR.key] - 2.0) - 0.01 * abs(params[P_MAX.key] - 6))


def test_a_sharp_peak_is_not_robust():
    """Both moves of min_rr drop the Sharpe to 0 (< half of 1): not robust, and the verdict says so."""
    rows, robust = optimize.perturbation_check(PARAMS, GENES, peak, None, SerialExecutor(), peak(PARAMS, None))
    assert not robust
    failed = {(r["gene"], r["direction"]) for r in rows if not r["ok"]}
    assert failed == {(MIN_RR.key, -1), (MIN_RR.key, 1)}
    assert all(r["objective"] == 0.0 and r["change"] == -1.0 for r in rows if r["gene"] == MIN_RR.key)
    holdout = {"trades": 40, "mean_r": 1.0, "sharpe": 1.0, "max_drawdown": 0.0, "pnl": 1.0}
    chosen = {"pnl": 1.0, "dsr": 0.99}
    wf = {"efficiency": 1.0}
    assert selection.verdict(chosen, holdout, 1, 1, 0.1, wf) == (True, [])
    survives, reasons = selection.verdict(chosen, holdout, 1, 1, 0.1, wf, rows)
    assert not survives and reasons == [f"not robust: a 10% move of {MIN_RR.key} +, {MIN_RR.key} - keeps under "
                                        "half the held-out Sharpe 1.000"]


def test_a_flat_plateau_is_robust_and_reports_each_move():
    """On the plateau every move keeps over 90 % of the Sharpe; each float/int gene is moved both ways by
    10 % of its range (an int by at least 1), the boolean not at all."""
    rows, robust = optimize.perturbation_check(PARAMS, GENES, plateau, None, SerialExecutor(),
                                               plateau(PARAMS, None))
    assert robust
    moves = {(r["gene"], r["direction"]): (round(r["value"], 9), round(r["delta"], 9)) for r in rows}
    assert moves == {(MIN_RR.key, -1): (1.8, -0.2), (MIN_RR.key, 1): (2.2, 0.2),
                     (P_MAX.key, -1): (5, -1), (P_MAX.key, 1): (7, 1),
                     (MIN_EVENTS.key, -1): (2, -1), (MIN_EVENTS.key, 1): (4, 1)}
    by = {(r["gene"], r["direction"]): r for r in rows}
    assert abs(by[(MIN_RR.key, 1)]["objective"] - 0.99) < 1e-12
    assert abs(by[(P_MAX.key, -1)]["change"] + 0.01) < 1e-12


def test_a_non_positive_base_sharpe_is_never_robust():
    """SPEC 8 keeps half of a positive Sharpe; with none to keep the set is not robust."""
    flat_zero = lambda params, dataset: metrics_with(0.0)  # noqa: E731
    rows, robust = optimize.perturbation_check(PARAMS, GENES, flat_zero, None, SerialExecutor(), metrics_with(0.0))
    assert rows and not robust


def test_moves_are_clipped_to_the_bounds_and_a_null_move_is_not_rerun():
    """At the upper bound the upward move is clipped to no change (delta 0) and reuses the base figures
    without another evaluation; the downward move is whole."""
    calls: list[dict] = []

    def counting(params: dict, dataset) -> Metrics:
        calls.append(params)
        return plateau(params, dataset)

    at_top = {**PARAMS, MIN_RR.key: 3.0, P_MAX.key: 12, MIN_EVENTS.key: 2}
    rows, _ = optimize.perturbation_check(at_top, GENES, counting, None, SerialExecutor(), plateau(at_top, None))
    by = {(r["gene"], r["direction"]): r for r in rows}
    up = by[(MIN_RR.key, 1)]
    assert (up["value"], up["delta"], up["clipped"]) == (3.0, 0.0, True)
    assert round(by[(MIN_RR.key, -1)]["value"], 9) == 2.8 and not by[(MIN_RR.key, -1)]["clipped"]
    assert (by[(P_MAX.key, 1)]["value"], by[(P_MAX.key, 1)]["clipped"]) == (12, True)
    assert (by[(MIN_EVENTS.key, -1)]["value"], by[(MIN_EVENTS.key, -1)]["clipped"]) == (2, True)
    assert by[(MIN_RR.key, 1)]["objective"] == plateau(at_top, None).sharpe
    assert len(calls) == 3  # the three unclipped moves only
    assert all(min(g.low, g.high) <= r["value"] <= g.high for g in GENES[:3] for r in rows if r["gene"] == g.key)


def test_the_check_on_real_evaluations_is_deterministic_and_uses_the_same_sessions():
    """Through the product's evaluate on one simulated session: two runs give identical rows, and each row's
    figure is that of evaluating the moved parameters directly on the same dataset (same seeds)."""
    dataset = Dataset(config=CONFIG, symbol="AAPL", seeds=(1,), minutes=1.0)
    params = {MIN_RR.key: 1.5, optimize.GENES["strategies.common.cooldown_s"].key: 30.0}
    genes = [MIN_RR, optimize.GENES["strategies.common.cooldown_s"]]
    base = evaluate(params, dataset)
    first = optimize.perturbation_check(params, genes, evaluate, dataset, SerialExecutor(), base)
    second = optimize.perturbation_check(params, genes, evaluate, dataset, SerialExecutor(), base)
    assert first == second
    row = next(r for r in first[0] if r["gene"] == MIN_RR.key and r["direction"] == 1)
    direct = evaluate({**params, MIN_RR.key: row["value"]}, dataset)
    assert (row["objective"], row["trades"]) == (direct.sharpe, direct.trades)


def test_evaluate_returns_its_cpu_split_and_the_parts_add_up_to_the_total():
    """The split has every part and the total; the parts, measured inside the run, sum to within 10 % of
    the evaluation's total CPU time; the metrics themselves do not depend on it."""
    dataset = Dataset(config=CONFIG, symbol="AAPL", seeds=(1, 2), minutes=1.0)
    metrics = evaluate({}, dataset)
    assert set(metrics.cpu_s) == set(COST_PARTS) | {"total"}
    assert all(v >= 0 for v in metrics.cpu_s.values()) and metrics.cpu_s["total"] > 0
    parts = sum(metrics.cpu_s[p] for p in COST_PARTS)
    assert abs(parts - metrics.cpu_s["total"]) <= 0.1 * metrics.cpu_s["total"]
    assert metrics.cpu_s["simulation"] > 0 and metrics.cpu_s["features"] > 0
    again = evaluate({}, dataset)
    assert (again.as_dict(), again.sessions) == (metrics.as_dict(), metrics.sessions)
    assert optimize.trial_record(metrics, 1)["cpu_s"] == metrics.cpu_s
