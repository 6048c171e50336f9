"""What the six order-flow strategies share (SPEC section 3, common rules; section 4.4-4.5).

``OrderFlowStrategy`` holds the instrument, the lane's ``Confluence`` and the common parameters,
and turns a setup into a ``Signal``: the buffer ``buf = max(2 ticks, 0.5 sigma1, 1 spread)``, the
raw score ``S_raw`` = mean over the triggers of ``min(1, margin / threshold)`` plus the structural
bonus ``0.05 min(K, 4)`` (clipped to 1), the family's confluence C and its threshold, the regime gate,
the minimum reward to risk, and a cooldown. ``K`` counts the distinct level types within ``buf`` of
the entry: HVN/POC, VAH/VAL, session high/low, prior-day high/low, iceberg price, wall, swing.
"""

from __future__ import annotations

import math

from engine.config.strategies import CommonParams, StrategiesConfig
from engine.detectors.iceberg import IcebergDetection
from engine.events import Detection
from engine.features.vector import FeatureVector
from strategies.base import Signal, signal_id
from strategies.confluence import POSTERIORS, REGIMES, Confluence, model_regime

NS = 1_000_000_000


def ratio(margin: float, threshold: float) -> float:
    """One trigger's share of S_raw: ``min(1, margin / threshold)``, 1 for a zero threshold, >= 0."""
    if threshold <= 0:
        return 1.0 if margin >= 0 else 0.0
    return max(0.0, min(1.0, margin / threshold))


class OrderFlowStrategy:
    """Base of the built-in strategies; subclasses implement ``setup(features)``."""

    name = "order_flow"

    def __init__(self, instrument_id: int, confluence: Confluence | None = None,
                 common: CommonParams | None = None) -> None:
        self.instrument_id = instrument_id
        self.confluence = confluence or Confluence()
        self.common = common or CommonParams()
        self.cooldown_ns = int(self.common.cooldown_s * NS)
        self.next_allowed = 0
        self.icebergs: dict[int, int] = {}  # price -> last seen (ns): K's iceberg level type

    def on_features(self, features: FeatureVector) -> Signal | None:
        self.confluence.observe(features)
        for detection in features.detections:
            if isinstance(detection, IcebergDetection):
                self.icebergs[detection.price_lo] = detection.ts_recv
        if not features.values.get("has_bbo"):
            return None
        return self.setup(features)

    def setup(self, features: FeatureVector) -> Signal | None:
        raise NotImplementedError

    def retune(self, config: StrategiesConfig) -> None:
        """Take the parameters of a reloaded config (the daemon's SIGHUP): this strategy's own block and
        the common one. What the strategy has seen (open episodes, levels, the cooldown) stays."""
        self.p = getattr(config, self.name)
        self.common = config.common
        self.cooldown_ns = int(self.common.cooldown_s * NS)

    # ---- helpers for subclasses ------------------------------------------------------------------
    def buffer(self, values: dict[str, float]) -> int:
        c = self.common
        return max(c.buffer_min_ticks, math.ceil(c.buffer_sigma1 * values.get("sigma1", 0.0)),
                   math.ceil(c.buffer_spreads * values.get("spread", 1.0)))

    def structural(self, values: dict[str, float], price: int, buf: int, ts: int) -> int:
        """K: distinct level types within ``buf`` ticks of ``price``."""
        def near(*levels: float) -> bool:
            return any(level > 0 and abs(level - price) <= buf for level in levels)

        mid = values["mid"]
        kinds = (
            near(values.get("profile_poc", 0.0), values.get("profile_hvn_above", 0.0),
                 values.get("profile_hvn_below", 0.0)),
            near(values.get("profile_vah", 0.0), values.get("profile_val", 0.0)),
            near(values.get("session_high", 0.0), values.get("session_low", 0.0)),
            near(values.get("prior_day_high", 0.0), values.get("prior_day_low", 0.0)),
            any(abs(p - price) <= buf and ts - t < 600 * NS for p, t in self.icebergs.items()),
            near(mid + values.get("wall_dist_ask", 0.0) if values.get("wall_size_ask") else 0.0,
                 mid - values.get("wall_dist_bid", 0.0) if values.get("wall_size_bid") else 0.0),
            near(*(values.get(f"swing_high_{i}", 0.0) for i in range(1, 6)),
                 *(values.get(f"swing_low_{i}", 0.0) for i in range(1, 6))),
        )
        return sum(kinds)

    def signal(self, features: FeatureVector, *, side: int, entry_type: int, entry: int, stop: int,
               targets: list[int], time_stop_s: float, triggers: list[tuple[float, float]],
               min_rr: float = 0.0, causes: tuple[Detection, ...] = (), evidence: dict[str, float] | None = None,
               invalidation: str = "", confluence: tuple[float, bool] | None = None) -> Signal | None:
        """The signal of a setup whose triggers held, or None (cooldown, confluence, gate, reward to risk).

        ``confluence`` is ``(C, passes)`` when the strategy read it earlier than the signal (S4 reads it
        at the vacuum it waited on); by default it is read now.
        """
        ts = features.ts_recv
        if ts < self.next_allowed:
            return None
        risk = side * (entry - stop)
        if risk <= 0:
            return None
        targets = [t for t in targets if side * (t - entry) > 0] or [entry + side * max(1, math.ceil(2 * risk))]
        targets.sort(key=lambda t: side * t)
        evidence = dict(evidence or {})
        rr = side * (targets[-1] - entry) / risk
        if min_rr > 0 and rr < min_rr:
            if not self.common.extend_target:
                return None
            triggers = [*triggers, (rr, min_rr)]
            targets[-1] = entry + side * math.ceil(min_rr * risk)
            evidence["rr_extended_from"] = round(rr, 3)
        gate = self.confluence.gate(self.name, side)
        if gate <= 0:
            return None
        c, passes = confluence if confluence is not None else self.confluence.confluence(self.name, side)
        if not passes:
            return None
        values = features.values
        buf = self.buffer(values)
        k = self.structural(values, entry, buf, ts)
        raw = sum(ratio(m, t) for m, t in triggers) / len(triggers) if triggers else 1.0
        score = min(1.0, raw + 0.05 * min(k, 4))
        if gate != 1.0:
            evidence["size_factor"] = gate
        if values.get("regime_ml_ready"):  # the regime model's view, recorded live or in shadow mode
            evidence["regime_ml"] = float(REGIMES.index(model_regime(values)))
            evidence["regime_ml_p"] = max(values[name] for name in POSTERIORS)
        self.next_allowed = ts + self.cooldown_ns
        return Signal(
            signal_id=signal_id(self.instrument_id, features.seq, self.name), instrument_id=self.instrument_id,
            ts_recv=ts, seq=features.seq, strategy=self.name, side=side, entry_type=entry_type,
            entry_price=entry, stop=stop, targets=tuple(targets), time_stop_ns=int(time_stop_s * NS),
            score=score, confluence=c, structural=k, regime=self.confluence.regime,
            invalidation=invalidation, detection_ids=tuple(d.detection_id() for d in causes),
            evidence={key: float(v) for key, v in evidence.items()}, features=features, view=features.view,
        )
