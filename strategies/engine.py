"""The signal stage core: runs one instrument's strategies on its feature vectors.

Signals are only requested when the book is usable (not STALE, CROSSED or HALTED); suppressed
opportunities are counted, never silent. The output is the list of signals, in event order.
"""

from __future__ import annotations

from engine.book import UNUSABLE
from engine.features.vector import FeatureVector
from engine.records import RecordBuffer
from strategies.base import Signal, Strategy


class SignalEngine(RecordBuffer):
    def __init__(self, instrument_id: int, strategies: list[Strategy]) -> None:
        super().__init__()
        self.instrument_id = instrument_id
        self.strategies = strategies
        self.paused = 0
        self.signals = 0

    def apply(self, batch: list[FeatureVector]) -> list[Signal]:
        out: list[Signal] = []
        for features in batch:
            if features.state & UNUSABLE:
                self.paused += 1
                continue
            for strategy in self.strategies:
                signal = strategy.on_features(features)
                if signal is not None:
                    out.append(signal)
        self.signals += len(out)
        return out

    def flush(self) -> list[Signal]:
        self.records.append(("integrity", (self.instrument_id, "signals", "paused_updates", self.paused)))
        return []
