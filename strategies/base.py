"""The Strategy protocol and the Signal it emits (SPEC section 3, common rules).

A strategy is a small synchronous object reacting to one instrument's feature vectors: one at each
bar close (TF1 = 1 s, with TF2/TF3 bits in ``frames``) and one at each detection sample (the
detections ride in ``features.detections``). It never sees truth labels, never reads the wall clock
and never trades through an unusable book: the signal engine only asks it for signals when the book
is neither STALE, CROSSED nor HALTED.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from engine.book import BookView
from engine.features.vector import FeatureVector


class Signal(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A trade idea: side, entry, stop, targets and time stop, with the evidence it was based on.

    Prices are ticks; ``score`` is the raw setup score S_raw in [0, 1] and ``confluence`` C.
    """

    signal_id: str
    instrument_id: int
    ts_recv: int
    seq: int
    strategy: str
    side: int
    entry_type: int
    entry_price: int
    stop: int
    targets: tuple[int, ...]
    time_stop_ns: int
    score: float
    confluence: float = 1.0
    features: FeatureVector | None = None
    view: BookView | None = None

    def sort_key(self) -> tuple[int, int, int, str]:
        """Canonical order across instruments: ``(ts_recv, instrument_id, seq, strategy)``."""
        return (self.ts_recv, self.instrument_id, self.seq, self.strategy)


class Strategy(Protocol):
    name: str

    def on_features(self, features: FeatureVector) -> Signal | None:
        """Return a signal or None, given the newest features (with their book view and detections)."""
        ...


def signal_id(instrument_id: int, seq: int, strategy: str) -> str:
    """Deterministic id: the same input always names its signals the same way."""
    return f"{instrument_id}:{seq}:{strategy}"
