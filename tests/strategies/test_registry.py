"""Strategies from the configuration: built-ins by name, per-instrument lists, user strategies by module path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.events import InstrumentDef
from engine.testing import instrument as make_instrument
from strategies.registry import load_user_strategy, names_for, strategy_factory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mydesk"


def instrument(symbol: str = "TSLA", iid: int = 0) -> InstrumentDef:
    return make_instrument(iid, symbol, "0.25", "large_tick")


def test_the_default_lanes_run_the_six_order_flow_strategies_and_not_the_probe():
    """By default every instrument runs S1-S6 (the queue-imbalance probe is off)."""
    built = strategy_factory(load_config())(instrument())
    assert [s.name for s in built] == ["sweep_reversal", "stacked_absorption", "iceberg_defense", "vacuum_entry",
                                       "mean_reversion", "hvn_bounce"]


def test_an_instrument_can_narrow_the_enabled_strategies():
    """[instruments.X] strategies keeps only those it names, in the enabled order."""
    config = load_config(overrides=['instruments.TSLA.strategies=["hvn_bounce", "sweep_reversal"]'])
    assert names_for("TSLA", config) == ["sweep_reversal", "hvn_bounce"]
    assert len(names_for("AAPL", config)) == 6


def test_an_instrument_naming_a_strategy_that_is_not_enabled_is_refused():
    """A per-instrument strategy missing from strategies.enabled is a ConfigError naming both keys."""
    config = load_config(overrides=['strategies.enabled=["sweep_reversal"]',
                                    'instruments.TSLA.strategies=["vacuum_entry"]'])
    with pytest.raises(ConfigError, match=r"instruments.TSLA.strategies: 'vacuum_entry' not in strategies.enabled"):
        strategy_factory(config)


def test_an_unknown_builtin_name_is_refused_at_load():
    """strategies.enabled with an unknown name is refused naming the key and the built-ins."""
    with pytest.raises(ConfigError, match=r"strategies.enabled.*sweep_reversal"):
        load_config(overrides=['strategies.enabled=["sweep_reversl"]'])


def test_a_user_strategy_is_loaded_and_checked(monkeypatch):
    """mydesk.breakout:Breakout loads from its folder and builds for an instrument like a built-in."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    cls = load_user_strategy("mydesk.breakout:Breakout")
    config = load_config(overrides=['strategies.enabled=["sweep_reversal", "mydesk.breakout:Breakout"]'])
    assert [s.name for s in strategy_factory(config)(instrument())] == ["sweep_reversal", "breakout"]
    assert cls.__name__ == "Breakout"


@pytest.mark.parametrize(("entry", "message"), [
    ("mydesk.broken:NoHandler", "'mydesk.broken:NoHandler' is not a Strategy: it lacks an 'on_features(self, "
                                "features)' method"),
    ("mydesk.breakout:Nothing", "module 'mydesk.breakout' has no 'Nothing'"),
    ("nodesk.breakout:Breakout", "cannot import module 'nodesk.breakout'"),
    ("mydesk.breakout:NS", "'NS' is not a class"),
])
def test_a_user_strategy_that_is_not_one_is_refused_naming_what_is_missing(monkeypatch, entry, message):
    """A bad module path or a class that does not meet the protocol is a ConfigError saying what is missing."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    with pytest.raises(ConfigError) as info:
        load_user_strategy(entry)
    assert message in str(info.value)
    assert str(info.value).startswith(f"strategies.enabled: {entry!r}")


def test_the_example_user_strategy_runs_from_its_own_folder(tmp_path):
    """`chimera run` started in examples/mydesk runs Breakout beside a built-in and counts its signals."""
    db = tmp_path / "ex.db"
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "run", "--symbol", "TSLA,AAPL", "--duration", "300", "--speed", "max",
         "--db", str(db), "--set", 'strategies.enabled=["sweep_reversal", "mydesk.breakout:Breakout"]', "--json"],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert summary["strategies"]["breakout"]["signals"] >= 1
    assert summary["strategies"]["breakout"]["confidence_mode"] == "fallback_sraw_c"


def test_a_broken_user_strategy_stops_the_run_with_a_one_line_error(tmp_path):
    """chimera run with a non-Strategy class exits 2 with one line naming the entry and what it lacks."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "run", "--symbol", "TSLA", "--duration", "5", "--db",
         str(tmp_path / "x.db"), "--set", 'strategies.enabled=["mydesk.broken:NoHandler"]'],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "lacks an 'on_features(self, features)' method" in lines[0], result.stderr


def test_retune_gives_every_builtin_the_reloaded_parameters_and_keeps_its_state():
    """The daemon's SIGHUP path: each built-in takes its own block and the common one; what it holds stays."""
    config = load_config(None, ['strategies.enabled=["sweep_reversal", "stacked_absorption", "iceberg_defense", '
                                '"vacuum_entry", "mean_reversion", "hvn_bounce", "queue_imbalance"]'])
    reloaded = load_config(None, [*(f"strategies.{name}.time_stop_s=77.0" for name in config.strategies.enabled),
                                  "strategies.common.cooldown_s=9.0"])
    for strategy in strategy_factory(config)(instrument()):
        before = strategy.p
        assert before.time_stop_s != 77.0
        strategy.next_allowed = 123
        strategy.retune(reloaded.strategies)
        assert strategy.p == getattr(reloaded.strategies, strategy.name), strategy.name
        assert strategy.next_allowed == 123
        if strategy.name != "queue_imbalance":
            assert (strategy.common.cooldown_s, strategy.cooldown_ns) == (9.0, 9_000_000_000)
