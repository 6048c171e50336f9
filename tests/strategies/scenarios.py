"""Strategy runs on the simulator's scenario presets: signals, truth labels and the mid path."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from engine.config import Config
from engine.events import TruthKind
from engine.pipeline.run import RunOptions, run_reference
from feeds.simulator import MarketSimulator
from feeds.simulator.scenarios import load_preset
from strategies.base import Signal
from strategies.registry import strategy_factory


@dataclass(frozen=True)
class Session:
    signals: tuple[Signal, ...]
    labels: tuple[tuple, ...]  # truth_labels rows
    mids: tuple[tuple[int, float], ...]  # (ts, mid) of the stored book samples (one a second)

    def of(self, strategy: str) -> list[Signal]:
        return [s for s in self.signals if s.strategy == strategy]

    def labels_of(self, kind: TruthKind) -> list[tuple]:
        """The planted labels of ``kind`` (rows whose params carry no ``natural``: not the natural sweeps)."""
        return [row for row in self.labels if row[3] == kind and '"natural"' not in row[9]]

    def outcome(self, signal: Signal) -> str:
        """"target" or "stop": which the mid reached first after the signal, else "open"."""
        side, target = signal.side, signal.targets[0]
        for ts, mid in self.mids:
            if ts <= signal.ts_recv:
                continue
            if side * (mid - signal.stop) <= 0:
                return "stop"
            if side * (mid - target) >= 0:
                return "target"
        return "open"


@cache
def session(name: str, seed: int, duration_s: float = 600.0) -> Session:
    """A preset (its own symbols and length) or ``"background"`` (TSLA and AAPL, no planted episodes)."""
    config = Config()
    if name == "background":
        sim = MarketSimulator(["TSLA", "AAPL"], config, seed=seed, duration_s=duration_s)
    else:
        scenario = load_preset(name)
        sim = MarketSimulator(scenario.spec.symbols, config, seed=seed, duration_s=scenario.spec.duration_s,
                              scenario=scenario)
    signals, records = run_reference(sim, config, RunOptions(strategies=strategy_factory(config)))
    labels = tuple(row for table, row in records if table == "truth_labels")
    mids = tuple((row[2], (row[4] + row[5]) / 2) for table, row in records
                 if table == "book_samples" and row[4] is not None and row[5] is not None)
    return Session(tuple(signals), labels, mids)
