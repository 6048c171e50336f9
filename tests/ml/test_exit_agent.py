"""The Q-learning exit agent (SPEC 7): state bins, masking, the Q update, the convergence rule, planted
paths where holding wins or nothing does, and ``chimera train exits`` end to end."""

from __future__ import annotations

import itertools
import math

import numpy as np
import orjson
import pytest

from engine import store
from engine.app.cli import main
from engine.store import models as rows
from ml import exit_agent as ea
from ml.registry import ModelRefused

NS = 1_000_000_000


def make_path(mids, *, side=1, entry=100.0, stop=90, target=0, qty=2, spread=2.0, sigma1=2.0, fee=0.0,
              regime_group=ea.RANGE, horizon_steps=None) -> ea.EntryPath:
    mids = np.asarray(mids, dtype=float)
    n = len(mids)
    steps = horizon_steps if horizon_steps is not None else n - 1
    return ea.EntryPath(side=side, entry=entry, qty=qty, initial_stop=stop, target=target,
                        horizon_ns=max(steps, 1) * NS, tick_value=1.0, exit_fee_per_lot=fee, entry_fees=0.0,
                        group=regime_group, t_ns=np.arange(n, dtype=np.int64) * NS, bid=mids - spread / 2,
                        ask=mids + spread / 2, sigma1=np.full(n, sigma1), swing=np.zeros(n), flow=np.zeros(n))


# ---- state ------------------------------------------------------------------------------------------
def test_pnl_bins_are_right_closed_at_the_spec_edges():
    cases = {-math.inf: 0, -5.0: 0, -0.75: 0, -0.7499: 1, -0.25: 1, -0.2499: 2, 0.0: 2, 0.25: 2, 0.2501: 3,
             0.75: 3, 0.7501: 4, 1.5: 4, 1.5001: 5, 2.5: 5, 2.5001: 6, 40.0: 6, math.inf: 6}
    assert {x: ea.pnl_bin(x) for x in cases} == cases


def test_time_bins_are_left_closed_and_clipped():
    cases = {-0.2: 0, 0.0: 0, 0.0999: 0, 0.1: 1, 0.2999: 1, 0.3: 2, 0.5999: 2, 0.6: 3, 1.0: 3, 1.7: 3}
    assert {x: ea.time_bin(x) for x in cases} == cases


def test_flow_giveback_and_regime_bins():
    assert [ea.ofi_bin(x) for x in (-1.0001, -1.0, 0.0, 1.0, 1.0001)] == [0, 1, 1, 1, 2]
    # give-back = (MFE - pnl) / MFE; no favourable excursion yet -> the first bin
    assert ea.giveback_bin(0.0, -0.5) == 0
    assert [ea.giveback_bin(1.0, p) for p in (1.0, 0.76, 0.75, 0.40, 0.39, -1.0)] == [0, 0, 1, 1, 2, 2]
    assert ea.regime_group("TREND_UP", 1) == ea.WITH_TREND and ea.regime_group("TREND_UP", -1) == ea.AGAINST
    assert ea.regime_group("trend_down", -1) == ea.WITH_TREND and ea.regime_group("SHOCK", 1) == ea.AGAINST
    assert ea.regime_group("BREAKOUT", -1) == ea.AGAINST
    assert ea.regime_group("RANGE_LOW", 1) == ea.RANGE and ea.regime_group("unknown", -1) == ea.RANGE


def test_state_index_is_a_bijection_onto_1512_rows():
    seen = {ea.state_index(*c) for c in itertools.product(*(range(d) for d in ea.DIMS))}
    assert ea.N_STATES == 7 * 4 * 3 * 3 * 2 * 3 == 1512
    assert seen == set(range(1512))
    assert ea.state_index(6, 3, 2, 2, 1, 2) == 1511 and ea.state_index(0, 0, 0, 0, 1, 0) == 3


# ---- masking ----------------------------------------------------------------------------------------
def test_exit_half_only_when_full_and_divisible():
    path = make_path([100, 101, 102])
    params = ea.ExitParams()
    assert ea.EXIT_HALF in ea.valid_actions(path, 0, 100.0, 2, 90, params)
    assert ea.EXIT_HALF not in ea.valid_actions(path, 0, 100.0, 1, 90, params)
    one_lot = make_path([100, 101, 102], qty=1)
    assert ea.EXIT_HALF not in ea.valid_actions(one_lot, 0, 100.0, 1, 90, params)


