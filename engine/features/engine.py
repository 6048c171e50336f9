"""The feature stage core: every per-sample feature of one instrument, one ``FeatureVector`` per sample.

Per sample (never per event): each ``SampleFeature`` updates from the sample, then the vector is
the sample's flow values (the per-event accumulators) plus every feature's values plus the few
values derived from both (VWAP deviation). The names are declared up front (``names``) and every
vector carries exactly them, in that order, all finite.
"""

from __future__ import annotations

import math
from math import isfinite

from engine.features.sample import Sample
from engine.features.sampled import SampleFeature
from engine.features.vector import FeatureVector

DERIVED = ("vwap_dev", "vwap_dev_sigma")


class FeatureEngine:
    """Runs ``features`` on each sample of one instrument; ``flow_names`` are the accumulators' names."""

    def __init__(self, instrument_id: int, features: list[SampleFeature], flow_names: tuple[str, ...]) -> None:
        self.instrument_id = instrument_id
        self.features = features
        names: list[str] = list(flow_names)
        for feature in features:
            names += feature.values().keys()
        names += DERIVED
        self.names: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.vectors = 0
        # bound once, called at every sample
        self.steps = [(feature.on_sample, feature.values) for feature in features]
        self.count = len(self.names)

    def vector(self, sample: Sample) -> FeatureVector:
        """Update every feature from ``sample`` and return the vector.

        Raises:
            ValueError: a feature is NaN or infinite (a bug: every feature must stay finite).
        """
        values: dict[str, float] = sample.flow.copy()
        merge = values.update
        for on_sample, current in self.steps:
            on_sample(sample)
            merge(current())
        _derive(values)
        if len(values) != self.count or not isfinite(sum(values.values())):
            self._refuse(values, sample)
        self.vectors += 1
        view = sample.view
        return FeatureVector(sample.instrument_id, sample.ts_recv, sample.seq, view.state, sample.frames,
                             values, view, sample.detections, sample.structures)


    def _refuse(self, values: dict[str, float], sample: Sample) -> None:
        if set(values) != set(self.names):
            raise ValueError(f"feature names changed: {sorted(set(values) ^ set(self.names))}")
        for name, value in values.items():
            if not math.isfinite(value):
                raise ValueError(f"feature {name} is {value} at ts {sample.ts_recv} (instrument {self.instrument_id})")


def _derive(values: dict[str, float]) -> None:
    """Values from the flow and the book together: the mid's distance to the session VWAP (F9)."""
    if values.get("has_bbo") and values.get("volume"):
        dev = values["mid"] - values["vwap"]
        sigma = values.get("vwap_sigma", 0.0)
        values["vwap_dev"] = dev
        values["vwap_dev_sigma"] = dev / sigma if sigma > 0 else 0.0
    else:
        values["vwap_dev"] = values["vwap_dev_sigma"] = 0.0
