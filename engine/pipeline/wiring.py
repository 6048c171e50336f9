"""Builds the cores of one run from the configuration, identically for the asyncio pipeline and
for the synchronous reference path (so the two can only differ in scheduling).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.book import OrderBook
from engine.config import Config
from engine.events import InstrumentDef
from engine.execution.exchange import BookWalkExchange, ExecutionStage
from engine.pipeline.lanes import BookStage, FeatureStage
from engine.portfolio import Portfolio
from engine.risk import MaxOrderSize, OrderRate, PositionLimit, RiskManager, UsableBook
from ml.scoring import DisabledScorer, ScoringStage, UntrainedScorer
from strategies.base import Strategy
from strategies.engine import SignalEngine
from strategies.queue_imbalance import QueueImbalanceProbe

StrategyFactory = Callable[[InstrumentDef], list[Strategy]]


def default_strategies(instrument: InstrumentDef) -> list[Strategy]:
    """The strategies every lane runs until the six order-flow setups arrive."""
    return [QueueImbalanceProbe(instrument.instrument_id)]


@dataclass
class Lane:
    instrument: InstrumentDef
    stages: list[tuple[str, object]] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return self.instrument.symbol


def build_lane(instrument: InstrumentDef, config: Config, strategies: StrategyFactory) -> Lane:
    iid = instrument.instrument_id
    interval = config.store.sample_interval_ms * 1_000_000
    windows = tuple(sorted(config.features.depth_ticks))
    book = OrderBook(iid, view_levels=config.book.view_levels, depth_windows=windows)
    features = FeatureStage(iid, windows, config.features.trade_window_s, config.features.spread_window_s,
                            interval, config.store.book_sample_levels)
    return Lane(instrument, [
        ("book", BookStage(book, check_l3=config.book.check_l3)),
        ("features", features),
        ("signals", SignalEngine(iid, strategies(instrument))),
    ])


def build_portfolio_stages(instruments: list[InstrumentDef], config: Config, no_ml: bool) -> list[tuple[str, object]]:
    risk = config.risk
    checks = [UsableBook(), MaxOrderSize(risk.max_order_size), PositionLimit(risk.max_position),
              OrderRate(risk.max_orders_per_second)]
    exchange = BookWalkExchange(config.execution.taker_fee_per_lot)
    return [
        ("scoring", ScoringStage(DisabledScorer() if no_ml else UntrainedScorer())),
        ("risk", RiskManager(checks, order_size=risk.order_size)),
        ("execution", ExecutionStage(exchange, Portfolio(instruments), risk.equity)),
    ]


def instrument_rows(instruments: list[InstrumentDef]) -> list[tuple[str, tuple]]:
    return [
        ("instruments", (d.instrument_id, d.symbol, d.venue, d.tick_size, d.price_scale, d.lot_size,
                         d.multiplier, d.currency, d.profile))
        for d in instruments
    ]