def test_trail_and_breakeven_only_tighten():
    # a long at 100, mid 110 (bid 109), sigma1 2: trail level 108, breakeven 101
    path = make_path([110, 110, 110])
    params = ea.ExitParams()
    assert ea.trail_level(path, 0, 110.0) == 108.0 and ea.breakeven(path, params) == 101
    assert {ea.TRAIL, ea.STOP_TO_BREAKEVEN} <= set(ea.valid_actions(path, 0, 110.0, 2, 90, params))
    at_trail = ea.valid_actions(path, 0, 110.0, 2, 108, params)  # stop already at the trail level
    assert ea.TRAIL not in at_trail and ea.STOP_TO_BREAKEVEN not in at_trail
    between = ea.valid_actions(path, 0, 110.0, 2, 105, params)  # breakeven would loosen, the trail tightens
    assert ea.TRAIL in between and ea.STOP_TO_BREAKEVEN not in between
    # a short mirrors it: mid 90 (ask 91), trail 92, breakeven 99, initial stop 110
    short = make_path([90, 90, 90], side=-1, stop=110)
    assert ea.trail_level(short, 0, 90.0) == 92.0 and ea.breakeven(short, params) == 99
    assert ea.TRAIL not in ea.valid_actions(short, 0, 90.0, 2, 92, params)
    # a level on the wrong side of the exit price (a long under water) is never offered
    under = make_path([95, 95, 95])
    assert ea.STOP_TO_BREAKEVEN not in ea.valid_actions(under, 0, 95.0, 2, 90, params)


# ---- one episode and the Q update ---------------------------------------------------------------------
def test_rewards_and_q_update_on_a_two_step_path_match_the_hand_computation():
    # long 2 lots at 100, stop 90 (R = 10 ticks, tick value 1): mids 100, 104, 108, spread 2, no fees
    path = make_path([100, 104, 108])
    pre = ea._Precomputed(path)
    episode = ea.run_episode(pre, lambda k, s, valid: ea.HOLD, ea.ExitParams())
    s0 = ea.state_index(2, 0, 1, ea.RANGE, ea.FULL, 0)  # pnl 0 R, t 0, flow 0
    s1 = ea.state_index(3, 2, 1, ea.RANGE, ea.FULL, 0)  # pnl 0.4 R, t 0.5
    # step 0: marked 2 x (104 - 100) = 8 -> 8 / 20 = 0.4; step 1: time stop, sold at the bid 107: 14 -> 6/20
    assert episode.transitions == [(s0, ea.HOLD, pytest.approx(0.4), s1), (s1, ea.HOLD, pytest.approx(0.3), -1)]
    assert episode.net_r == pytest.approx(0.7) and episode.hold_s == 2.0
    table = ea.QTable()
    for _ in range(2):
        for s, a, r, nxt in episode.transitions:
            table.update(s, a, r, nxt)
    # pass 1: Q(s0) = 0.4 (alpha 1, Q(s1) still 0), Q(s1) = 0.3; pass 2: alpha = 2^-0.6
    alpha = 1 / 2 ** 0.6
    assert table.q[s0, ea.HOLD] == pytest.approx(0.4 + alpha * (0.4 + 0.995 * 0.3 - 0.4))
    assert table.q[s1, ea.HOLD] == pytest.approx(0.3)
    assert table.n[s0, ea.HOLD] == 2


def test_exit_half_then_time_stop_books_both_exits_with_fees():
    path = make_path([100, 110, 120], fee=0.5)
    pre = ea._Precomputed(path)
    actions = iter([ea.EXIT_HALF, ea.HOLD])
    episode = ea.run_episode(pre, lambda k, s, valid: next(actions), ea.ExitParams())
    # half (1 lot) at bid 99 at step 0: -1 - 0.5 fee; the other lot at bid 119 at the time stop: +19 - 0.5
    assert episode.net_r == pytest.approx((-1.5 + 18.5) / 20)
    assert sum(t[2] for t in episode.transitions) == pytest.approx(episode.net_r)
    assert episode.transitions[1][0] % 6 // 3 == ea.HALF  # the second decision sees half the size


def test_policies_on_one_path_bracket_time_stop_and_trail():
    mids = [100, 105, 111, 115, 120, 112, 106]
    path = make_path(mids, target=110, sigma1=1.0)
    out = ea.policy_results([path], None)
    assert out["fixed_bracket"][0][0] == pytest.approx((110 - 100) * 2 / 20)  # target: bid 110 at step 2
    assert out["time_stop"][0][0] == pytest.approx((105 - 100) * 2 / 20)  # last bid 105
    # trail at 2 x 1 x sqrt(60) = 15.49 ticks under the mid: 120 - 15.49 = 104.5 then hit at bid 105? no: 105 > 104.5
    assert out["trailing_stop"][0][0] == pytest.approx((105 - 100) * 2 / 20)
    assert "q_agent" not in out


