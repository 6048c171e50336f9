"""S4 Vacuum Entry (SPEC section 3).

Long on an ask-side vacuum (mirror for short). Trigger, at the vacuum detection (F18) on the ask:
the 1 s OFI z-score > 1 toward the vacuum, no absorption on the ask within the last 10 s, and the
trend-family confluence C >= 0.2 (read at the vacuum). Entry: IOC at the ask + 1 tick. Stop: the mid
before the vacuum - buf. Target: the next wall - 1 tick, else the far edge of the void, else 2 stop
distances. Time stop 20 s without progress. Invalidation: the ask depth back to >= 80 % of its
baseline before +1 sigma1 of progress; the OFI's sign flips.

Deviation (measured, our design): SPEC's invalidation is checked *before* the entry. A vacuum arms
the setup; the signal comes at the first sample within ``confirm_s`` (10 s) where the vacuum side's
depth ``D_N`` is back to ``refill_share`` (0.8, SPEC's figure) of the detector's median depth if the
mid has made ``progress`` = max(``progress_ticks``, ``progress_sigma1`` sigma1) ticks beyond the mid
before the vacuum at a sample since the vacuum, that one included (SPEC's order: the depth back
*before* that progress invalidates), the aggressive flow since the vacuum began is not against the entry (CVD
change >= ``min_flow`` = 0 lots: our addition), and the next wall on that side is still >= 3 ticks
away (``confirm_s`` = 15 s). A refill without that progress,
an absorption on the vacuum side, a spoof detection (the spoofing detector) on that side inside the
void, or no refill within ``confirm_s`` drops it. Why: while the asks are pulled the mid is made of
an empty side, so progress cannot be read until they return; at the vacuum detection the real and
the fake vacuum look alike. On the simulator (seeds 1-10), in the first 2 s after the pull the buy
volume (vacuum: 2-107 lots; spoof_pull, asks pulled with the latent flat: 2-46) and the bid's rise
(vacuum +1..+13 ticks; spoof_pull -2..+21, buyers sweeping the empty book) overlap; 5 s later, with
the asks back, the mid holds +8..+20 ticks on every vacuum seed and -2..+2 on every spoof_pull seed.
The cost is a later entry (5-13 s after the pull, once the asks are back). Measured on seeds 1-20:
vacuum fires on 5 (4, 6, 7, 9, 20; 3 of 1-10 before, entering at the pull), spoof_pull's planted pull
gives a long on 1 (seed 19: the asks return 3.3 s after the pull at the swept-up price; 1 of 1-10
before, seed 9). With ``refill_share`` 0.5 the vacuum fired on 5 of seeds 1-10 and spoof_pull on 1.

Until issue 15's done-when run the progress had to hold at the refill sample itself, stricter than
SPEC's order. On seed 7 of that run (NVDA) the mid was +14.0 ticks at the TF1 close 2 s before the asks
were back (1 sigma1 = 12.3) and +12.0 at the refill: SPEC does not invalidate that, and S4 now goes long
there. Measured with and without the change (seeds 1-20): vacuum gives the same longs (4, 6, 7, 9, 20),
spoof_pull the same (15 and 19, on the unchanged code too).
"""

from __future__ import annotations

from engine.config.strategies import CommonParams, VacuumEntryParams
from engine.detectors.absorption import AbsorptionDetection
from engine.detectors.spoofing import SpoofDetection
from engine.detectors.vacuum import VacuumDetection
from engine.events import OrderType
from engine.features.vector import FeatureVector
from strategies.base import Signal
from strategies.common import NS, OrderFlowStrategy
from strategies.confluence import Confluence


class _Armed:
    """A vacuum whose trigger held, waiting for its side's depth to come back."""

    __slots__ = ("vacuum", "side", "pre_mid", "pre_cvd", "ofi_z", "confluence", "expires", "reached")

    def __init__(self, vacuum: VacuumDetection, side: int, pre_mid: float, pre_cvd: float, ofi_z: float,
                 confluence: tuple[float, bool], expires: int) -> None:
        self.vacuum, self.side, self.pre_mid, self.pre_cvd = vacuum, side, pre_mid, pre_cvd
        self.ofi_z, self.confluence, self.expires = ofi_z, confluence, expires
        self.reached = float("-inf")  # the most progress the mid made while the setup waited (ticks)


