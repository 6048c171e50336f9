"""No look-ahead: the signals before a cut point t are the same whether a recorded tape is replayed whole
or truncated at t, and strategies never see truth labels."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import Config
from engine.events import Detection, TruthLabel
from engine.pipeline.run import RunOptions, run_reference
from engine.testing import ListFeed
from feeds.simulator import MarketSimulator
from feeds.simulator.scenarios import load_preset
from feeds.tape import TapeFeed, record
from strategies.registry import strategy_factory


@pytest.fixture(scope="module")
def tape(tmp_path_factory):
    """A recorded session with planted episodes on two instruments (the tape holds the truth labels too)."""
    scenario = load_preset("stop_run_reversal")
    sim = MarketSimulator(["TSLA", "AAPL"], Config(), seed=2, duration_s=300.0, scenario=scenario)
    path = tmp_path_factory.mktemp("tape") / "session.jsonl.gz"
    record(sim, path, source="simulator", created_at="2024-06-21T13:30:00+00:00")
    feed = TapeFeed(path)
    return feed.instruments(), list(feed.events())


def signals_of(instruments, events):
    config = Config()
    factory = strategy_factory(config)
    signals, _ = run_reference(ListFeed(instruments, events), config, RunOptions(strategies=factory))
    return signals


def test_signals_before_a_cut_are_identical_whole_or_truncated(tape):
    """At random cut points t, the signals known by the last event before t match those of the whole tape."""
    instruments, events = tape
    whole = signals_of(instruments, events)
    assert len(whole) >= 3 and len({s.strategy for s in whole}) >= 2
    start, end = events[0].ts_recv, events[-1].ts_recv
    rng = np.random.default_rng(15)
    cuts = sorted(int(t) for t in rng.uniform(start, end, size=4)) + [s.ts_recv + 1 for s in whole[:2]]
    for cut in cuts:
        prefix = [e for e in events if e.ts_recv < cut]
        known = prefix[-1].ts_recv
        truncated = [s for s in signals_of(instruments, prefix) if s.ts_recv <= known]
        expected = [s for s in whole if s.ts_recv <= known]
        assert truncated == expected, f"cut at {cut}: {len(truncated)} vs {len(expected)} signals"


def test_strategies_never_see_truth_labels(tape):
    """Every feature vector a strategy receives carries detections only; the tape's truth labels stay out."""
    instruments, events = tape
    assert any(isinstance(e, TruthLabel) for e in events)
    seen: list = []

    class Spy:
        name = "spy"

        def on_features(self, features):
            seen.extend(features.detections)
            seen.extend(v for v in features.structures.values() if isinstance(v, TruthLabel))
            return None

    run_reference(ListFeed(instruments, events), Config(), RunOptions(strategies=lambda d: [Spy()]))
    assert seen and all(isinstance(d, Detection) for d in seen)
