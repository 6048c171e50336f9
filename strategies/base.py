"""The Strategy protocol and the Signal it emits (SPEC section 3, common rules; section 4).

A strategy is a small synchronous object reacting to one instrument's feature vectors: one at each
bar close (TF1 = 1 s, with TF2/TF3 bits in ``frames``) and one at each detection sample (the
detections ride in ``features.detections``). It never sees truth labels, never reads the wall clock
and never trades through an unusable book: the signal engine only asks it for signals when the book
is neither STALE, CROSSED nor HALTED.

A signal carries everything the later stages and the reports need: side, entry type and price,
structure-based stop, targets, time stop, the invalidation predicate in words, the raw setup score
``score`` (S_raw), the multi-timeframe confluence ``confluence`` (C), the structural confluence
``structural`` (K), the regime when one is known, the confidence, the trigger values that made it
(``evidence``), the feature snapshot (``features``) and the ids of the detections that caused it.
Until the signal classifier exists the confidence is the fallback ``S_raw * C`` and
``confidence_mode`` says so (SPEC 4.8).
"""

from __future__ import annotations

from typing import Protocol

import msgspec
import orjson

from engine.book import BookView
from engine.features.vector import FeatureVector

FALLBACK = "fallback_sraw_c"  # confidence_mode while no classifier is trained: confidence = S_raw * C


class Signal(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A trade idea: side, entry, stop, targets and time stop, with the evidence it was based on.

    Prices are ticks; ``score`` is the raw setup score S_raw in [0, 1], ``confluence`` C,
    ``structural`` K (distinct level types near the entry), ``confidence`` in [0, 1].
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
    structural: int = 0
    regime: str = ""  # the regime label at the signal, "" when unknown
    confidence: float = -1.0  # < 0: not given, the fallback S_raw * C is used
    confidence_mode: str = FALLBACK
    invalidation: str = ""
    detection_ids: tuple[str, ...] = ()
    evidence: dict[str, float] = {}
    features: FeatureVector | None = None
    view: BookView | None = None

    def __post_init__(self) -> None:
        if self.confidence < 0:
            fallback = max(0.0, min(1.0, self.score * self.confluence))
            msgspec.structs.force_setattr(self, "confidence", fallback)

    def sort_key(self) -> tuple[int, int, int, str]:
        """Canonical order across instruments: ``(ts_recv, instrument_id, seq, strategy)``."""
        return (self.ts_recv, self.instrument_id, self.seq, self.strategy)

    def detail_columns(self) -> tuple:
        """The signals-table columns beyond the original ones (``engine.records.SIGNAL_DETAIL``)."""
        return (
            orjson.dumps(list(self.targets)).decode(), self.confluence, self.structural, self.regime or None,
            self.confidence, self.confidence_mode, self.invalidation,
            orjson.dumps(list(self.detection_ids)).decode(), orjson.dumps(self.evidence).decode(),
        )


class Strategy(Protocol):
    name: str

    def on_features(self, features: FeatureVector) -> Signal | None:
        """Return a signal or None, given the newest features (with their book view and detections)."""
        ...

    # Optional: ``retune(self, config: StrategiesConfig) -> None`` takes a reloaded ``[strategies]``
    # section (the daemon's SIGHUP) without losing the strategy's state; see docs/strategies.md.


def signal_id(instrument_id: int, seq: int, strategy: str) -> str:
    """Deterministic id: the same input always names its signals the same way."""
    return f"{instrument_id}:{seq}:{strategy}"
