"""Per-sample features: what is computed from samples (engine/features/sample.py), never per event.

A ``SampleFeature`` sees every sample of one instrument in order (bar closes and detection samples)
and returns its current values by stable name. Bar features (SPEC "· bar" items) update only at the
bar closes they need (``sample.frames & TF1/TF2/TF3``) and keep their values in between; per-bar
figures come from differences of the cumulative flow values (``TradeFlow``) between closes, so they
are exact. No value is ever NaN or inf: an undefined value is 0.0 (and a ``*_ready`` flag, where a
consumer must know, says whether it is meaningful).
"""

from __future__ import annotations

from engine.features.sample import Sample


class SampleFeature:
    """Base: override ``on_sample`` and ``values``."""

    def on_sample(self, sample: Sample) -> None:
        """Update from one sample (called for every sample, in order)."""

    def values(self) -> dict[str, float]:
        """Current values by stable name."""
        return {}
