"""Strategy cost on the AMZN level-5 LOBSTER day: a row per strategy (µs per call, calls per 1,000
events) and the strategies' share of the pipeline's time (target: under 10 %).

The day's feature vectors are captured once through the cores (``run_reference``); each strategy
(with its own confluence tracker, so its share of that work is included) is then timed over all of
them, best of 3. The share divides the six strategies' summed time by the time of the cores alone
(``run_reference`` with the six strategies, no event loop and no SQLite), which is the strictest
denominator: the full pipeline with persistence takes longer.
"""

from __future__ import annotations

import time

from benchmarks.common import best_of, main, result
from engine.config import load_config
from engine.pipeline.run import RunOptions, run_reference
from engine.testing import ListFeed
from feeds.lobster import LobsterFeed, locate_sample
from strategies.registry import strategy_factory

SIX = ("sweep_reversal", "stacked_absorption", "iceberg_defense", "vacuum_entry", "mean_reversion", "hvn_bounce")


def run() -> list[dict]:
    feed = LobsterFeed(locate_sample(5)[0])
    instruments, events = feed.instruments(), list(feed.events())
    captured: list = []

    class Capture:
        name = "capture"

        def on_features(self, features):
            captured.append(features)

    run_reference(ListFeed(instruments, events), load_config(), RunOptions(strategies=lambda d: [Capture()]))
    config = load_config()
    start = time.perf_counter()
    run_reference(ListFeed(instruments, events), config, RunOptions(strategies=strategy_factory(config)))
    cores = time.perf_counter() - start
    rows, total = [], 0.0
    per_1000 = len(captured) / len(events) * 1000
    for name in SIX:
        one = load_config(overrides=[f'strategies.enabled=["{name}"]'])

        def call_all(one=one) -> None:
            (strategy,) = strategy_factory(one)(instruments[0])
            on_features = strategy.on_features
            for features in captured:
                on_features(features)

        seconds = best_of(3, call_all)
        total += seconds
        rows.append(result(f"strategy {name}: time per call (AMZN L5 day)", round(seconds / len(captured) * 1e6, 2),
                           "µs", None, higher_is_better=False,
                           note=f"{len(captured):,} calls, {per_1000:.1f} calls per 1,000 events"))
    rows.append(result("six strategies' share of the cores' time (AMZN L5 day)", round(100 * total / cores, 2), "%",
                       10.0, higher_is_better=False,
                       note=f"{total:.3f} s of {cores:.2f} s (run_reference, {len(events):,} events)"))
    return rows


if __name__ == "__main__":
    main(run)
