"""Tests of feeds.simulator.check: synthetic-profile config, sim-check wiring, rendering."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from engine.config import Config, InstrumentSpec
from feeds.simulator.check import (
    background_market,
    profile_config,
    render_table,
    results_to_json,
    rule_references,
    run_sim_check,
)
from feeds.simulator.facts import FactResult

NAMES = ["1", "2", "3", "4", "5", "6", "7", "8a", "8b", "9"]


def test_profile_config_adds_three_synthetic_instruments():
    """A profile run trades SIM1..3 of that profile with betas 0.8, 0.6, 0.4; other symbols stay."""
    cfg = profile_config(Config(), "large_tick")
    assert cfg.run.symbols == ["SIM1", "SIM2", "SIM3"]
    assert [cfg.instrument(s).beta for s in cfg.run.symbols] == [0.8, 0.6, 0.4]
    assert {cfg.instrument(s).profile for s in cfg.run.symbols} == {"large_tick"}
    assert "AAPL" in cfg.instruments
    small = profile_config(Config(), "small_tick", start_price=580.0)
    assert {(small.instrument(s).start_price, small.instrument(s).tick_size) for s in small.run.symbols} == {
        (580.0, "0.01")}
    assert profile_config(Config(), "small_tick").instrument("SIM1").start_price == 223.0


def test_short_sim_check_returns_every_fact_with_simulator_truth():
    """A 3-minute session yields the ten checks, uses its metaorders and betas, and serialises."""
    results = run_sim_check(Config(), minutes=3, profile="small_tick", seed=3, reference_minutes=30)
    assert [r.name.split()[0] for r in results] == NAMES
    by_name = {r.name.split()[0]: r for r in results}
    assert by_name["8b"].detail["pairs"]["SIM1/SIM2"]["beta_product"] == pytest.approx(0.48)
    assert by_name["8b"].passed is None  # 3 min hold fewer than 10 disjoint 5-min windows
    assert by_name["9"].passed is None and by_name["9"].detail["reason"] == "no bar past the warm-up"
    orjson.dumps(results_to_json(results))


def test_sim_check_is_deterministic_for_a_seed():
    """Two runs with the same seed give identical values."""
    first = run_sim_check(Config(), minutes=2, profile="large_tick", seed=5, reference_minutes=25)
    second = run_sim_check(Config(), minutes=2, profile="large_tick", seed=5, reference_minutes=25)
    assert results_to_json(first) == results_to_json(second)


def test_rule_references_are_shared_by_instruments_of_one_class():
    """The three synthetic instruments share one training fit; a different profile gets its own."""
    config = profile_config(Config(), "small_tick")
    specs = {**config.instruments, "BIG": InstrumentSpec(profile="large_tick")}
    config = msgspec.structs.replace(config, instruments=specs,
                                     run=msgspec.structs.replace(config.run, symbols=["SIM1", "SIM2", "BIG", "SIM3"]))
    refs = rule_references(config, minutes=25, seed=1)
    assert set(refs) == {0, 1, 2, 3}
    assert refs[0] is refs[1] is refs[3] and refs[2] is not refs[0]
    assert refs[2].spread_high < refs[0].spread_high  # a one-tick book against a wide one


def test_sim_check_measures_the_background_market_without_planted_episodes():
    """sim-check switches the planted background episodes off; everything else is unchanged."""
    config = background_market(Config())
    assert config.simulator.episodes_per_hour == 0.0
    assert config.simulator.news_market_per_hour == Config().simulator.news_market_per_hour


def test_render_table_and_json_of_fact_results():
    """Fact results render one table row each and convert to name/value/target/pass dicts."""
    results = [FactResult("1 heavy tails", 12.5, "kurt > 10", True, {"n": 10}),
               FactResult("5 concave impact", None, "δ in [0.3, 0.8]", None, {"n": 0, "reason": "no metaorders"})]
    table = render_table(results)
    assert table.row_count == 2 and [c.header for c in table.columns][:4] == ["check", "value", "target", "pass"]
    rows = results_to_json(results)
    assert rows[0] == {"name": "1 heavy tails", "value": 12.5, "target": "kurt > 10", "pass": True,
                       "detail": {"n": 10}}
    assert rows[1]["pass"] is None
