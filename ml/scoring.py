"""The Scorer protocol and the scoring stage core (SPEC section 4.6-4.8).

A scorer turns a signal into a calibrated probability. Until a classifier is trained, the
untrained rule applies: ``p_adj := S_raw * C`` and the break-even rule is skipped; the mode is
recorded with every scored signal so logs, the DB and the summary show which one was used.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from strategies.base import Signal


class ScoredSignal(msgspec.Struct, frozen=True, gc=False):
    signal: Signal
    probability: float
    mode: str  # "untrained", "disabled", or a model version


class Scorer(Protocol):
    mode: str

    def score(self, signal: Signal) -> float:
        """Probability that the signal reaches its target before its stop."""
        ...


class UntrainedScorer:
    """SPEC 4.8 before training: ``p_adj = S_raw * C``."""

    mode = "untrained"

    def score(self, signal: Signal) -> float:
        return max(0.0, min(1.0, signal.score * signal.confluence))


class DisabledScorer:
    """``--no-ml``: pass the raw score through, marked as such."""

    mode = "disabled"

    def score(self, signal: Signal) -> float:
        return max(0.0, min(1.0, signal.score))


class ScoringStage:
    """Stage core: signals in canonical order -> scored signals."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def apply(self, batch: list[Signal]) -> list[ScoredSignal]:
        score, mode = self.scorer.score, self.scorer.mode
        return [ScoredSignal(signal, score(signal), mode) for signal in batch]

    def flush(self) -> list:
        return []
