"""The optimiser's evaluation: the run's cores over simulated sessions, pure and repeatable."""

from __future__ import annotations

import pickle

import pytest

from engine.config import load_config, with_values
from engine.errors import ConfigError
from engine.pipeline.evaluation import Dataset, Session, combine, evaluate

CONFIG = load_config("config.toml")


def dataset(**kw) -> Dataset:
    return Dataset(config=CONFIG, symbol="AAPL", seeds=(1,), minutes=3.0, **kw)


def test_same_params_and_seed_give_identical_metrics():
    """Two evaluations of one parameter set on one seed give the same metrics, session by session (all but
    the CPU split, a measurement of the call)."""
    first = evaluate({}, dataset())
    assert first.trades > 0
    second = evaluate({}, pickle.loads(pickle.dumps(dataset())))
    assert (second.as_dict(), second.sessions) == (first.as_dict(), first.sessions)


def test_no_strategy_enabled_gives_no_trades():
    """With every strategy disabled nothing trades: zero trades, zero PnL, a flat equity path."""
    metrics = evaluate({"strategies.enabled": []}, dataset())
    assert (metrics.trades, metrics.pnl, metrics.max_drawdown) == (0, 0.0, 0.0)
    assert metrics.sessions[0].pnl_path == (0.0, 0.0, 0.0)


def test_equity_path_adds_up_to_the_session_pnl():
    """The per-minute PnL path has one bucket a minute and sums to the change of equity, which with every
    trade closed equals the round trips' PnL."""
    session = evaluate({}, dataset()).sessions[0]
    assert len(session.pnl_path) == 3
    assert sum(session.pnl_path) == pytest.approx(session.pnl, abs=1e-6)


def test_a_parameter_outside_its_range_is_refused_naming_the_key():
    """A parameter outside its configuration range raises a ConfigError naming the key."""
    with pytest.raises(ConfigError, match="strategies.sweep_reversal.min_rr"):
        evaluate({"strategies.sweep_reversal.min_rr": -1.0}, dataset())


def test_combine_computes_the_figures_by_hand():
    """Mean R, per-trade Sharpe (sample deviation), worst drawdown and PnL over two hand-built sessions."""
    a = Session(label="a", net_r=(1.0, -1.0), pnl=10.0, max_drawdown=0.01, pnl_path=(10.0,))
    b = Session(label="b", net_r=(3.0,), pnl=-4.0, max_drawdown=0.03, pnl_path=(-4.0,))
    m = combine([a, b])
    assert (m.trades, m.mean_r, m.max_drawdown, m.pnl) == (3, 1.0, 0.03, 6.0)
    assert m.sharpe == pytest.approx(1.0 / 2.0)  # std of (1, -1, 3) with ddof=1 is 2


def test_a_recorded_session_replayed_from_its_tape_gives_the_same_trades(tmp_path):
    """A tape of simulated session seed 1 is a dataset too: its trades, PnL and drawdown equal the session's."""
    from feeds.simulator import MarketSimulator
    from feeds.tape import record

    config = with_values(CONFIG, {"run.seed": 1})
    tape = tmp_path / "s1.jsonl"
    record(MarketSimulator(["AAPL"], config, 1, 180.0), tape, source="test", meta={}, created_at="2026-01-01T00:00:00Z")
    simulated = evaluate({}, dataset()).sessions[0]
    replayed = evaluate({}, Dataset(config=config, symbol="AAPL", tapes=(str(tape),))).sessions[0]
    assert replayed.label == str(tape) and simulated.net_r
    assert (replayed.net_r, replayed.pnl, replayed.max_drawdown) == (simulated.net_r, simulated.pnl,
                                                                     simulated.max_drawdown)


def test_the_losing_streak_stop_ends_a_session_only_when_asked():
    """With the kill switch latching at the first losing trade, an evaluation that keeps the trigger stops
    trading there (seed 3: its first trade loses, so it is the only one); one without it trades on through
    the same first trade, exactly as a configuration whose streak limit no session reaches."""
    strict = with_values(CONFIG, {"risk.max_consecutive_losses": 1})
    kept = evaluate({}, Dataset(config=strict, symbol="AAPL", seeds=(3,), minutes=30.0))
    off = evaluate({}, Dataset(config=strict, symbol="AAPL", seeds=(3,), minutes=30.0, losing_streak_stop=False))
    r_kept, r_off = kept.sessions[0].net_r, off.sessions[0].net_r
    assert len(r_kept) == 1 and r_kept[0] < 0
    assert len(r_off) > 1 and r_off[0] == r_kept[0]
    loose = with_values(CONFIG, {"risk.max_consecutive_losses": 1_000_000_000})
    assert evaluate({}, Dataset(config=loose, symbol="AAPL", seeds=(3,), minutes=30.0)).sessions == off.sessions
