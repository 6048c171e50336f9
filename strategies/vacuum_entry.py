"""S4 Vacuum Entry (SPEC section 3).

Long on an ask-side vacuum (mirror for short): a vacuum detection (F18) on the ask, the 1 s OFI
z-score > 1 toward the vacuum, no net selling against it (CVD over the last 5 s >= ``min_flow`` = 0
lots: our addition; OFI counts pulled asks as buying), no absorption on the ask within the last
10 s, and the next ask wall
at least 3 ticks away (or none within the book). Entry: IOC at the ask + 1 tick (latency-critical).
Stop: the mid before the vacuum - buf. Target: the next wall - 1 tick, else the far edge of the
void, else 2 stop distances. Time stop 20 s without progress. Invalidation: the ask depth back to
>= 80 % of its baseline before +1 sigma1 of progress; the OFI's sign flips. Trend family (C >= 0.2).
"""

from __future__ import annotations

from engine.config.strategies import CommonParams, VacuumEntryParams
from engine.detectors.absorption import AbsorptionDetection
from engine.detectors.vacuum import VacuumDetection
from engine.events import OrderType
from engine.features.vector import FeatureVector
from strategies.base import Signal
from strategies.common import NS, OrderFlowStrategy
from strategies.confluence import Confluence


class VacuumEntry(OrderFlowStrategy):
    name = "vacuum_entry"

    def __init__(self, instrument_id: int, params: VacuumEntryParams | None = None,
                 confluence: Confluence | None = None, common: CommonParams | None = None) -> None:
        super().__init__(instrument_id, confluence, common)
        self.p = params or VacuumEntryParams()
        self.absorbed: dict[int, int] = {}  # liquidity side -> last absorption (ns)

    def setup(self, features: FeatureVector) -> Signal | None:
        values, ts = features.values, features.ts_recv
        vacuum = None
        for d in features.detections:
            if isinstance(d, AbsorptionDetection):
                self.absorbed[d.side] = d.ts_recv
            elif isinstance(d, VacuumDetection):
                vacuum = d
        if vacuum is None:
            return None
        side = -vacuum.side  # an ask-side vacuum (side -1) is a long
        ofi_z = self.confluence.ofi_z_1s
        if side * ofi_z <= self.p.min_ofi_z:
            return None
        flow = side * self.confluence.change("cvd", ts, self.p.flow_window_s)
        if flow < self.p.min_flow:  # books pulled while the flow trades against the entry
            return None
        if ts - self.absorbed.get(vacuum.side, -10**18) <= int(self.p.absorption_quiet_s * NS):
            return None
        wall_size = values.get("wall_size_ask" if side > 0 else "wall_size_bid", 0.0)
        wall_dist = values.get("wall_dist_ask" if side > 0 else "wall_dist_bid", 0.0)
        if wall_size and wall_dist < self.p.min_wall_ticks:
            return None
        buf = self.buffer(values)
        pre_mid = self.confluence.value_at("mid", vacuum.t_start) or values["mid"]
        entry = int(values["best_ask"] + 1 if side > 0 else values["best_bid"] - 1)
        stop = int(pre_mid) - side * buf if side > 0 else int(pre_mid + 0.5) - side * buf
        risk = side * (entry - stop)
        mid = values["mid"]
        if wall_size:
            targets = [int(round(mid + side * wall_dist)) - side]
        else:
            far = vacuum.price_hi if side > 0 else vacuum.price_lo
            targets = [far] if side * (far - entry) > 0 else [entry + side * int(round(self.p.target_stops * risk))]
        return self.signal(
            features, side=side, entry_type=OrderType.LIMIT, entry=entry, stop=stop, targets=targets,
            time_stop_s=self.p.time_stop_s, causes=(vacuum,),
            triggers=[(vacuum.strength, 1.0), (side * ofi_z, self.p.min_ofi_z),
                      (wall_dist if wall_size else 2.0 * self.p.min_wall_ticks, self.p.min_wall_ticks)],
            evidence={"void": vacuum.void, "depth_before": vacuum.depth_before, "depth_after": vacuum.depth_after,
                      "pre_mid": pre_mid, "ofi_z_1s": ofi_z, "flow": flow,
                      "wall_dist": wall_dist if wall_size else -1.0},
            invalidation="depth on the vacuum side back to >= 80 % of baseline before +1 sigma1 of progress; "
                         "the OFI sign flips; 20 s without progress",
        )