# ---- convergence ------------------------------------------------------------------------------------
def test_epsilon_decays_exponentially_to_its_floor():
    params = ea.TrainParams()
    assert ea.epsilon(0, params) == 1.0
    assert ea.epsilon(15, params) == pytest.approx(math.sqrt(0.05))
    assert ea.epsilon(30, params) == pytest.approx(0.05) and ea.epsilon(80, params) == 0.05


def test_policy_change_counts_visited_states_only():
    before = np.array([0, 0, 1, 2, 4])
    after = np.array([0, 2, 1, 3, 4])
    visited = np.array([True, True, True, False, False])
    assert ea.policy_change(before, after, visited) == pytest.approx(1 / 3)
    assert ea.policy_change(before, after, np.zeros(5, bool)) == 0.0


def test_training_stops_once_the_policy_changes_on_fewer_than_half_a_percent_of_states():
    rng = np.random.default_rng(3)
    paths = [make_path(100 + np.cumsum(rng.normal(0.5, 1.0, 20)), target=130) for _ in range(20)]
    result = ea.train(paths, ea.TrainParams(max_epochs=300, seed=1))
    assert result.converged and result.epochs < 300
    assert result.epochs >= ea.TrainParams().min_epochs
    assert result.changes[-1] < 0.005 and all(c >= 0.005 for c in result.changes[ea.TrainParams().min_epochs - 1:-1])


# ---- planted paths ----------------------------------------------------------------------------------
def _planted(rng, count: int, drift: float, steps: int = 30, noise: float = 2.5) -> list[ea.EntryPath]:
    """Long entries at 100, stop 90, target 110 (1 R), a random walk of ``drift`` ticks a step."""
    out = []
    for _ in range(count):
        walk = 100 + np.concatenate(([0.0], np.cumsum(rng.normal(drift, noise, steps))))
        out.append(make_path(np.round(walk), target=110, stop=90, sigma1=1.0, fee=0.1, spread=1.0))
    return out


def test_with_drift_after_entry_the_agent_learns_to_hold_and_the_paired_test_accepts():
    rng = np.random.default_rng(12)
    train, test = _planted(rng, 200, 1.0), _planted(rng, 60, 1.0)
    result = ea.train(train, ea.TrainParams(seed=2))
    out = ea.compare(test, result.table, draws=10_000, seed=0)
    agent, bracket = out["policies"]["q_agent"], out["policies"]["fixed_bracket"]
    assert agent["mean_hold_s"] > 0.8 * 30 > bracket["mean_hold_s"]  # holds past the 1 R target
    assert agent["mean_r"] > bracket["mean_r"] + 1.0 and agent["max_dd_r"] <= bracket["max_dd_r"]
    assert out["paired_test"]["p_bootstrap"] < 0.05 and out["paired_test"]["p_wilcoxon"] < 0.05
    assert out["accepted"] and out["decision"] == "q_agent"


def test_on_pure_noise_the_paired_test_rejects_the_agent():
    rng = np.random.default_rng(12)
    train, test = _planted(rng, 200, 0.0), _planted(rng, 60, 0.0)
    result = ea.train(train, ea.TrainParams(seed=2, max_epochs=60))
    out = ea.compare(test, result.table, draws=10_000, seed=0)
    assert not out["accepted"] and out["decision"] == "fixed_bracket"
    assert "fixed bracket ships" in out["reason"]


def test_decision_rule_names_the_failed_condition():
    bracket = {"mean_r": 0.1, "max_dd_r": 2.0}
    good = {"n": 50, "mean_diff": 0.2, "p_bootstrap": 0.01, "p_wilcoxon": 0.02}
    assert ea.decide({"mean_r": 0.3, "max_dd_r": 2.0}, bracket, good)[0]
    assert "drawdown is worse" in ea.decide({"mean_r": 0.3, "max_dd_r": 2.5}, bracket, good)[1]
    assert "not significantly" in ea.decide({"mean_r": 0.3, "max_dd_r": 1.0}, bracket,
                                            {**good, "p_wilcoxon": 0.2})[1]
    assert "does not improve" in ea.decide({"mean_r": 0.1, "max_dd_r": 1.0}, bracket, good)[1]


