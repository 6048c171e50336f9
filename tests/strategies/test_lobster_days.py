"""Every strategy over both AMZN LOBSTER sample days: no error, valid signals; the counts are printed
(no profitability is asserted on real data)."""

from __future__ import annotations

import collections

import pytest

from engine.config import load_config
from engine.pipeline.run import RunOptions, run_reference
from engine.testing import ListFeed
from feeds.lobster import LobsterFeed, lobster_available, locate_sample
from strategies.registry import strategy_factory

EVERY = '["sweep_reversal", "stacked_absorption", "iceberg_defense", "vacuum_entry", "mean_reversion", "hvn_bounce", ' \
        '"queue_imbalance"]'


@pytest.fixture(scope="module", params=[1, 5])
def amzn(request, tmp_path_factory):
    if not lobster_available(request.param):
        pytest.skip("LOBSTER sample data not found under $CHIMERA_DATA or ../shared/data")
    message, _ = locate_sample(request.param, tmp_path_factory.mktemp("lobster"))
    feed = LobsterFeed(message)
    return request.param, feed.instruments(), list(feed.events())


def test_every_strategy_runs_over_the_amzn_day(amzn):
    """S1-S6 and the probe run over the whole day; every signal has a side, a stop on the losing side, targets
    on the winning side and a confidence in [0, 1]."""
    levels, instruments, events = amzn
    config = load_config(overrides=[f"strategies.enabled={EVERY}"])
    signals, _ = run_reference(ListFeed(instruments, events), config,
                               RunOptions(strategies=strategy_factory(config)))
    counts = collections.Counter(s.strategy for s in signals)
    print(f"AMZN level {levels}: {len(events):,} events, signals per strategy: {dict(sorted(counts.items()))}")
    for s in signals:
        assert s.side in (1, -1) and s.side * (s.entry_price - s.stop) > 0
        assert s.targets and all(s.side * (t - s.entry_price) > 0 for t in s.targets)
        assert 0.0 <= s.confidence <= 1.0 and 0.0 <= s.score <= 1.0
    assert set(counts) <= set(config.strategies.enabled)
