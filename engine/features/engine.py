"""The feature stage core: every per-sample feature of one instrument, one ``FeatureVector`` per sample.

Per sample (never per event): each ``SampleFeature`` updates from the sample, then the vector is
the sample's flow values (the per-event accumulators) plus every feature's values plus the few
values derived from both (VWAP deviation). The names are declared up front (``names``) and every
vector carries exactly them, in that order, all finite.
"""

from __future__ import annotations

import math

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

    def vector(self, sample: Sample) -> FeatureVector:
        """Update every feature from ``sample`` and return the vector."""
        values: dict[str, float] = dict.fromkeys(self.names, 0.0)
        values.update(sample.flow)
        for feature in self.features:
            feature.on_sample(sample)
            values.update(feature.values())
        _derive(values)
        for name, value in values.items():
            if not math.isfinite(value):
                raise ValueError(f"feature {name} is {value} at ts {sample.ts_recv} (instrument {self.instrument_id})")
        self.vectors += 1
        return FeatureVector(sample.instrument_id, sample.ts_recv, sample.seq, sample.view.state, sample.frames,
                             values, sample.view, sample.detections)


def _derive(values: dict[str, float]) -> None:
    """Values from the flow and the book together: the mid's distance to the session VWAP (F9)."""
    if values.get("has_bbo") and values.get("volume"):
        dev = values["mid"] - values["vwap"]
        values["vwap_dev"] = dev
        sigma = values.get("vwap_sigma", 0.0)
        values["vwap_dev_sigma"] = dev / sigma if sigma > 0 else 0.0
