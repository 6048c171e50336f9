"""Builds the cores of one run from the configuration, identically for the asyncio pipeline and
for the synchronous reference path (so the two can only differ in scheduling).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from engine.book import OrderBook
from engine.config import Config
from engine.detectors.absorption import AbsorptionDetector
from engine.detectors.base import DetectorContext, profile_bin
from engine.detectors.iceberg import IcebergDetector
from engine.detectors.spoofing import SpoofDetector
from engine.detectors.sweep import SweepDetector
from engine.detectors.trapped import TrappedDetector
from engine.detectors.vacuum import VacuumDetector, VoidAccumulator
from engine.detectors.walls import WallAccumulator, WallDetector
from engine.detectors.withdrawal import WithdrawalDetector
from engine.errors import ConfigError
from engine.events import InstrumentDef, Liquidity
from engine.execution.models import (
    BpsFees,
    ConstantLatency,
    FeeModel,
    LatencyModel,
    LognormalLatency,
    PerLotFees,
    ProbQueueModel,
    QueueModel,
    RiskAverseQueueModel,
)
from engine.execution.simulated import SimulatedExchange
from engine.execution.simulator_broker import SimulatorBroker
from engine.execution.stage import ExecutionStage
from engine.features.activity import TradeIntensity, VolumeAcceleration
from engine.features.engine import FeatureEngine
from engine.features.flow import TradeFlow
from engine.features.impact import PriceImpact
from engine.features.liquidity import BookSlope, LiquidityFlow
from engine.features.listener import Accumulator, Listener
from engine.features.microprice import load_table
from engine.features.ofi import OrderFlowImbalance
from engine.features.ofi_bias import OfiBias
from engine.features.profile import VolumeProfile
from engine.features.sampled import SampleFeature
from engine.features.shape import BookShape, SpreadTime
from engine.features.structure import SwingStructure
from engine.features.trend import TrendStrength
from engine.features.volatility import RealisedVolatility
from engine.features.vpin import Vpin
from engine.pipeline.lanes import FeatureStage, MarketStage
from engine.pipeline.models import RunModels
from engine.portfolio import Portfolio
from engine.risk import (
    CorrelationCap,
    DrawdownGuard,
    MaxOrderSize,
    OrderRate,
    PositionLimit,
    PriceBand,
    RiskManager,
    Sizing,
    StopDistance,
    StopRule,
    UsableBook,
)
from ml.scoring import DisabledScorer, ScoringStage, UntrainedScorer
from strategies.base import Strategy
from strategies.engine import SignalEngine
from strategies.registry import strategy_factory

StrategyFactory = Callable[[InstrumentDef], list[Strategy]]


def lane_strategies(config: Config, factory: StrategyFactory | None) -> StrategyFactory:
    """The given factory, or the one ``[strategies]`` describes (user strategies imported and checked once)."""
    return factory if factory is not None else strategy_factory(config)


@dataclass
class Lane:
    instrument: InstrumentDef
    stages: list[tuple[str, object]] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return self.instrument.symbol


def build_lane(instrument: InstrumentDef, config: Config, strategies: StrategyFactory,
               models: RunModels | None = None) -> Lane:
    """market (book, accumulators, detectors) -> features (per sample) -> signals, for one instrument."""
    iid = instrument.instrument_id
    interval = config.store.sample_interval_ms * 1_000_000
    windows = tuple(sorted(config.features.depth_ticks))
    book = OrderBook(iid, view_levels=config.book.view_levels, depth_windows=windows)
    market = MarketStage(instrument, book, interval, config.store.book_sample_levels, config.book.check_l3)
    context = DetectorContext(instrument, book, market.detected,
                              profile_bin(instrument, config.detectors.bin_ticks))
    for listener in market_accumulators(context, config) + market_detectors(context, config):
        market.add(listener)
    flow_names = tuple(name for a in market.accumulators for name in a.values(0))
    engine = FeatureEngine(iid, sample_features(config, models), flow_names)
    return Lane(instrument, [
        ("market", market),
        ("features", FeatureStage(engine, interval)),
        ("signals", SignalEngine(iid, strategies(instrument))),
    ])


def market_accumulators(context: DetectorContext, config: Config) -> list[Accumulator]:
    """The per-event accumulators of one instrument's market stage."""
    features = config.features
    book = context.book
    return [
        TradeFlow(tuple(features.trade_window_s)),
        OrderFlowImbalance(book),
        SpreadTime(book, features.spread_window_s),
        LiquidityFlow(book, features.liquidity_flow),
        Vpin(features.vpin),
        VolumeProfile(book, features.profile),
        SwingStructure(book, features.structure),
    ]


