"""The Scorer protocol and the scoring stage core (SPEC section 4.6-4.8).

A scorer turns a signal into a calibrated probability. Until a classifier is trained, the
untrained rule applies: ``p_adj := S_raw * C`` and the break-even rule is skipped; the mode is
recorded with every scored signal so logs, the DB and the summary show which one was used. Once a
signal classifier is the registry's champion, ``ClassifierScorer`` gives its calibrated probability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import msgspec
import numpy as np

from strategies.base import Signal

if TYPE_CHECKING:
    from ml.online import OnlineLearner
    from ml.price_target import TargetPredictor

CLASSIFIER = "classifier"  # confidence_mode of a signal whose confidence is the live classifier's p_adj


class ScoredSignal(msgspec.Struct, frozen=True, gc=False):
    signal: Signal
    probability: float
    mode: str  # "untrained", "disabled", or a model version
    target: int = 0  # a live price-target model's take-profit in ticks; 0: the strategy's own target


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
    """Stage core: signals in canonical order -> scored signals.

    ``targets``: a price-target model (``ml.price_target.TargetPredictor``). Its take-profit is recorded
    in each signal's evidence (``model_target``, ticks; ``model_target_r``, in R) and, when it runs
    live, carried in ``ScoredSignal.target`` for the risk manager.
    """

    def __init__(self, scorer: Scorer, targets: TargetPredictor | None = None) -> None:
        self.scorer = scorer
        self.targets = targets

    def apply(self, batch: list[Signal]) -> list[ScoredSignal]:
        score, mode = self.scorer.score, self.scorer.mode
        annotate = getattr(self.scorer, "annotate", None)
        if annotate is None and self.targets is None:
            return [ScoredSignal(signal, score(signal), mode) for signal in batch]
        out = []
        for signal in batch:
            p = score(signal)
            if annotate is not None:
                signal = annotate(signal, p)
            scored = ScoredSignal(signal, p, mode)
            out.append(scored if self.targets is None else self._with_target(scored, self.targets))
        return out

    @staticmethod
    def _with_target(scored: ScoredSignal, targets: TargetPredictor) -> ScoredSignal:
        signal = scored.signal
        found = targets.target(signal.side, signal.entry_price, signal.stop, feature_row(signal))
        if found is None:
            return scored
        evidence = {**signal.evidence, "model_target": float(found.ticks), "model_target_r": found.r}
        signal = msgspec.structs.replace(signal, evidence=evidence)
        return ScoredSignal(signal, scored.probability, scored.mode, found.ticks if targets.live else 0)

    def flush(self) -> list:
        return []


def feature_row(signal: Signal) -> np.ndarray:
    """The models' feature row of a signal (``signal_model.FEATURES``), with the strategy's own target."""
    from ml import signal_model as sm

    values = signal.features.values if signal.features is not None else {}
    return sm.signal_features(values, strategy=signal.strategy, regime=signal.regime, side=signal.side,
                              entry=float(signal.entry_price), stop=float(signal.stop),
                              target=float(signal.targets[0] if signal.targets else signal.entry_price),
                              score=signal.score, confluence=signal.confluence, structural=signal.structural,
                              ts=signal.ts_recv)


class ClassifierScorer:
    """A registered signal classifier (SPEC 4.6-4.7, 6): the calibrated ``p``, then the per-(strategy,
    regime) intercepts of its training (``logit p_adj = logit p + b``).

    ``live``: the probability is ``p_adj`` and the signal's confidence becomes it (``confidence_mode``
    ``classifier``). Shadow (a model trained on simulated data on real data, SPEC 12): ``p_adj`` is
    recorded in the signal's evidence (``classifier_p``) while the untrained rule keeps deciding.
    """

    def __init__(self, model: object, version: str, intercepts: dict[str, float], live: bool,
                 online: OnlineLearner | None = None) -> None:
        self.online = online
        self.model = model
        self.version = version
        self.intercepts = dict(intercepts)
        self.live = live
        self.mode = version if live else f"shadow:{version}"
        self.fallback = UntrainedScorer()
        from ml.signal_model import OneRowCalibrated

        self.one_row = OneRowCalibrated(model)  # the model's calibrated p per signal, without sklearn's overhead

    @staticmethod
    def row(signal: Signal) -> np.ndarray:
        """The classifier's feature row of a signal (``signal_model.FEATURES``)."""
        return feature_row(signal)

    def probability(self, signal: Signal) -> float:
        from ml import signal_model as sm

        row = self.row(signal)
        if self.online is not None:  # the online layer's champion, recalibrated; remembered until the trade closes
            return self.online.score(signal.signal_id, row, signal.strategy, signal.regime, signal.ts_recv,
                                     signal.instrument_id)
        p = np.array([self.one_row.probability(row)])
        adj = sm.adjusted(p, np.array([signal.strategy]), np.array([signal.regime]), self.intercepts)
        return float(adj[0])

    def score(self, signal: Signal) -> float:
        return self.probability(signal) if self.live else self.fallback.score(signal)

    def annotate(self, signal: Signal, probability: float) -> Signal:
        """The signal as the later stages see it: confidence = p (live) or p in the evidence (shadow)."""
        if self.live:
            return msgspec.structs.replace(signal, confidence=probability, confidence_mode=CLASSIFIER)
        return msgspec.structs.replace(signal, evidence={**signal.evidence, "classifier_p": self.probability(signal)})