def test_paired_bootstrap_is_seeded_and_max_drawdown_is_from_the_running_peak():
    diff = np.array([0.5, -0.2, 0.3, 0.1, -0.1, 0.4])
    assert ea.paired_test(diff, 2000, seed=5) == ea.paired_test(diff, 2000, seed=5)
    assert ea.max_drawdown_r(np.array([1.0, -2.0, 0.5, -1.0, 3.0])) == pytest.approx(2.5)
    assert ea.max_drawdown_r(np.array([-1.0, 2.0])) == pytest.approx(1.0)


def test_the_table_round_trips_and_a_modified_file_is_refused(tmp_path):
    table = ea.QTable()
    table.update(5, ea.TRAIL, 0.25, -1)
    path = tmp_path / "t.npz"
    sha = ea.save_table(table, path)
    back = ea.load_table(path, sha)
    assert np.array_equal(back.q, table.q) and np.array_equal(back.n, table.n)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ModelRefused, match="modified"):
        ea.load_table(path, sha)
    with pytest.raises(ModelRefused, match="unknown"):
        ea.load_table(path, None)


# ---- the command ------------------------------------------------------------------------------------
def test_train_exits_end_to_end_prints_the_comparison_and_registers_the_table(tmp_path, capsys):
    db = tmp_path / "c.db"
    code = main(["train", "exits", "--train-seeds", "1", "--test-seeds", "2", "--minutes", "20", "--workers", "1",
                 "--draws", "500", "--max-epochs", "40", "--db", str(db), "--json"])
    assert code == 0
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["train_seeds"] == [1] and out["test_seeds"] == [2]
    assert set(out["policies"]) == set(ea.POLICIES)
    for figures in out["policies"].values():
        assert set(figures) == {"trades", "mean_r", "sharpe", "max_dd_r", "win_rate", "mean_hold_s"}
        assert figures["trades"] == out["test_trades"]
    assert set(out["paired_test"]) == {"n", "mean_diff", "ci95", "p_bootstrap", "p_wilcoxon"}
    assert out["decision"] in ("q_agent", "fixed_bracket") and out["reason"]
    assert (out["enable"] is not None) == out["accepted"]
    # the on-policy check re-runs the held-out seed: with the bracket it is the very run the paths came from
    assert set(out["on_policy"]) == {"fixed_bracket", "q_agent"}
    assert out["on_policy"]["fixed_bracket"]["trades"] == out["test_trades"]
    conn = store.connect(db)
    try:
        row = rows.get_model(conn, out["model"]["version"])
    finally:
        conn.close()
    assert row is not None and row.kind == "exit_agent" and row.mode == "shadow"
    assert row.status == ("champion" if out["accepted"] else "candidate")
    assert row.training["test_seeds"] == [2] and row.metrics["decision"] == out["decision"]
    assert ea.load_table(row.path, row.sha256).q.shape == (1512, 5)


def test_train_exits_refuses_overlapping_seeds(tmp_path, capsys):
    code = main(["train", "exits", "--train-seeds", "1,2", "--test-seeds", "2", "--db", str(tmp_path / "c.db")])
    assert code == 2
    assert "held-out" in capsys.readouterr().err


# ---- live exits -------------------------------------------------------------------------------------
def _run_with_table(tmp_path, q_column: int):
    from engine.config import load_config, with_values
    from engine.pipeline.run import RunOptions, run_reference
    from engine.records import TABLES
    from feeds.simulator import MarketSimulator

    table = ea.QTable()
    table.q[:, q_column] = 1.0
    path = tmp_path / "agent.npz"
    sha = ea.save_table(table, path)
    config = with_values(load_config("config.toml"), {"run.seed": 1, "execution.exit_agent": True,
                                                      "execution.exit_agent_table": str(path),
                                                      "execution.exit_agent_sha256": sha})
    feed = MarketSimulator(["AAPL"], config, 1, 20 * 60.0)
    _, records = run_reference(feed, config, RunOptions(duration_s=20 * 60.0))
    trips = [dict(zip(TABLES["round_trips"], r, strict=True)) for t, r in records if t == "round_trips"]
    orders = [dict(zip(TABLES["orders"], r, strict=True)) for t, r in records if t == "orders"]
    return trips, orders


def test_a_live_table_that_always_exits_closes_every_trade_at_the_first_close(tmp_path):
    trips, _ = _run_with_table(tmp_path, ea.EXIT_ALL)
    assert trips, "the session should hold entries"
    reasons = {t["exit_reason"] for t in trips}
    assert "exit agent" in reasons and "target" not in reasons
    assert reasons <= {"exit agent", "stop", "time stop", "end of data"}
    assert all(t["exit_ts"] - t["entry_ts"] < 5 * NS for t in trips if t["exit_reason"] == "exit agent")


