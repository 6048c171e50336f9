"""A user strategy written outside Chimera's package: buy a break of the session high on strong flow.

Enabled with ``--set 'strategies.enabled=["sweep_reversal", "mydesk.breakout:Breakout"]'`` when run
from ``examples/mydesk`` (or with that folder on ``PYTHONPATH``). It only uses the public pieces: the
feature vector's named values, its ``frames`` bits, and the ``Signal`` record.
"""

from __future__ import annotations

from engine.config import Config
from engine.events import InstrumentDef, OrderType
from engine.features.bars import TF1
from engine.features.vector import FeatureVector
from strategies.base import Signal, signal_id

NS = 1_000_000_000


class Breakout:
    name = "breakout"

    def __init__(self, instrument: InstrumentDef, config: Config) -> None:
        self.instrument_id = instrument.instrument_id
        self.cooldown_ns = 60 * NS
        self.next_allowed = 0
        self.high = 0.0

    def on_features(self, features: FeatureVector) -> Signal | None:
        values = features.values
        if not features.frames & TF1 or not values["has_bbo"]:
            return None
        previous, self.high = self.high, values["session_high"]
        broke = previous > 0 and values["mid"] > previous
        if not broke or values["trade_imbalance_5s"] < 0.3 or features.ts_recv < self.next_allowed:
            return None
        self.next_allowed = features.ts_recv + self.cooldown_ns
        entry = int(values["best_ask"])
        stop = int(previous) - 2
        risk = max(1, entry - stop)
        return Signal(
            signal_id=signal_id(self.instrument_id, features.seq, self.name), instrument_id=self.instrument_id,
            ts_recv=features.ts_recv, seq=features.seq, strategy=self.name, side=1, entry_type=OrderType.MARKET,
            entry_price=entry, stop=stop, targets=(entry + 2 * risk,), time_stop_ns=120 * NS,
            score=min(1.0, values["trade_imbalance_5s"]), confluence=1.0,
            evidence={"previous_high": previous}, invalidation=f"mid back below {previous:g}",
            features=features, view=features.view,
        )