def market_detectors(context: DetectorContext, config: Config) -> list[Listener]:
    """The enabled detectors of one instrument's market stage (``[detectors] enabled``), in a fixed order;
    the vacuum and wall modules' per-sample values come with them (the wall detector is its own
    accumulator; without it, its values still come from the wall accumulator)."""
    d = config.detectors
    enabled = set(d.enabled)
    factories: list[tuple[str, Callable[[], Listener]]] = [
        ("iceberg", lambda: IcebergDetector(context, d.iceberg)),
        ("absorption", lambda: AbsorptionDetector(context, d.absorption)),
        ("sweep", lambda: SweepDetector(context, d.sweep)),
        ("trapped", lambda: TrappedDetector(context, d.trapped, d.sweep)),
        ("vacuum", lambda: VacuumDetector(context, d.vacuum)),
        ("spoofing", lambda: SpoofDetector(context, d.spoofing)),
        ("withdrawal", lambda: WithdrawalDetector(context, d.withdrawal)),
    ]
    listeners = [make() for name, make in factories if name in enabled]
    listeners.append(VoidAccumulator(context, d.vacuum))
    listeners.append(WallDetector(context, d.walls) if "walls" in enabled else WallAccumulator(context, d.walls))
    return listeners


def sample_features(config: Config, models: RunModels | None = None) -> list[SampleFeature]:
    """The per-sample features of one instrument's feature stage (SPEC section 2, the bar features);
    F26, the regime model's posteriors, only when a regime model is loaded (``models``)."""
    f = config.features
    regime = models.regime if models is not None else None
    extra: list[SampleFeature] = []
    if regime is not None:
        windows = sorted(f.depth_ticks)
        depth_index = windows.index(10) if 10 in windows else len(windows) - 1  # D_10, as the model's inputs
        from ml.regime_feature import RegimeFeature  # scikit-learn loads only with a regime model

        extra.append(RegimeFeature(regime.model, config.ml.regime_history_bars, regime.mode == "live", depth_index))
    return [
        BookShape(tuple(sorted(f.depth_ticks)),
                  micro=load_table(f.microprice_table) if f.microprice_table else None),
        OfiBias(f.ofi_bias),
        RealisedVolatility(f.volatility),
        TradeIntensity(f.trade_intensity),
        VolumeAcceleration(f.volume_acceleration),
        TrendStrength(f.trend),
        PriceImpact(f.impact),
        BookSlope(f.book_slope),
        *extra,
    ]


def build_portfolio_stages(instruments: list[InstrumentDef], config: Config, no_ml: bool,
                           feed: object = None, models: RunModels | None = None) -> list[tuple[str, object]]:
    """scoring -> risk (sizing, pre-trade checks) -> execution (guards, exchange, portfolio, exits).

    ``feed``: the run's feed; with ``[execution] venue = "simulator"`` it must be a gated simulator,
    whose matching engine then takes our orders.
    """
    risk = config.risk
    checks = [UsableBook(), MaxOrderSize(risk.max_order_size), PositionLimit(risk.max_position),
              OrderRate(risk.max_orders_per_second), PriceBand(risk.price_band_sigma),
              StopDistance(risk.stop_max_sigma)]
    portfolio = Portfolio(instruments, risk.equity)
    sizing = None
    if risk.sizing == "risk":
        sizing = Sizing(risk.equity, portfolio.tick_value, risk.r_trade, risk.dollar_vol, risk.holding_s,
                        risk.liquidity_share, risk.max_order_size, risk.p_be, risk.p_hi)
    decision_ns = int(risk.decision_latency_us * 1000)
    online = models.online_learner(config) if models is not None and not no_ml else None
    execution = build_execution(instruments, config, portfolio, decision_ns, feed)
    if online is not None:  # [ml.online]: learns from each closed trade, serves the scoring stage
        execution.trade_listener = online
    return [
        ("scoring", ScoringStage(_scorer(no_ml, models, online), _targets(no_ml, models, config))),
        ("risk", RiskManager(checks, order_size=risk.order_size, decision_latency_ns=decision_ns, sizing=sizing)),
        ("execution", execution),
    ]


def _scorer(no_ml: bool, models: RunModels | None, online=None):
    """``--no-ml``: the raw score; a loaded signal classifier (through the online layer when there is one);
    else the untrained rule (SPEC 4.8)."""
    if no_ml:
        return DisabledScorer()
    classifier = models.scorer(online) if models is not None else None
    return classifier if classifier is not None else UntrainedScorer()


