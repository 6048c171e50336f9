"""S3 Iceberg Defense Entry (SPEC section 3).

Long beside a bid iceberg at P (mirror for short): an iceberg detection (F21) at P with n_r >= 3
refills, the last refill < 10 s ago, the mid within 2 bins of P, and the selling fading (the 1 s
OFI z-score turned >= 0 since the last refill) or the lean > 0. Entry: limit at P + 1 tick when the
spread is at least 2 ticks, else market at the ask. Stop: P - buf, and at once on the iceberg's end
(exhausted, cancelled or traded through: the episode is dropped). Target: the next ask wall - 1 tick
when it lies beyond 1R, else 2.5x the stop distance. Invalidation: any trade below P.
"""

from __future__ import annotations

from engine.config.strategies import CommonParams, IcebergDefenseParams
from engine.detectors.iceberg import IcebergDetection, IcebergEndDetection
from engine.events import OrderType
from engine.features.vector import FeatureVector
from strategies.base import Signal
from strategies.common import NS, OrderFlowStrategy
from strategies.confluence import Confluence


class IcebergDefense(OrderFlowStrategy):
    name = "iceberg_defense"

    def __init__(self, instrument_id: int, params: IcebergDefenseParams | None = None,
                 confluence: Confluence | None = None, common: CommonParams | None = None, bin_ticks: int = 1) -> None:
        super().__init__(instrument_id, confluence, common)
        self.p = params or IcebergDefenseParams()
        self.bin_ticks = bin_ticks
        self.active: dict[tuple[int, int], IcebergDetection] = {}  # (side, price) -> newest detection

    def setup(self, features: FeatureVector) -> Signal | None:
        values, ts = features.values, features.ts_recv
        for d in features.detections:
            if isinstance(d, IcebergDetection):
                self.active[(d.side, d.price_lo)] = d
            elif isinstance(d, IcebergEndDetection):
                self.active.pop((d.side, d.price_lo), None)
        if not self.active:
            return None
        age_limit = int(self.p.refill_age_s * NS)
        for key in [k for k, d in self.active.items() if ts - d.ts_recv > age_limit]:
            del self.active[key]
        for key, d in self.active.items():
            signal = self._check(features, d, values)
            if signal is not None:
                del self.active[key]
                return signal
        return None

    def _check(self, features: FeatureVector, d: IcebergDetection, values: dict[str, float]) -> Signal | None:
        side, price = d.side, d.price_lo
        if d.refills < self.p.min_refills:
            return None
        mid = values["mid"]
        distance = side * (mid - price)
        if not -0.5 <= distance <= self.p.max_distance_bins * self.bin_ticks + 0.5:
            return None
        ofi_z, lean = self.confluence.ofi_z_1s, values["micro_lean"]
        if not (side * ofi_z >= 0 and features.ts_recv > d.ts_recv) and not side * lean > 0:
            return None
        buf = self.buffer(values)
        spread = values["spread"]
        if spread >= 2:
            entry_type, entry = OrderType.LIMIT, price + side
        else:
            entry_type, entry = OrderType.MARKET, int(values["best_ask" if side > 0 else "best_bid"])
        stop = price - side * buf
        risk = side * (entry - stop)
        wall_dist = values.get("wall_dist_ask" if side > 0 else "wall_dist_bid", 0.0)
        wall_size = values.get("wall_size_ask" if side > 0 else "wall_size_bid", 0.0)
        wall = int(round(mid + side * wall_dist)) - side if wall_size else 0
        if wall and side * (wall - entry) >= risk:
            targets = [wall]
        else:
            targets = [entry + side * int(round(self.p.target_stops * risk))]
        return self.signal(
            features, side=side, entry_type=entry_type, entry=entry, stop=stop, targets=targets,
            time_stop_s=self.p.time_stop_s, causes=(d,),
            triggers=[(d.refills, self.p.min_refills), (min(d.score, 10.0), 2.0),
                      (max(side * ofi_z, side * lean), 0.5)],
            evidence={"iceberg_price": price, "refills": d.refills, "peak": d.peak, "executed": d.executed,
                      "score": d.score, "ofi_z_1s": ofi_z, "lean": lean},
            invalidation=f"any trade beyond the iceberg price {price}; the iceberg exhausted or cancelled",
        )
