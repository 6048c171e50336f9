"""A plumbing strategy for demos and tests: trade in the direction of a strong L1 queue imbalance.

Not one of the six order-flow setups, and off by default (``strategies.enabled``). It exists so that the
signal, scoring, risk and execution stages carry real traffic: when ``|QI| >= threshold`` and the
spread is at most ``max_spread`` ticks it signals a market order toward the heavier side, with a
stop ``stop_ticks`` away and a target at ``reward_ratio`` times the stop, at most once per
``cooldown_s`` of event time.
"""

from __future__ import annotations

from engine.config.strategies import QueueImbalanceParams, StrategiesConfig
from engine.events import OrderType
from engine.features.vector import FeatureVector
from strategies.base import Signal, signal_id

NS = 1_000_000_000


class QueueImbalanceProbe:
    name = "queue_imbalance"

    def __init__(
        self,
        instrument_id: int,
        threshold: float = 0.8,
        max_spread: int = 2,
        stop_ticks: int = 4,
        reward_ratio: float = 2.0,
        cooldown_s: float = 30.0,
        time_stop_s: float = 60.0,
    ) -> None:
        self.instrument_id = instrument_id
        self.threshold = threshold
        self.max_spread = max_spread
        self.stop_ticks = stop_ticks
        self.reward_ratio = reward_ratio
        self.cooldown_ns = int(cooldown_s * NS)
        self.time_stop_ns = int(time_stop_s * NS)
        self.next_allowed = 0

    @property
    def p(self) -> QueueImbalanceParams:
        """The parameters in use, as the config block that gives them."""
        return QueueImbalanceParams(threshold=self.threshold, max_spread=self.max_spread, stop_ticks=self.stop_ticks,
                                    reward_ratio=self.reward_ratio, cooldown_s=self.cooldown_ns / NS,
                                    time_stop_s=self.time_stop_ns / NS)

    def retune(self, config: StrategiesConfig) -> None:
        """Take the parameters of a reloaded config (the daemon's SIGHUP); the cooldown in progress stays."""
        q = config.queue_imbalance
        self.threshold, self.max_spread, self.stop_ticks = q.threshold, q.max_spread, q.stop_ticks
        self.reward_ratio = q.reward_ratio
        self.cooldown_ns, self.time_stop_ns = int(q.cooldown_s * NS), int(q.time_stop_s * NS)

    def on_features(self, features: FeatureVector) -> Signal | None:
        qi = features["queue_imbalance"]
        if (
            not features["has_bbo"]
            or abs(qi) < self.threshold
            or features["spread"] > self.max_spread
            or features.ts_recv < self.next_allowed
        ):
            return None
        self.next_allowed = features.ts_recv + self.cooldown_ns
        side = 1 if qi > 0 else -1
        entry = int(features["best_ask"] if side > 0 else features["best_bid"])
        stop = entry - side * self.stop_ticks
        target = entry + side * round(self.stop_ticks * self.reward_ratio)
        return Signal(
            signal_id=signal_id(self.instrument_id, features.seq, self.name),
            instrument_id=self.instrument_id,
            ts_recv=features.ts_recv,
            seq=features.seq,
            strategy=self.name,
            side=side,
            entry_type=OrderType.MARKET,
            entry_price=entry,
            stop=stop,
            targets=(target,),
            time_stop_ns=self.time_stop_ns,
            score=min(1.0, abs(qi)),
            features=features,
            view=features.view,
        )
