"""OFI directional bias and persistence (SPEC F7), from the OFI windows of each sample.

- ``ofi_bias = EMA_h(sign(OFI_TF1))``: at each TF1 close, the sign of the OFI of the bar just
  closed (``ofi_1s``, exact at a close) enters an EMA with a half-life of h = 10 bars (SPEC writes
  ``EMA_h``; half-life, like every other EWMA of SPEC), bias-corrected over the bars seen; in [-1, 1].
- ``ofi_persistence``: the share of the last 30 TF1 bars whose OFI has the sign of the bar just
  closed (0 when that OFI is 0); ``ofi_persistence_ready`` once 30 bars were seen.
- ``ofi_z_1s``, ``ofi_z_10s``, ``ofi_z_60s``: ``z(OFI_W)`` against the causal baseline of the same
  window sampled at TF2 closes over the last 30 min (``RollingBaseline``). The z of a sample uses the
  baseline of the TF2 closes *before* it (a TF2 close adds its own value after scoring it), so it
  is computed at every sample (bar closes and detections, whose OFI windows are current);
  ``ofi_z_ready`` once the baselines hold their minimum of samples.

Reads the ``OrderFlowImbalance`` values (engine/features/ofi.py) from ``sample.flow``; O(1) a sample.
"""

from __future__ import annotations

from collections import deque

from engine.config.features import OfiBiasParams
from engine.features.bars import TF1, TF2
from engine.features.baseline import RollingBaseline
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature


class OfiBias(SampleFeature):
    """F7 over the samples of one instrument."""

    def __init__(self, params: OfiBiasParams | None = None) -> None:
        p = self.params = params or OfiBiasParams()
        self.decay = 0.5 ** (1.0 / p.half_life_bars)
        self.weighted = 0.0
        self.weight = 0.0
        self.signs: deque[int] = deque(maxlen=p.persistence_bars)
        self.counts = {1: 0, -1: 0, 0: 0}
        self.windows = [(f"ofi_{w}s", f"ofi_z_{w}s",
                         RollingBaseline(p.baseline_samples, p.baseline_min_samples, p.sigma_floor))
                        for w in p.windows_s]
        self.scales: list[tuple[float, float] | None] = [None] * len(self.windows)  # (mean, std) once ready
        self.out: dict[str, float] = {"ofi_bias": 0.0, "ofi_persistence": 0.0, "ofi_persistence_ready": 0.0,
                                      "ofi_z_ready": 0.0}
        self.out.update({z: 0.0 for _, z, _ in self.windows})

    def on_sample(self, sample: Sample) -> None:
        flow, out = sample.flow, self.out
        for (key, z_key, _), scale in zip(self.windows, self.scales, strict=True):
            out[z_key] = (flow.get(key, 0.0) - scale[0]) / scale[1] if scale is not None else 0.0
        if sample.frames & TF1:
            self._on_bar(flow.get("ofi_1s", 0.0))
        if sample.frames & TF2:
            floor = self.params.sigma_floor
            for i, (key, _, baseline) in enumerate(self.windows):
                baseline.add(flow.get(key, 0.0))
                self.scales[i] = (baseline.mean(), max(baseline.std(), floor)) if baseline.ready else None
            out["ofi_z_ready"] = 1.0 if self.windows[0][2].ready else 0.0

    def _on_bar(self, ofi: float) -> None:
        sign = (ofi > 0) - (ofi < 0)
        decay = self.decay
        self.weighted = decay * self.weighted + (1.0 - decay) * sign
        self.weight = decay * self.weight + (1.0 - decay)
        signs, counts = self.signs, self.counts
        if len(signs) == signs.maxlen:
            counts[signs[0]] -= 1
        signs.append(sign)
        counts[sign] += 1
        out = self.out
        out["ofi_bias"] = self.weighted / self.weight
        out["ofi_persistence"] = counts[sign] / len(signs) if sign else 0.0
        out["ofi_persistence_ready"] = 1.0 if len(signs) == signs.maxlen else 0.0

    def values(self) -> dict[str, float]:
        """Current values (this feature's own mapping: copy it to keep it past the next sample)."""
        return self.out
