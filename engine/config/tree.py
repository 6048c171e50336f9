"""Configuration: ``config.toml`` read with tomllib into one frozen msgspec tree.

Every key has a default (so an empty file is a valid config) and unknown keys are errors that name
their path (``unknown field "max_postion" at $.risk``). Every numeric key has a range and every
enumerated string is a Literal (``engine.config.ranges``); a value outside it is an error naming
the key, the range and where the value came from (``--set pipeline.queue_size=0: Expected `int` >=
1 - at `$.pipeline.queue_size```, or the file's name). ``--set a.b=value`` overrides any key;
values are parsed as TOML scalars (``--set pipeline.queue_size=1``, ``--set run.symbols=["A","B"]``).
Each run records ``config_hash`` (SHA-256 of the effective config) with its seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from engine.config.daemon import DaemonConfig
from engine.config.detectors import DetectorsConfig
from engine.config.features import (
    BookSlopeParams,
    ImpactParams,
    LiquidityFlowParams,
    OfiBiasParams,
    StructureParams,
    TradeIntensityParams,
    TrendParams,
    VolatilityParams,
    VolumeAccelerationParams,
    VolumeProfileParams,
    VpinParams,
)
from engine.config.ranges import (
    BusyTimeout,
    Count,
    Feed,
    FeeRate,
    FeeUnit,
    FieldError,
    FilePath,
    LatencyKind,
    NonNegative,
    NonNegativeInt,
    OptionalJsonPath,
    Positive,
    Profile,
    QueueKind,
    Seconds,
    Seed,
    Share,
    SizingMode,
    Speed,
    Symbol,
    TickSize,
    VenueKind,
    check_distinct,
)
from engine.config.simulator import SimulatorConfig
from engine.config.strategies import StrategiesConfig, StrategyName
from engine.config.validation import Problem, config_error, non_finite, problem_of
from engine.errors import ConfigError


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class RunConfig(_Section, frozen=True):
    symbols: Annotated[list[Symbol], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["AAPL", "NVDA", "TSLA"])  # distinct
    seed: Seed = 7
    duration_s: Seconds = 600.0  # simulated seconds for `run` and `demo`
    speed: Speed = "max"  # "max" or a multiple of real time such as 1 or 10 (a numeric string is read as its number)
    feed: Feed = "simulator"  # "simulator" (realistic, default) or "zero_intelligence"

    def __post_init__(self) -> None:
        check_distinct("symbols", self.symbols)


class PipelineConfig(_Section, frozen=True):
    queue_size: Count = 64  # bounded asyncio.Queue size between stages (items are batches)
    batch_size: Count = 256  # events per batch from the feed
    records_queue_size: Count = 256  # bounded queue into the persistence task (items are row batches)


class BookConfig(_Section, frozen=True):
    view_levels: Count = 10  # levels per side in each BookView
    check_l3: bool = False  # verify L2 == aggregated L3 at every LAST (slow; tests turn it on)


class FeatureConfig(_Section, frozen=True):
    depth_ticks: Annotated[list[Count], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [5, 10])  # depth-imbalance windows, ticks from best (distinct)
    trade_window_s: Annotated[list[Seconds], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [5.0, 30.0])  # trade-imbalance windows (distinct)
    spread_window_s: Seconds = 10.0  # time-weighted mean spread window
    microprice_table: OptionalJsonPath = ""  # F4 table from calibrate-microprice; "": the weighted-mid fallback
    ofi_bias: OfiBiasParams = OfiBiasParams()
    volatility: VolatilityParams = VolatilityParams()
    trade_intensity: TradeIntensityParams = TradeIntensityParams()
    volume_acceleration: VolumeAccelerationParams = VolumeAccelerationParams()
    trend: TrendParams = TrendParams()
    impact: ImpactParams = ImpactParams()
    book_slope: BookSlopeParams = BookSlopeParams()
    liquidity_flow: LiquidityFlowParams = LiquidityFlowParams()
    vpin: VpinParams = VpinParams()
    profile: VolumeProfileParams = VolumeProfileParams()
    structure: StructureParams = StructureParams()

    def __post_init__(self) -> None:
        check_distinct("depth_ticks", self.depth_ticks)
        check_distinct("trade_window_s", self.trade_window_s)


class StoreConfig(_Section, frozen=True):
    path: FilePath = "chimera.db"
    batch_rows: Count = 5000  # commit when this many rows are pending
    batch_age_ms: NonNegativeInt = 250  # ...or when the oldest pending row is this old (wall clock; 0: at once)
    sample_interval_ms: Annotated[int, Meta(ge=1000, multiple_of=1000)] = 1000  # stored samples: closes at multiples
    book_sample_levels: Count = 5  # at most [book] view_levels: samples are cut from the views
    busy_timeout_ms: BusyTimeout = 5000
    recovery_timeout_s: Seconds = 60.0  # after a refused write, how long a failed run waits to store its rows
    writer: Literal["process", "thread"] = "process"  # where SQLite writes: a child process or a thread


class RiskConfig(_Section, frozen=True):
    equity: Positive = 1_000_000.0
    max_position: Count = 1000  # lots per instrument
    max_order_size: Count = 500
    order_size: Count = 100  # lots per order when sizing = "fixed"
    max_orders_per_second: Count = 20
    sizing: SizingMode = "risk"  # "risk": SPEC 11 sizing; "fixed": order_size lots
    r_trade: Annotated[float, Meta(gt=0, le=0.1)] = 0.0025  # share of equity at risk per trade (stop-based)
    dollar_vol: Positive = 2500.0  # per-position dollar-volatility budget over the holding time
    holding_s: Seconds = 60.0  # expected holding time H for the volatility-targeted size
    liquidity_share: Share = 0.2  # at most this share of the median best-queue size
    p_be: Share = 0.5  # break-even probability of the confidence scaling
    p_hi: Share = 0.8  # probability at which the full size is used
    price_band_sigma: Positive = 4.0  # entry within this many sigma1 of the mid
    stop_max_sigma: Positive = 3.0  # refuse stops farther than this many sigma1
    decision_latency_us: NonNegative = 50.0  # signal to order decision
    drawdown_soft: Share = 0.015  # drawdown that halves sizes and raises the probability bar
    drawdown_hard: Share = 0.03  # drawdown that latches the kill switch
    daily_loss: Positive = 20_000.0  # loss from the start of the session that latches the kill switch
    max_consecutive_losses: Count = 5  # losing round trips in a row that latch the kill switch
    strategy_drawdown: Share = 0.02  # a strategy's own drawdown (share of equity) that disables it
    breakeven_cost_ticks: NonNegativeInt = 1  # breakeven stop = entry + this many ticks of costs
    swing_buffer_ticks: NonNegativeInt = 1  # trailing stop this many ticks beyond the last swing
    correlation_sample_s: Seconds = 60.0  # return sampling interval of the covariance
    correlation_half_life_s: Seconds = 7200.0  # EWMA half-life of the covariance
    correlation_shrink: Share = 0.5  # weight of the diagonal in the shrunk covariance
    portfolio_vol_cap: Positive = 50_000.0  # cap on sqrt(w' S w), currency per sample interval
    single_exposure_cap: Positive = 250_000.0  # cap on one instrument's signed dollar exposure
    cluster_rho: Share = 0.7  # instruments with pairwise correlation above this form a cluster
    cluster_factor: Positive = 1.5  # a cluster's same-direction exposure cap, in single caps

    def __post_init__(self) -> None:
        limit = min(self.max_order_size, self.max_position)
        if self.order_size > limit:
            raise FieldError(f"Expected order_size <= max_order_size and max_position (every order would be "
                             f"rejected), got {self.order_size} > {limit}", "order_size", "max_order_size",
                             "max_position")


class ExecutionConfig(_Section, frozen=True):
    fee_model: FeeUnit = "per_lot"  # unit of the instruments' maker_fee and taker_fee: "per_lot" or "bps"
    latency_model: LatencyKind = "lognormal"  # "lognormal" (jitter) or "constant"
    entry_latency_us: Positive = 1000.0  # order entry latency (decision to exchange), mean
    response_latency_us: Positive = 1000.0  # exchange to local receipt, mean
    latency_sigma: Annotated[float, Meta(ge=0, le=2)] = 0.25  # log-space standard deviation of the jitter
    queue_model: QueueKind = "fifo"  # "fifo" (exact where order ids exist, else prob), "prob", "risk_averse"
    queue_power: Annotated[float, Meta(gt=0, le=10)] = 2.0  # n of f(x) = x^n in the prob queue model
    equity_interval_ms: Annotated[int, Meta(ge=100, le=3_600_000)] = 1000  # equity rows at this event-time step
    # "book_walk": our orders against a copy of the book (SimulatedExchange); "simulator": inside the
    # simulator's matching engine (run on the simulator feed only)
    venue: VenueKind = "book_walk"
    simulator_gate_us: Annotated[float, Meta(gt=0, le=1_000_000)] = 500.0  # the gated simulator's step
    # the Q-learning exit agent (SPEC 7) manages open positions instead of the bracket's target and the
    # stop rule; off unless `chimera train exits` accepted a table, which is then named with its SHA-256
    exit_agent: bool = False
    exit_agent_table: Annotated[str, Meta(pattern=r"^(.*\.npz)?$")] = ""  # path of the registered table (.npz)
    exit_agent_sha256: Annotated[str, Meta(pattern="^([0-9a-f]{64})?$")] = ""  # its SHA-256 as registered
    # shadow mode: a copy of that table keeps learning from this run's entries (exits unchanged unless
    # exit_agent is true); the updated table is registered at the end of the run
    exit_agent_shadow: bool = False

    def __post_init__(self) -> None:
        if (self.exit_agent or self.exit_agent_shadow) and not (self.exit_agent_table and self.exit_agent_sha256):
            key = "exit_agent" if self.exit_agent else "exit_agent_shadow"
            raise FieldError(f"Expected exit_agent_table and exit_agent_sha256 with {key} = true (the table "
                             "`chimera train exits` registered), got an empty one", "exit_agent_table",
                             key, "exit_agent_sha256")


class InstrumentSpec(_Section, frozen=True):
    """One simulated instrument (also the tick size used for any symbol the engine trades)."""

    profile: Profile = "small_tick"  # "large_tick" or "small_tick"
    tick_size: TickSize = "0.01"  # a positive decimal string
    start_price: Positive = 100.0
    liquidity: Positive = 1.0  # scales limit-order rates and queue sizes
    volatility: Positive = 1.0  # scales the profile's base volatility
    beta: Share = 0.5  # loading on the common factor (cross-asset correlation ~ beta_i * beta_j)
    lot_size: Count = 1
    maker_fee: FeeRate = -0.0020  # passive fills, in [execution] fee_model units (negative = rebate)
    taker_fee: FeeRate = 0.0030  # aggressive fills, same units
    order_fee: NonNegative = 0.0  # fixed fee per order, currency units
    # the strategies this instrument runs: "all" (every one of [strategies] enabled) or some of them
    strategies: Annotated[list[StrategyName], Meta(min_length=1)] = msgspec.field(default_factory=lambda: ["all"])


DEFAULT_INSTRUMENTS: dict[str, InstrumentSpec] = {
    "AAPL": InstrumentSpec(profile="small_tick", tick_size="0.01", start_price=190.0, beta=0.7),
    "NVDA": InstrumentSpec(profile="small_tick", tick_size="0.01", start_price=450.0, volatility=1.3, beta=0.6),
    "TSLA": InstrumentSpec(profile="large_tick", tick_size="0.25", start_price=250.0, liquidity=1.2, beta=0.5),
    "SPY": InstrumentSpec(profile="large_tick", tick_size="0.01", start_price=450.0, liquidity=3.0, beta=0.9),
    "ES": InstrumentSpec(profile="large_tick", tick_size="0.25", start_price=4500.0, liquidity=4.0, beta=0.95),
    "AMZN": InstrumentSpec(profile="small_tick", tick_size="0.01", start_price=220.0, beta=0.6),
}


class OnlineConfig(_Section, frozen=True):
    """``[ml.online]``: the online layer over the signal classifier (``ml/online.py``, docs/ml.md)."""

    enabled: bool = False  # off by default: with it on, a run's decisions depend on when trades close
    warmup_trades: Annotated[int, Meta(ge=0, le=100_000)] = 100  # closed trades before the recalibration serves
    learning_rate: Annotated[float, Meta(gt=0, le=1)] = 0.01  # SGD step of the recalibration (its forgetting)
    loss_window: Annotated[int, Meta(ge=10, le=100_000)] = 100  # trades in the reported rolling log-loss
    ph_delta: Annotated[float, Meta(gt=0, le=10)] = 0.05  # Page-Hinkley tolerance on the per-trade log-loss
    ph_threshold: Annotated[float, Meta(gt=0, le=100_000)] = 20.0  # Page-Hinkley alarm threshold
    adwin_delta: Annotated[float, Meta(gt=0, lt=1)] = 0.002  # ADWIN confidence
    retrain_every: Annotated[int, Meta(ge=20, le=1_000_000)] = 500  # closed trades between two retrains
    retrain_window: Annotated[int, Meta(ge=50, le=1_000_000)] = 2000  # latest trades a retrain fits on
    promote_trades: Annotated[int, Meta(ge=10, le=100_000)] = 200  # shadow trades before a challenger is judged
    folds: Annotated[int, Meta(ge=2, le=10)] = 3  # purged calibration folds of a retrain
    max_iter: Annotated[int, Meta(ge=10, le=1000)] = 100  # boosting iterations of a retrain
    executor: Literal["process", "thread"] = "process"  # where a retrain runs: a spawned process or a thread


class MlConfig(_Section, frozen=True):
    # TF2 bars of history the live regime feature (F26) keeps: its baselines over "all earlier bars"
    # read the last this many (720 = 2 hours); at least the 30-bar minimum of those baselines
    regime_history_bars: Annotated[int, Meta(ge=30, le=100_000)] = 720
    online: OnlineConfig = OnlineConfig()
    # the price-target model predicts this quantile of a signal's favourable excursion (in R): the
    # take-profit the market reaches with probability about 1 - q (chimera train signals)
    target_quantile: Annotated[float, Meta(ge=0.05, le=0.95)] = 0.5
    # its prediction is clipped to [target_min_r, target_max_r] times the signal's risk
    target_min_r: Annotated[float, Meta(gt=0, le=100)] = 1.0
    target_max_r: Annotated[float, Meta(gt=0, le=100)] = 6.0
    # where chimera demo caches its small model set: "" ($XDG_DATA_HOME/chimera, else
    # ~/.local/share/chimera) or a path starting with /, ~ or . (./data)
    data_dir: Annotated[str, Meta(pattern=r"^([/~.].*)?$")] = ""

    def __post_init__(self) -> None:
        if self.target_min_r > self.target_max_r:
            raise FieldError(f"Expected target_min_r <= target_max_r, got {self.target_min_r} > {self.target_max_r}",
                             "target_min_r", "target_max_r")


class Config(_Section, frozen=True):
    run: RunConfig = RunConfig()
    pipeline: PipelineConfig = PipelineConfig()
    book: BookConfig = BookConfig()
    features: FeatureConfig = FeatureConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    store: StoreConfig = StoreConfig()
    risk: RiskConfig = RiskConfig()
    execution: ExecutionConfig = ExecutionConfig()
    ml: MlConfig = MlConfig()
    strategies: StrategiesConfig = StrategiesConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    daemon: DaemonConfig = DaemonConfig()
    instruments: dict[str, InstrumentSpec] = msgspec.field(default_factory=lambda: dict(DEFAULT_INSTRUMENTS))

    def __post_init__(self) -> None:
        if self.store.book_sample_levels > self.book.view_levels:
            raise FieldError("Expected store.book_sample_levels <= book.view_levels (samples are cut from the "
                             f"book views), got {self.store.book_sample_levels} > {self.book.view_levels}",
                             "store.book_sample_levels", "book.view_levels")

    def instrument(self, symbol: str) -> InstrumentSpec:
        """The spec of ``symbol``; unknown symbols get the default spec (small-tick, $100)."""
        return self.instruments.get(symbol, InstrumentSpec())

    def hash(self) -> str:
        """SHA-256 of the effective configuration (stable key order)."""
        return hashlib.sha256(msgspec.json.encode(msgspec.to_builtins(self), order="sorted")).hexdigest()


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {key!r} is not a table")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``a.b=value`` (value as a TOML scalar or array; bare words become strings)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. pipeline.queue_size=1")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read ``path`` (or only defaults when None), apply ``--set`` overrides, validate.

    Raises:
        ConfigError: unreadable file, TOML syntax error, unknown key, wrong type or a value out of its
            range (with its key path, and the ``--set`` or the file it came from).
    """
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            tree = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: config file not found") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    origins: list[tuple[str, str]] = []
    for item in overrides:
        key, value = parse_override(item)
        _set_path(tree, key, value)
        origins.append((key, item.strip()))
    return _validated(tree, path or None, origins)


