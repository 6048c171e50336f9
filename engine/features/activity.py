"""Trade activity: trade intensity (SPEC F11) and volume acceleration (SPEC F12), from the cumulative
trade counters of each TF1 close (``TradeFlow``'s ``orders`` and ``volume``, engine/features/flow.py).

Counts over a window are differences of those cumulative counters between TF1 closes, so they are
exact at every close; both features update at TF1 closes and hold their values in between.

F11 ``trade_intensity = #orders(W) / W`` (aggressive orders per second: the fills sharing a
match_id, or the same ts and sign, count once, as ``TradeFlow`` counts them), W = 10 s;
``trade_intensity_ewma``: an EWMA (half-life 10 s) of the per-second counts of the TF1 bars,
bias-corrected; ``trade_intensity_z``: z of ``trade_intensity`` against its causal baseline at TF2
closes (30 min; a close is scored before it joins the baseline). ``trade_intensity_ready`` once
W seconds were seen (before that the count is divided by the seconds held).

F12 ``volume_accel = (V_30s / 30) / (V_300s / 300)`` and ``log_volume_accel = log(volume_accel)``.
Before 300 s of history both windows are normalised by the seconds they actually hold. Undefined
while ``V_300s = 0`` (both 0, ``volume_accel_ready`` 0); a zero ``V_30s`` under a
non-zero ``V_300s`` would give log 0 = -inf, so ``V_30s`` is floored at half a lot (a continuity
correction: the log is then large and negative, but finite). ``volume_accel_ready`` once 300 s were
seen and ``V_300s > 0``.
"""

from __future__ import annotations

import math

from engine.config.features import TradeIntensityParams, VolumeAccelerationParams
from engine.features.bars import TF1, TF2
from engine.features.baseline import RollingBaseline
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature
from engine.features.series import CumulativeRing, Ewma


class TradeIntensity(SampleFeature):
    """F11 over the TF1 closes of one instrument."""

    def __init__(self, params: TradeIntensityParams | None = None) -> None:
        p = self.params = params or TradeIntensityParams()
        self.orders = CumulativeRing(p.window_s)
        self.ewma = Ewma(p.ewma_half_life_s)
        self.baseline = RollingBaseline(p.baseline_samples, p.baseline_min_samples, p.sigma_floor)
        self.scale: tuple[float, float] | None = None  # (mean, std) of the baseline once ready
        self.out = {"trade_intensity": 0.0, "trade_intensity_ewma": 0.0, "trade_intensity_z": 0.0,
                    "trade_intensity_ready": 0.0}

    def on_sample(self, sample: Sample) -> None:
        if not sample.frames & TF1:
            return
        ring, out = self.orders, self.out
        ring.push(sample.flow.get("orders", 0))
        bars = ring.bars()
        if bars:
            out["trade_intensity_ewma"] = self.ewma.add(ring.change(1))
        window = self.params.window_s
        held = min(bars, window)
        intensity = ring.change(window) / held if held else 0.0
        out["trade_intensity"] = intensity
        out["trade_intensity_ready"] = 1.0 if bars >= window else 0.0
        scale = self.scale
        out["trade_intensity_z"] = (intensity - scale[0]) / scale[1] if scale is not None else 0.0
        if sample.frames & TF2 and bars >= window:
            baseline = self.baseline
            baseline.add(intensity)
            self.scale = (baseline.mean(), max(baseline.std(), self.params.sigma_floor)) if baseline.ready else None

    def values(self) -> dict[str, float]:
        """Current values (this feature's own mapping: copy it to keep it past the next sample)."""
        return self.out


class VolumeAcceleration(SampleFeature):
    """F12 over the TF1 closes of one instrument."""

    def __init__(self, params: VolumeAccelerationParams | None = None) -> None:
        p = self.params = params or VolumeAccelerationParams()
        self.volume = CumulativeRing(max(p.long_s, p.short_s))
        self.out = {"volume_accel": 0.0, "log_volume_accel": 0.0, "volume_accel_ready": 0.0}

    def on_sample(self, sample: Sample) -> None:
        if not sample.frames & TF1:
            return
        p, ring, out = self.params, self.volume, self.out
        ring.push(sample.flow.get("volume", 0))
        long_volume = ring.change(p.long_s)
        bars = ring.bars()
        if not long_volume:
            out.update(volume_accel=0.0, log_volume_accel=0.0, volume_accel_ready=0.0)
            return
        short_volume = max(ring.change(p.short_s), p.zero_floor_lots)
        ratio = short_volume / min(bars, p.short_s) / (long_volume / min(bars, p.long_s))
        out["volume_accel"] = ratio
        out["log_volume_accel"] = math.log(ratio)
        out["volume_accel_ready"] = 1.0 if ring.bars() >= p.long_s else 0.0

    def values(self) -> dict[str, float]:
        """Current values (this feature's own mapping: copy it to keep it past the next sample)."""
        return self.out
