"""The signal stage core: runs one instrument's strategies on its events and feature vectors.

Signals are only requested when the book is usable (not STALE, CROSSED or HALTED); suppressed
opportunities are counted, never silent. The output is the list of signals, in event order.
"""

from __future__ import annotations

from engine.book import UNUSABLE, BookView
from engine.features.core import FeatureVector
from engine.records import RecordBuffer
from strategies.base import Signal, Strategy


class SignalEngine(RecordBuffer):
    def __init__(self, instrument_id: int, strategies: list[Strategy]) -> None:
        super().__init__()
        self.instrument_id = instrument_id
        self.strategies = strategies
        self.view: BookView | None = None
        self.paused = 0
        self.signals = 0
        self._listeners = [s for s in strategies if getattr(s, "wants_events", False)]

    def apply(self, batch: list) -> list[Signal]:
        out: list[Signal] = []
        listeners = self._listeners
        for item in batch:
            kind = type(item)
            if kind is FeatureVector:
                view = self.view
                if item.state & UNUSABLE or view is None:
                    self.paused += 1
                    continue
                for strategy in self.strategies:
                    signal = strategy.on_features(item, view)
                    if signal is not None:
                        out.append(signal)
            elif kind is BookView:
                self.view = item
            elif listeners:
                for strategy in listeners:
                    strategy.on_event(item)
        self.signals += len(out)
        return out

    def flush(self) -> list[Signal]:
        self.records.append(("integrity", (self.instrument_id, "signals", "paused_updates", self.paused)))
        return []
