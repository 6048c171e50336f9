"""Simulator throughput: events generated per second for the three default symbols, no pacing.

``list(MarketSimulator(...).events())`` over ten simulated minutes of AAPL, NVDA (small-tick) and
TSLA (large-tick) with the shipped configuration, seed 1. The same workload (same seed, same
symbols, so the same events) is repeated; the median rate is reported with the range of the
repeats, which shows how much the shared machine moved the figure.
"""

from __future__ import annotations

import statistics
import sys
import time

from benchmarks.common import emit, result
from engine.config import Config
from feeds.simulator import MarketSimulator

SYMBOLS = ["AAPL", "NVDA", "TSLA"]
DURATION_S = 600.0
SEED = 1
REPEATS = 7


def run() -> dict:
    """Median events/s of ``REPEATS`` runs of one workload: 10 simulated minutes, 3 instruments, seed 1."""
    config = Config()
    rates, counts = [], set()
    for _ in range(REPEATS):
        sim = MarketSimulator(SYMBOLS, config, seed=SEED, duration_s=DURATION_S)
        start = time.perf_counter()
        n = len(list(sim.events()))
        rates.append(n / (time.perf_counter() - start))
        counts.add(n)
    if len(counts) != 1:
        raise RuntimeError(f"one workload gave different event counts {sorted(counts)}: not deterministic")
    median = statistics.median(rates)
    return result("simulator events/s (3 instruments)", round(median), "events/s", 300_000,
                  note=f"{counts.pop():,} events, {DURATION_S:.0f} simulated s, AAPL/NVDA/TSLA, seed {SEED}: "
                       f"median of {REPEATS} repeats (range {min(rates):,.0f}-{max(rates):,.0f})")


if __name__ == "__main__":
    out = run()
    if "--json" in sys.argv:
        emit([out])
    else:
        print(out)