class VacuumEntry(OrderFlowStrategy):
    name = "vacuum_entry"

    def __init__(self, instrument_id: int, params: VacuumEntryParams | None = None,
                 confluence: Confluence | None = None, common: CommonParams | None = None) -> None:
        super().__init__(instrument_id, confluence, common)
        self.p = params or VacuumEntryParams()
        self.absorbed: dict[int, int] = {}  # liquidity side -> last absorption (ns)
        self.armed: _Armed | None = None

    def setup(self, features: FeatureVector) -> Signal | None:
        ts = features.ts_recv
        vacuum = None
        for d in features.detections:
            if isinstance(d, AbsorptionDetection):
                self.absorbed[d.side] = d.ts_recv
            elif isinstance(d, VacuumDetection):
                vacuum = d
            elif isinstance(d, SpoofDetection) and self.armed is not None:
                v = self.armed.vacuum
                if d.side == v.side and d.price_hi >= v.price_lo and d.price_lo <= v.price_hi:
                    self.armed = None  # the depth that vanished was a spoof's
        armed = self.armed
        if armed is not None and (ts > armed.expires or self._absorbed(armed.vacuum.side, ts)):
            self.armed = armed = None
        if vacuum is not None:
            self.arm(vacuum, ts)
            return None
        if armed is None:
            return None
        return self.confirm(features, armed)

    def _absorbed(self, side: int, ts: int) -> bool:
        return ts - self.absorbed.get(side, -10**18) <= int(self.p.absorption_quiet_s * NS)

    def arm(self, vacuum: VacuumDetection, ts: int) -> None:
        """SPEC's trigger at the vacuum: OFI toward it, no absorption on its side, the trend confluence."""
        side = -vacuum.side  # an ask-side vacuum (side -1) is a long
        ofi_z = self.confluence.ofi_z_1s
        if side * ofi_z <= self.p.min_ofi_z or self._absorbed(vacuum.side, ts):
            return
        pre_mid = self.confluence.value_at("mid", vacuum.t_start)
        pre_cvd = self.confluence.value_at("cvd", vacuum.t_start)
        confluence = self.confluence.confluence(self.name, side)
        if pre_mid is None or pre_cvd is None or not confluence[1]:
            return
        self.armed = _Armed(vacuum, side, pre_mid, pre_cvd, ofi_z, confluence, ts + int(self.p.confirm_s * NS))

    def confirm(self, features: FeatureVector, armed: _Armed) -> Signal | None:
        """The signal once the vacuum side's depth is back, if the mid made its progress before that."""
        values = features.values
        side, vacuum = armed.side, armed.vacuum
        depth = values.get("void_depth_ask" if side > 0 else "void_depth_bid", 0.0)
        mid = values["mid"]
        progress = side * (mid - armed.pre_mid)
        armed.reached = max(armed.reached, progress)
        if depth < self.p.refill_share * vacuum.median_depth:
            return None
        self.armed = None
        need = max(float(self.p.progress_ticks), self.p.progress_sigma1 * values.get("sigma1", 0.0))
        if armed.reached < need:
            return None  # SPEC's invalidation: the depth came back before the progress
        flow = side * (values["cvd"] - armed.pre_cvd)
        if flow < self.p.min_flow:
            return None  # the move was not bought (sold, for a short)
        wall_size = values.get("wall_size_ask" if side > 0 else "wall_size_bid", 0.0)
        wall_dist = values.get("wall_dist_ask" if side > 0 else "wall_dist_bid", 0.0)
        if wall_size and wall_dist < self.p.min_wall_ticks:
            return None
        buf = self.buffer(values)
        pre_mid = armed.pre_mid
        entry = int(values["best_ask"] + 1 if side > 0 else values["best_bid"] - 1)
        stop = int(pre_mid) - side * buf if side > 0 else int(pre_mid + 0.5) - side * buf
        risk = side * (entry - stop)
        if wall_size:
            targets = [int(round(mid + side * wall_dist)) - side]
        else:
            far = vacuum.price_hi if side > 0 else vacuum.price_lo
            targets = [far] if side * (far - entry) > 0 else [entry + side * int(round(self.p.target_stops * risk))]
        return self.signal(
            features, side=side, entry_type=OrderType.LIMIT, entry=entry, stop=stop, targets=targets,
            time_stop_s=self.p.time_stop_s, causes=(vacuum,), confluence=armed.confluence,
            triggers=[(vacuum.strength, 1.0), (side * armed.ofi_z, self.p.min_ofi_z), (progress, need),
                      (wall_dist if wall_size else 2.0 * self.p.min_wall_ticks, self.p.min_wall_ticks)],
            evidence={"void": vacuum.void, "depth_before": vacuum.depth_before, "depth_after": vacuum.depth_after,
                      "depth_now": depth, "median_depth": vacuum.median_depth, "pre_mid": pre_mid,
                      "progress": progress, "progress_reached": armed.reached, "ofi_z_1s": armed.ofi_z, "flow": flow,
                      "delay_s": (features.ts_recv - vacuum.ts_recv) / NS,
                      "wall_dist": wall_dist if wall_size else -1.0},
            invalidation="the OFI sign flips; 20 s without progress (the depth's return before the progress "
                         "was checked before the entry)",
        )