def test_a_live_table_that_exits_half_sends_half_then_manages_the_rest(tmp_path):
    trips, orders = _run_with_table(tmp_path, ea.EXIT_HALF)
    halves = [o for o in orders if o["purpose"] == "exit:exit agent half"]
    sized = {t["trip_id"]: t["qty"] for t in trips}
    assert halves and all(o["size"] == sized[o["signal_id"]] // 2 for o in halves if o["signal_id"] in sized)
    assert "target" not in {t["exit_reason"] for t in trips}  # the agent has no fixed target


def test_exit_agent_config_needs_the_table_and_its_hash():
    from engine.config import load_config, with_values
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="exit_agent_table"):
        with_values(load_config("config.toml"), {"execution.exit_agent": True})
    with pytest.raises(ConfigError):
        with_values(load_config("config.toml"), {"execution.exit_agent_sha256": "xyz"})


# ---- shadow mode and --evaluate ----------------------------------------------------------------------
def test_shadow_mode_learns_from_the_run_without_changing_its_rows(tmp_path):
    from engine.config import load_config, with_values
    from engine.pipeline.run import RunOptions, run_reference
    from engine.pipeline.wiring import build_execution
    from engine.portfolio import Portfolio
    from feeds.simulator import MarketSimulator

    path = tmp_path / "base.npz"
    sha = ea.save_table(ea.QTable(), path)
    base = with_values(load_config("config.toml"), {"run.seed": 1})
    shadow = with_values(base, {"execution.exit_agent_shadow": True, "execution.exit_agent_table": str(path),
                                "execution.exit_agent_sha256": sha})
    plain_rows = run_reference(MarketSimulator(["AAPL"], base, 1, 900.0), base, RunOptions(duration_s=900.0))[1]
    feed = MarketSimulator(["AAPL"], shadow, 1, 900.0)
    learner = build_execution(feed.instruments(), shadow, Portfolio(feed.instruments(), 1e6), 0).observer
    assert isinstance(learner, ea.ShadowLearner) and learner.table.n.sum() == 0
    shadow_rows = run_reference(feed, shadow, RunOptions(duration_s=900.0))[1]
    assert shadow_rows == plain_rows  # the exits stay the bracket's


def test_a_shadow_run_registers_its_table_and_evaluate_retests_it(tmp_path, capsys):
    db = tmp_path / "c.db"
    assert main(["train", "exits", "--train-seeds", "1", "--test-seeds", "3", "--minutes", "10", "--workers", "1",
                 "--draws", "200", "--max-epochs", "31", "--no-on-policy", "--db", str(db), "--json"]) == 0
    trained = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])["model"]
    code = main(["run", "--symbol", "AAPL", "--duration", "600", "--speed", "max", "--db", str(db), "--json",
                 "--set", "execution.exit_agent_shadow=true", "--set", f"execution.exit_agent_table={trained['path']}",
                 "--set", f"execution.exit_agent_sha256={trained['sha256']}"])
    assert code == 0
    run = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    shadow = run["exit_agent_shadow"]
    assert shadow["version"].startswith("exits-shadow-")
    assert ea.load_table(shadow["path"], shadow["sha256"]).n.sum() >= ea.load_table(trained["path"],
                                                                                     trained["sha256"]).n.sum()
    assert main(["train", "exits", "--evaluate", "--test-seeds", "3", "--minutes", "10", "--workers", "1",
                 "--draws", "200", "--no-on-policy", "--db", str(db), "--json"]) == 0
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["command"] == "train exits --evaluate" and out["model"]["version"] == shadow["version"]
    assert set(out["policies"]) == set(ea.POLICIES) and out["decision"] in ("q_agent", "fixed_bracket")


def test_held_out_seeds_without_an_entry_keep_the_fixed_bracket():
    """No held-out entry: every policy has 0 trades and the decision says why (it used to raise KeyError)."""
    rng = np.random.default_rng(3)
    result = ea.train(_planted(rng, 50, 1.0), ea.TrainParams(seed=1))
    out = ea.compare([], result.table, draws=100, seed=0)
    assert out["policies"]["q_agent"]["trades"] == 0 == out["policies"]["fixed_bracket"]["trades"]
    assert not out["accepted"] and out["decision"] == "fixed_bracket" and "no held-out trades" in out["reason"]
