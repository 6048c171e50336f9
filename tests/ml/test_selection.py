"""Choosing from a finished study: the feasible Pareto front, the DSR-ranked choice under the drawdown
cap, walk-forward over sessions and the verdict's reasons, on hand-built trials."""

from __future__ import annotations

import optuna
import pytest

from ml import selection


def trial(number: int, mean_r: float, sharpe: float, dd: float, trades: int = 40, min_trades: int = 30,
          sessions: list[dict] | None = None) -> optuna.trial.FrozenTrial:
    sessions = sessions or [{"label": "seed:1", "net_r": [mean_r + 0.5, mean_r - 0.5] * (trades // 2),
                             "pnl": mean_r * trades, "max_drawdown": dd, "pnl_path": [mean_r, -mean_r, mean_r]}]
    t = optuna.trial.create_trial(
        values=[mean_r, sharpe, dd], params={"x": float(number)},
        distributions={"x": optuna.distributions.FloatDistribution(0, 100)},
        user_attrs={"metrics": {"trades": trades, "mean_r": mean_r, "sharpe": sharpe, "max_drawdown": dd,
                                "pnl": mean_r * trades},
                    "constraint": [float(min_trades - trades)], "sessions": sessions})
    t.number = number
    return t


def test_front_keeps_the_feasible_non_dominated_trials():
    """Trial 1 is dominated by trial 0; trial 3 dominates everything but is infeasible; 0 and 2 trade off."""
    trials = [trial(0, 0.5, 0.3, 0.01), trial(1, 0.4, 0.2, 0.02), trial(2, 0.2, 0.6, 0.01),
              trial(3, 1.0, 1.0, 0.0, trades=10)]
    assert [t.number for t in selection.pareto_front(trials)] == [0, 2]


def test_choice_is_the_highest_deflated_sharpe_within_the_drawdown_cap():
    """Of two front members the steadier one (higher per-trade Sharpe) wins unless its drawdown is over the cap."""
    steady = trial(0, 0.3, 0.9, 0.02, sessions=[{"label": "a", "net_r": [0.3, 0.31, 0.29, 0.3] * 10, "pnl": 12.0,
                                                 "max_drawdown": 0.02, "pnl_path": [1.0, 2.0]}])
    noisy = trial(1, 0.5, 0.2, 0.01, sessions=[{"label": "a", "net_r": [2.5, -1.5] * 20, "pnl": 20.0,
                                                "max_drawdown": 0.01, "pnl_path": [3.0, -1.0]}])
    front, chosen = selection.choose([steady, noisy], drawdown_cap=0.05)
    assert len(front) == 2 and chosen["trial"] == 0
    assert chosen["dsr"] > next(m["dsr"] for m in front if m["trial"] == 1)
    assert selection.choose([steady, noisy], drawdown_cap=0.015)[1]["trial"] == 1
    assert selection.choose([steady, noisy], drawdown_cap=0.001)[1] is None


def _sessions(values: list[float]) -> list[dict]:
    return [{"label": f"seed:{i}", "net_r": [v, v], "pnl": 2 * v, "max_drawdown": 0.0, "pnl_path": [v]}
            for i, v in enumerate(values)]


def test_walk_forward_scores_each_windows_best_on_the_next():
    """Trial 1 leads on session 0 and trial 0 on session 1: the steps score them on sessions 1 and 2."""
    trials = [trial(0, 0, 0, 0, sessions=_sessions([0.0, 1.0, 0.5])),
              trial(1, 0, 0, 0, sessions=_sessions([1.0, -1.0, 2.0]))]
    wf = selection.walk_forward_of(trials, 3)
    assert [(s["trial"], s["oos_mean_r"]) for s in wf["steps"]] == [(1, -1.0), (0, 0.5)]
    assert wf["oos_mean_r"] == pytest.approx(-0.25)
    assert wf["efficiency"] == pytest.approx((-2.0 + 1.0) / (2.0 + 2.0))


def test_verdict_lists_every_guard_that_fails():
    """A choice with a losing hold-out, low DSR, no PBO and a poor walk-forward fails on each, named."""
    chosen = {"pnl": 10.0, "dsr": 0.5}
    holdout = {"trades": 4, "mean_r": -0.1, "pnl": -1.0}
    ok, reasons = selection.verdict(chosen, holdout, 2, 2, None, {"efficiency": 0.1})
    assert not ok
    assert [r.split()[0] for r in reasons] == ["held-out", "held-out", "deflated", "PBO", "walk-forward"]
    good = selection.verdict({"pnl": 10.0, "dsr": 0.99}, {"trades": 40, "mean_r": 0.2, "pnl": 9.0}, 2, 2, 0.1,
                             {"efficiency": 0.9})
    assert good == (True, [])
