"""S1 Liquidity Sweep Reversal (SPEC section 3).

Short after an up-sweep (mirror for long): (1) R = the highest swing high confirmed within
``swing_lookback_s`` (F25), or VAH when there is none; (2) a sweep (F22) whose extreme lies in
(R, R + P_max], P_max = max(8 ticks, 3 sigma1); (3) within T_rev = 20 s of the sweep: mid back below
R, the 1 s OFI z-score <= 0 and the CVD over the last 5 s <= 0; (4) trapped volume (F23, the trapped
detection of that sweep) >= 0.3 x the sweep's volume. An absorption on the ask at the sweep high
adds to the confidence. Entry: market (IOC at bid - 1). Stop: sweep extreme + buf. Targets: T1 the
pre-sweep price, T2 the POC or VWAP (the farther); minimum reward to risk 1.5. Time stop 5 min.
Invalidation: a new extreme beyond the sweep, the mid back above R for > 2 T_rev, or a second
same-direction sweep with OFI z > 2.
"""

from __future__ import annotations

from engine.config.strategies import CommonParams, SweepReversalParams
from engine.detectors.absorption import AbsorptionDetection
from engine.detectors.sweep import SweepDetection
from engine.detectors.trapped import TrappedDetection
from engine.events import OrderType
from engine.features.vector import FeatureVector
from strategies.base import Signal
from strategies.common import NS, OrderFlowStrategy
from strategies.confluence import Confluence


class _Episode:
    __slots__ = ("sweep", "reference", "extreme", "deadline", "trapped", "absorbed", "pre_price")

    def __init__(self, sweep: SweepDetection, reference: int, extreme: int, deadline: int, pre_price: int) -> None:
        self.sweep = sweep
        self.reference = reference
        self.extreme = extreme
        self.deadline = deadline
        self.pre_price = pre_price
        self.trapped: TrappedDetection | None = None
        self.absorbed: AbsorptionDetection | None = None


class SweepReversal(OrderFlowStrategy):
    name = "sweep_reversal"

    def __init__(self, instrument_id: int, params: SweepReversalParams | None = None,
                 confluence: Confluence | None = None, common: CommonParams | None = None) -> None:
        super().__init__(instrument_id, confluence, common)
        self.p = params or SweepReversalParams()
        self.episodes: dict[str, _Episode] = {}

    def setup(self, features: FeatureVector) -> Signal | None:
        ts, values = features.ts_recv, features.values
        for d in features.detections:
            if isinstance(d, SweepDetection):
                self._on_sweep(d, values)
            elif isinstance(d, TrappedDetection) and d.sweep_id in self.episodes:
                self.episodes[d.sweep_id].trapped = d
            elif isinstance(d, AbsorptionDetection):
                for ep in self.episodes.values():
                    if d.side == -ep.sweep.side and abs(d.price_lo - ep.extreme) <= self.buffer(values):
                        ep.absorbed = d
        if not self.episodes:
            return None
        for key in [k for k, ep in self.episodes.items() if ts > ep.deadline]:
            del self.episodes[key]
        for key, ep in self.episodes.items():
            signal = self._check(features, ep)
            if signal is not None:
                del self.episodes[key]
                return signal
        return None

    def _reference(self, values: dict[str, float], up: bool) -> int:
        side = "high" if up else "low"
        lookback = self.p.swing_lookback_s
        levels = [values[f"swing_{side}_{i}"] for i in range(1, 6)
                  if values.get(f"swing_{side}_{i}") and values.get(f"swing_{side}_{i}_age_s", 0.0) <= lookback]
        if levels:
            return int(max(levels) if up else min(levels))
        level = values.get("profile_vah" if up else "profile_val", 0.0)
        return int(level) if values.get("profile_ready") and level else 0

    def _on_sweep(self, sweep: SweepDetection, values: dict[str, float]) -> None:
        up = sweep.side > 0
        reference = self._reference(values, up)
        if not reference:
            return
        extreme = sweep.price_hi if up else sweep.price_lo
        p_max = max(self.p.p_max_ticks, self.p.p_max_sigma1 * values.get("sigma1", 0.0))
        beyond = (extreme - reference) if up else (reference - extreme)
        if not 0 < beyond <= p_max:
            return
        deadline = sweep.ts_recv + int(self.p.reversal_s * NS)
        pre = sweep.start_price - sweep.side
        self.episodes[sweep.detection_id()] = _Episode(sweep, reference, extreme, deadline, pre)

    def _check(self, features: FeatureVector, ep: _Episode) -> Signal | None:
        values, ts = features.values, features.ts_recv
        trapped = ep.trapped
        if trapped is None:
            return None
        side = -ep.sweep.side  # fade the sweep
        mid = values["mid"]
        returned = side * (mid - ep.reference)  # > 0: the mid is back inside R
        ofi_z = self.confluence.ofi_z_1s
        cvd = self.confluence.change("cvd", ts, self.p.cvd_window_s)
        trap_need = self.p.trap_share * ep.sweep.volume
        if returned <= 0 or side * ofi_z < -self.p.ofi_z_max or side * cvd < 0 or trapped.volume < trap_need:
            return None
        buf = self.buffer(values)
        bid, ask = int(values["best_bid"]), int(values["best_ask"])
        entry = bid - 1 if side < 0 else ask + 1
        stop = ep.extreme - side * buf
        value = [int(round(v)) for v in (values.get("profile_poc", 0.0), values.get("vwap", 0.0)) if v > 0]
        targets = [ep.pre_price, *value]
        triggers = [(returned, 1.0), (trapped.volume, trap_need), (ep.sweep.strength, 1.0)]
        if ep.absorbed is not None:
            triggers.append((ep.absorbed.strength, 1.0))
        causes = tuple(d for d in (ep.sweep, trapped, ep.absorbed) if d is not None)
        return self.signal(
            features, side=side, entry_type=OrderType.MARKET, entry=entry, stop=stop, targets=targets,
            time_stop_s=self.p.time_stop_s, triggers=triggers, min_rr=self.p.min_rr, causes=causes,
            evidence={"reference": ep.reference, "sweep_extreme": ep.extreme, "sweep_volume": ep.sweep.volume,
                      "trapped_volume": trapped.volume, "ofi_z_1s": ofi_z, "cvd_5s": cvd,
                      "absorbed": 0.0 if ep.absorbed is None else ep.absorbed.volume},
            invalidation=f"new extreme beyond {ep.extreme}; mid back beyond R={ep.reference} for > "
                         f"{2 * self.p.reversal_s:g} s; a second same-direction sweep with ofi_z > 2",
        )
