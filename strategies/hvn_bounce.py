"""S6 HVN Bounce, the high-volume-node variant (SPEC section 3).

Long at a significant HVN H below the price (mirror: short at an HVN above): the node's extent
[H_lo, H_hi] from the session profile's nodes (F24), its first retest after >= 10 min untested
(the mid entered the node after staying outside it that long), and within ``confirm_s`` of entering
it a confirmation: an absorption on the bid inside the node with AS >= 0.7, or QI >= 0.3 with the
1 s OFI z-score turning positive; not against a trend (t_drift(20 min) > -2.5 once ready). Entry:
market at the ask on confirmation. Stop: H_lo - buf. Target: the next HVN or POC above, at least 2R.
Invalidation: two consecutive TF2 closes below H_lo. The LVN-rejection variant is not implemented.
"""

from __future__ import annotations

from engine.config.strategies import CommonParams, HvnBounceParams
from engine.detectors.absorption import AbsorptionDetection
from engine.events import OrderType
from engine.features.vector import FeatureVector
from strategies.base import Signal
from strategies.common import NS, OrderFlowStrategy
from strategies.confluence import Confluence


class HvnBounce(OrderFlowStrategy):
    name = "hvn_bounce"

    def __init__(self, instrument_id: int, params: HvnBounceParams | None = None,
                 confluence: Confluence | None = None, common: CommonParams | None = None) -> None:
        super().__init__(instrument_id, confluence, common)
        self.p = params or HvnBounceParams()
        self.nodes: tuple = ()
        self.outside_since: dict[float, int] = {}  # node centre -> when the mid last left it
        self.entered: dict[float, tuple[int, int]] = {}  # node centre -> (entered at, side) for a first retest
        self.absorptions: list[AbsorptionDetection] = []
        self.last_mid: float | None = None

    def setup(self, features: FeatureVector) -> Signal | None:
        values, ts = features.values, features.ts_recv
        profile = features.structures.get("profile")
        if profile is not None and profile.nodes is not self.nodes:
            self.nodes = tuple(n for n in profile.nodes if n.kind == "hvn")
        for d in features.detections:
            if isinstance(d, AbsorptionDetection):
                self.absorptions.append(d)
        horizon = ts - int(self.p.confirm_s * NS)
        if self.absorptions and self.absorptions[0].ts_recv < horizon:
            self.absorptions = [a for a in self.absorptions if a.ts_recv >= horizon]
        mid = values["mid"]
        signal = self._scan(features, mid, ts)
        self.last_mid = mid
        return signal

    def _scan(self, features: FeatureVector, mid: float, ts: int) -> Signal | None:
        untested = int(self.p.untested_s * NS)
        for node in self.nodes:
            key = node.price
            inside = node.lo <= mid <= node.hi
            if not inside:
                self.entered.pop(key, None)
                self.outside_since.setdefault(key, ts)
                continue
            since = self.outside_since.pop(key, None)
            if since is not None and ts - since >= untested:
                before = self.last_mid if self.last_mid is not None else mid
                self.entered[key] = (ts, 1 if before > node.hi else -1)
            entry = self.entered.get(key)
            if entry is not None and ts - entry[0] <= int(self.p.confirm_s * NS):
                signal = self._check(features, node, entry[1])
                if signal is not None:
                    del self.entered[key]
                    return signal
        return None

    def _check(self, features: FeatureVector, node, side: int) -> Signal | None:
        values = features.values
        if values.get("trend_ready_20m") and side * values.get("t_drift_20m", 0.0) <= -self.p.max_trend_t:
            return None
        absorbed = [a for a in self.absorptions if a.side == side and node.lo <= a.price_lo <= node.hi
                    and a.strength >= self.p.min_absorption]
        qi, ofi_z = values["queue_imbalance"], self.confluence.ofi_z_1s
        turning = side * ofi_z > 0 and side * ofi_z > side * self.confluence.prev_ofi_z_1s
        if not absorbed and not (side * qi >= self.p.min_qi and turning):
            return None
        buf = self.buffer(values)
        entry = int(values["best_ask"] if side > 0 else values["best_bid"])
        stop = (node.lo if side > 0 else node.hi) - side * buf
        others = [n.price for n in self.nodes if side * (n.price - entry) > 0]
        poc = values.get("profile_poc", 0.0)
        if poc and side * (poc - entry) > 0:
            others.append(poc)
        targets = [int(round(min(others) if side > 0 else max(others)))] if others else []
        return self.signal(
            features, side=side, entry_type=OrderType.MARKET, entry=entry, stop=stop, targets=targets,
            time_stop_s=self.p.time_stop_s, min_rr=self.p.min_rr, causes=tuple(absorbed[-1:]),
            triggers=[(node.z, 3.0), (max([a.strength for a in absorbed], default=0.0), 1.0) if absorbed
                      else (side * qi, self.p.min_qi)],
            evidence={"node": node.price, "node_lo": node.lo, "node_hi": node.hi, "node_z": node.z,
                      "qi": qi, "ofi_z_1s": ofi_z, "absorbed": float(bool(absorbed))},
            invalidation=f"two consecutive TF2 closes beyond the node edge {node.lo if side > 0 else node.hi}",
        )