def _targets(no_ml: bool, models: RunModels | None, config: Config):
    """A loaded price-target model's predictor (``[ml] target_min_r``/``target_max_r``), else None."""
    if no_ml or models is None:
        return None
    return models.targets(config.ml.target_min_r, config.ml.target_max_r)


def build_execution(instruments: list[InstrumentDef], config: Config, portfolio: Portfolio,
                    decision_ns: int, feed: object = None) -> ExecutionStage:
    risk, ex = config.risk, config.execution
    guard = DrawdownGuard(risk.equity, risk.drawdown_soft, risk.drawdown_hard, risk.daily_loss,
                          risk.max_consecutive_losses, risk.strategy_drawdown, risk.p_be)
    correlation = CorrelationCap([d.instrument_id for d in instruments], int(risk.correlation_sample_s * 1e9),
                                 risk.correlation_half_life_s, risk.correlation_shrink, risk.portfolio_vol_cap,
                                 risk.single_exposure_cap, risk.cluster_rho, risk.cluster_factor)
    broker: SimulatedExchange | SimulatorBroker
    if ex.venue == "simulator":
        if not getattr(feed, "gated", False):
            raise ConfigError("[execution] venue = \"simulator\" needs the simulator feed, run gated "
                              "(chimera run on the simulator feed builds it so)")
        broker = SimulatorBroker(feed, instruments, fee_models(instruments, config, portfolio), latency_model(config))
    else:
        broker = SimulatedExchange(instruments, fee_models(instruments, config, portfolio), latency_model(config),
                                   queue_model(config), force_l2=ex.queue_model != "fifo")
    stage = ExecutionStage(broker, portfolio, guard, correlation,
                           StopRule(risk.breakeven_cost_ticks, risk.swing_buffer_ticks), decision_ns,
                           ex.equity_interval_ms * 1_000_000, release_at_watermark=ex.venue == "simulator")
    if ex.exit_agent or ex.exit_agent_shadow:
        from ml.exit_agent import ExitParams, LiveExitAgent, PathRecorder, ShadowLearner
        from ml.exit_agent import load_table as load_exit_table

        params = ExitParams(cost_ticks=risk.breakeven_cost_ticks)
        if ex.exit_agent:
            stage.exit_agent = LiveExitAgent(load_exit_table(ex.exit_agent_table, ex.exit_agent_sha256), params)
        if ex.exit_agent_shadow:
            fees = fee_models(instruments, config, portfolio)
            recorder = PathRecorder(portfolio.tick_value, partial(taker_fee, fees))
            stage.observer = ShadowLearner(load_exit_table(ex.exit_agent_table, ex.exit_agent_sha256), recorder, params,
                                           seed=config.run.seed)
    return stage


def taker_fee(fees: dict[int, FeeModel], instrument_id: int, price: float) -> float:
    """Currency per lot of a taker exit at ``price`` ticks."""
    return float(fees[instrument_id].fee(int(round(price)), 1, Liquidity.TAKER))


def fee_models(instruments: list[InstrumentDef], config: Config, portfolio: Portfolio) -> dict[int, FeeModel]:
    """Each instrument's schedule from ``[instruments.SYMBOL]`` in the unit of ``[execution] fee_model``."""
    out: dict[int, FeeModel] = {}
    for d in instruments:
        spec = config.instrument(d.symbol)
        if config.execution.fee_model == "bps":
            out[d.instrument_id] = BpsFees(spec.maker_fee, spec.taker_fee, portfolio.tick_value[d.instrument_id],
                                           spec.order_fee)
        else:
            out[d.instrument_id] = PerLotFees(spec.maker_fee, spec.taker_fee, spec.order_fee)
    return out


def latency_model(config: Config) -> LatencyModel:
    ex = config.execution
    entry, response = int(ex.entry_latency_us * 1000), int(ex.response_latency_us * 1000)
    if ex.latency_model == "constant":
        return ConstantLatency(entry, response)
    rng = np.random.default_rng(np.random.SeedSequence([config.run.seed, 10]))  # the execution stream
    return LognormalLatency(entry, response, ex.latency_sigma, rng)


def queue_model(config: Config) -> QueueModel:
    if config.execution.queue_model == "risk_averse":
        return RiskAverseQueueModel()
    return ProbQueueModel(config.execution.queue_power)


def instrument_rows(instruments: list[InstrumentDef]) -> list[tuple[str, tuple]]:
    return [
        ("instruments", (d.instrument_id, d.symbol, d.venue, d.tick_size, d.price_scale, d.lot_size,
                         d.multiplier, d.currency, d.profile))
        for d in instruments
    ]
