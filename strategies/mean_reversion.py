"""S5 Mean Reversion Fade (SPEC section 3).

Short (mirror for long), evaluated at TF1 closes: the regime a range (RANGE_LOW or RANGE_HIGH; when
the regime is not yet known, not trending: |t_drift(5 min)| < 2.5 once ready); the mid stretched:
``dev_sigma >= +2.0`` (F9) or mid > VAH + 2 ticks; exhaustion: log volume acceleration < 0.25 (F12; SPEC: 0)
and the 10 s OFI z <= 0.5; no vacuum on the ask within 10 s; and the first downtick (the mid below
the previous close). Entry: market at the bid. Stop: the extreme of the last minute +
max(buf, sigma_VWAP) ticks. Targets: T1 VAH or POC, T2 VWAP. Time stop 10 min. Invalidation: the
regime flips to TREND/BREAKOUT; the OFI z > 2 against.
"""

from __future__ import annotations

import math

from engine.config.strategies import CommonParams, MeanReversionParams
from engine.detectors.vacuum import VacuumDetection
from engine.events import OrderType
from engine.features.bars import TF1
from engine.features.vector import FeatureVector
from strategies.base import Signal
from strategies.common import NS, OrderFlowStrategy
from strategies.confluence import Confluence


class MeanReversion(OrderFlowStrategy):
    name = "mean_reversion"

    def __init__(self, instrument_id: int, params: MeanReversionParams | None = None,
                 confluence: Confluence | None = None, common: CommonParams | None = None) -> None:
        super().__init__(instrument_id, confluence, common)
        self.p = params or MeanReversionParams()
        self.vacuums: dict[int, int] = {}
        self.prev_mid: float | None = None

    def setup(self, features: FeatureVector) -> Signal | None:
        values, ts = features.values, features.ts_recv
        for d in features.detections:
            if isinstance(d, VacuumDetection):
                self.vacuums[d.side] = d.ts_recv
        if not features.frames & TF1:
            return None
        prev, mid = self.prev_mid, values["mid"]
        self.prev_mid = mid
        if prev is None or not values.get("vwap"):
            return None
        regime = self.confluence.regime
        if regime and not regime.startswith("RANGE"):
            return None
        if not regime and values.get("trend_ready_5m") and abs(values.get("t_drift_5m", 0.0)) >= 2.5:
            return None
        dev = values.get("vwap_dev_sigma", 0.0)
        vah, val = values.get("profile_vah", 0.0), values.get("profile_val", 0.0)
        side = -1 if dev > 0 else 1  # fade the stretch
        beyond = (mid - vah) if side < 0 else (val - mid)
        stretched = abs(dev) >= self.p.min_dev_sigma or (
            values.get("profile_ready") and beyond > self.p.value_area_ticks)
        if not stretched:
            return None
        ofi_z_10s = values["ofi_z_10s"] if values.get("ofi_z_ready") else self.confluence.d("10s") * 2.0
        if values.get("log_volume_accel", 0.0) >= self.p.max_log_va or -side * ofi_z_10s > self.p.max_ofi_z_10s:
            return None
        if ts - self.vacuums.get(side, -10**18) <= int(self.p.vacuum_quiet_s * NS):
            return None
        if side * (mid - prev) <= 0:
            return None  # wait for the first tick back toward value
        extreme = self.confluence.extreme(-side, ts, self.p.extreme_window_s) or mid
        buf = max(self.buffer(values), math.ceil(values.get("vwap_sigma", 0.0)))
        entry = int(values["best_bid"] if side < 0 else values["best_ask"])
        stop = int(math.ceil(extreme) if side < 0 else math.floor(extreme)) - side * buf
        vwap = int(round(values["vwap"]))
        near = [int(round(v)) for v in ((vah if side < 0 else val), values.get("profile_poc", 0.0))
                if v > 0 and side * (v - entry) > 0]
        targets = [*near[:1], vwap]
        return self.signal(
            features, side=side, entry_type=OrderType.MARKET, entry=entry, stop=stop, targets=targets,
            time_stop_s=self.p.time_stop_s,
            triggers=[(abs(dev), self.p.min_dev_sigma), (-values.get("log_volume_accel", 0.0), 0.5),
                      (self.p.max_ofi_z_10s + side * ofi_z_10s, self.p.max_ofi_z_10s + 1.0)],
            evidence={"dev_sigma": dev, "vwap": values["vwap"], "vwap_sigma": values.get("vwap_sigma", 0.0),
                      "log_va": values.get("log_volume_accel", 0.0), "ofi_z_10s": ofi_z_10s, "extreme": extreme},
            invalidation="regime flips to TREND or BREAKOUT; ofi_z > 2 against the fade",
        )