def with_values(config: Config, values: dict[str, Any]) -> Config:
    """``config`` with dotted keys set (``{"strategies.sweep_reversal.min_rr": 2.0}``), validated like ``--set``.

    Raises:
        ConfigError: an unknown key or a value out of its range, naming the key.
    """
    tree = msgspec.to_builtins(config)
    origins = []
    for key, value in values.items():
        _set_path(tree, key, value)
        origins.append((key, f"{key}={value!r}"))
    return _validated(tree, None, origins)


def _validated(tree: dict[str, Any], path: str | Path | None, origins: list[tuple[str, str]]) -> Config:
    _speed_from_text(tree)
    try:
        problem = non_finite(tree)
        if problem is not None:
            raise _Invalid(problem)
        instruments = tree.get("instruments")
        if isinstance(instruments, dict):
            tree["instruments"] = _merge_instruments(instruments)
        try:
            return msgspec.convert(tree, Config)
        except msgspec.ValidationError as exc:
            raise _Invalid(problem_of(exc, Config)) from exc
    except _Invalid as invalid:
        raise config_error(invalid.problem, path, origins) from invalid.__cause__


class _Invalid(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _speed_from_text(tree: dict[str, Any]) -> None:
    """``run.speed = "10"`` (as older configs and the docs write it) means the number 10."""
    run = tree.get("run")
    if isinstance(run, dict) and isinstance(run.get("speed"), str) and run["speed"] != "max":
        with contextlib.suppress(ValueError):  # anything else is refused by its type, with the values it takes
            run["speed"] = float(run["speed"])


def _merge_instruments(instruments: dict[str, Any]) -> dict[str, Any]:
    """Entries extend the built-in symbols, and override a built-in symbol field by field.

    Each entry is validated here because msgspec names a dict entry ``[...]``, not its symbol.
    """
    defaults = msgspec.to_builtins(DEFAULT_INSTRUMENTS)
    merged = dict(defaults)
    for symbol, entry in instruments.items():
        if isinstance(entry, dict):
            entry = {**defaults.get(symbol, {}), **entry}
        try:
            msgspec.convert(entry, InstrumentSpec)
        except msgspec.ValidationError as exc:
            raise _Invalid(problem_of(exc, InstrumentSpec, f"$.instruments.{symbol}")) from exc
        merged[symbol] = entry
    return merged
