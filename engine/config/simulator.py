"""Simulator configuration (``[simulator]`` in config.toml) and the two instrument profiles.

``SimulatorConfig`` holds the model-wide parameters of SPEC section 9; ``LargeTickProfile`` and
``SmallTickProfile`` hold the per-profile order-flow calibration (rates are per side and per second
at ``liquidity = volatility = 1``; sizes are round-lot mixtures ``((size, probability), ...)``).
Every field has a default, so ``SimulatorConfig()`` is the shipped calibration; a partial
``[simulator.small_tick]`` table overrides single fields of that profile only.

Every numeric field declares its range in its type (``engine.config.ranges``); the pairs
(``meta_participation``, ``vacuum_s``), the size mixtures and the pairs of related keys are checked
in ``__post_init__``.

It lives beside the rest of the configuration tree so that the config, a core, imports no feed.
"""

from __future__ import annotations

from typing import Annotated, get_args

import msgspec

from engine.config.ranges import (
    SESSION_START_RANGE_NS,
    AtLeastOne,
    Count,
    FieldError,
    NonNegative,
    OpenShare,
    Positive,
    Profile,
    Seconds,
    Share,
    SizeMix,
    TickSize,
    check_mixture,
    check_ordered,
)
from engine.errors import ConfigError

Levels = Annotated[int, msgspec.Meta(ge=1, le=10_000)]  # placement distances are drawn from an array this long
GridMs = Annotated[int, msgspec.Meta(ge=1, le=1_000)]  # the latent grid: at most one step a second
LagMs = Annotated[int, msgspec.Meta(ge=0, le=3_600_000)]  # one buffered value per grid step of lag
SessionLength = Annotated[float, msgspec.Meta(gt=0, le=86_400)]  # at most a calendar day
SessionStart = Annotated[int, msgspec.Meta(ge=SESSION_START_RANGE_NS[0], le=SESSION_START_RANGE_NS[1])]
Alpha = Annotated[float, msgspec.Meta(gt=1)]  # a Pareto tail with a finite mean
MetaCap = Annotated[float, msgspec.Meta(gt=0, le=1)]
AuctionOrders = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
Convexity = Annotated[float, msgspec.Meta(ge=0, le=10)]  # per tick: 10 doubles the rate at a 0.1-tick gap


class ProfileParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Order-flow calibration of one instrument profile (defaults are the small-tick values)."""

    sigma0: Positive = 2.0  # base latent volatility, ticks per sqrt(second)
    k0: Positive = 15.0  # placement profile w_k ~ k^0.5 exp(-k/k0), k = 1 is the own best
    levels: Levels = 50  # K: deepest placement distance in ticks behind the own best
    q_sat: Positive = 150.0  # queue size (lots) at which limit-order acceptance falls to 1/e
    lo_rate: Positive = 2.5  # limit-order proposals per second per side behind the best (before thinning)
    in_spread_rate: NonNegative = 0.04  # in-spread limit orders per second per side per tick of (spread - 1)
    in_spread_mean: AtLeastOne = 2.0  # mean improvement (ticks) of an in-spread order over its own best (geometric)
    in_spread_capped: bool = True  # in-spread orders never cross the latent price (bids < X, asks > X)
    in_spread_floor: Count = 7  # in-spread quoting stops at this spread (ticks): rate L_in (s - floor)
    in_spread_queue_weight: Share = 0.8  # w: in-spread rates x (1 +- w (qb - qa) / (qb + qa)), bid / ask
    in_spread_convexity: Convexity = 0.15  # c per tick of gap g = spread - floor: in-spread rate L_in g (1 + c g)
    mo_rate: Positive = 0.02  # market-order Hawkes baseline mu_MO per side per second
    kappa_l: NonNegative = 0.3  # limit-order pull exp(+-kappa_l (X - m)), per tick of latent-mid gap
    kappa_mo: NonNegative = 1.5  # market-order pull exp(+-kappa_mo (X - m) / sigma1)
    lo_sizes: SizeMix = (
        (1, 0.03), (10, 0.04), (25, 0.04), (50, 0.08), (75, 0.04), (100, 0.48), (150, 0.03),
        (200, 0.10), (300, 0.05), (400, 0.03), (500, 0.05), (1000, 0.03),
    )  # AMZN-like: 48% exactly 100 shares
    mo_sizes: SizeMix = (
        (1, 0.05), (20, 0.06), (50, 0.10), (100, 0.42), (150, 0.05), (200, 0.14), (300, 0.08),
        (400, 0.04), (500, 0.05), (1000, 0.01),
    )  # median 100, p99 500
    start_spread: Count = 12  # spread (ticks) of the seeded opening book
    stale_rate: NonNegative = 8.0  # cancel hazard (1/s) of quotes on the wrong side of the latent price
    theta_scale: NonNegative = 1.0  # multiplies the permanent impact per market order theta
    meta_active_scale: NonNegative = 2.5  # multiplies meta_active: 20 metaorders in execution (sign memory)
    meta_burst_mean: AtLeastOne = 8.0  # mean number of back-to-back market orders per metaorder child (geometric)
    meta_min_orders: Positive = 30.0  # minimum metaorder size in mean market-order sizes (sign memory to lag 100)
    hidden_prob: Share = 0.25  # probability that a background market order meets a hidden order first
    hidden_improve_mean: AtLeastOne = 2.0  # mean ticks of a hidden order in front of its side's best (geometric)
    best_level_share: Share = 0.97  # share of background market orders sized to at most the best level
    start_price: Positive = 223.0  # opening price of the profile's synthetic instruments (sim-check, calibrate)
    tick_size: TickSize = "0.01"  # their tick: $223 and $0.01 is AMZN's level (1 tick = 0.45 bp)

    def __post_init__(self) -> None:
        check_mixture("lo_sizes", self.lo_sizes)
        check_mixture("mo_sizes", self.mo_sizes)


class SmallTickProfile(ProfileParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """AMZN-like small-tick instrument: wide sparse book, 1-2 orders at the best."""


class LargeTickProfile(ProfileParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Futures-like large-tick instrument: spread 1 tick, deep queues."""

    sigma0: Positive = 1.0  # base latent volatility, ticks per sqrt(second)
    k0: Positive = 3.0  # placement profile scale (ticks)
    levels: Levels = 50  # deepest placement distance
    q_sat: Positive = 20.0  # queue size (lots) at which acceptance falls to 1/e
    lo_rate: Positive = 14.0  # proposals per second per side behind the best
    in_spread_rate: NonNegative = 20.0  # in-spread orders per second per side per tick of (spread - 1)
    in_spread_mean: AtLeastOne = 1.0  # mean improvement over the own best (ticks)
    in_spread_capped: bool = False  # a one-tick gap is closed whatever the latent price
    in_spread_floor: Count = 1  # any gap is closed
    in_spread_queue_weight: Share = 0.0  # in-spread rates do not depend on the best queues
    in_spread_convexity: Convexity = 0.0  # linear in the gap
    mo_rate: Positive = 0.4  # Hawkes baseline per side per second
    kappa_l: NonNegative = 0.8  # limit-order pull per tick
    kappa_mo: NonNegative = 3.0  # market-order pull per sigma1
    lo_sizes: SizeMix = (
        (1, 0.45), (2, 0.20), (3, 0.10), (4, 0.05), (5, 0.08), (10, 0.07), (20, 0.04), (50, 0.01),
    )  # small integer lots, median 1
    mo_sizes: SizeMix = (
        (1, 0.40), (2, 0.20), (3, 0.10), (5, 0.12), (10, 0.10), (20, 0.05), (50, 0.03),
    )  # median 2
    start_spread: Count = 1  # spread of the seeded opening book
    stale_rate: NonNegative = 8.0  # cancel hazard (1/s) of stale quotes
    theta_scale: NonNegative = 0.25  # 4 market orders/s against ~11 lots at the best: theta 0.05, not 0.2
    meta_burst_mean: AtLeastOne = 3.5  # mean number of back-to-back market orders per metaorder child
    meta_active_scale: NonNegative = 1.0  # multiplies meta_active
    meta_min_orders: Positive = 12.0  # minimum metaorder size in mean market-order sizes
    hidden_prob: Share = 0.3  # probability that a background market order meets a hidden order first
    hidden_improve_mean: AtLeastOne = 1.0  # a one-tick spread leaves no room: hidden orders sit at the best
    best_level_share: Share = 0.9  # share of background market orders sized to at most the best level
    start_price: Positive = 100.0  # opening price of the profile's synthetic instruments
    tick_size: TickSize = "0.01"  # their tick (1 tick = 1 bp at $100)


class SimulatorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of the market simulator (SPEC section 9); every field has a default."""

    session_start_ns: SessionStart = 1_718_976_600_000_000_000  # ts of the open: 2024-06-21 09:30 New York
    session_length_s: SessionLength = 23_400.0  # trading day length, for daily volume/volatility estimates
    grid_ms: GridMs = 100  # latent-price grid step
    clock_silence_ms: Count = 100  # emit a Clock after this much silence per instrument
    flow_refresh_ms: Count = 500  # refresh interval of the market-order baseline (latent pull, decays)
    latency_us: Positive = 200.0  # mean feed latency ts_recv - ts_event, microseconds
    latency_jitter_us: NonNegative = 50.0  # standard deviation of the lognormal feed latency
    intraday_u_shape: bool = True  # the intraday profile in full-day sessions (>= 99 % of session_length_s)
    intraday_open_tau_s: Seconds = 1800.0  # decay time of the open's activity, spread and volatility excess
    intraday_close_tau_s: Seconds = 1200.0  # rise time of the close's activity excess
    intraday_open_activity: NonNegative = 2.0  # A_o: activity excess at the open (before normalising to mean 1)
    intraday_close_activity: NonNegative = 4.0  # A_c: activity excess at the close
    intraday_open_spread: NonNegative = 2.0  # S_o: liquidity providers 1 + S_o times further apart at the open
    intraday_open_volatility: NonNegative = 0.5  # V_o: latent volatility 1 + V_o times its level at the open
    auctions: bool = False  # opening and closing auctions: call phase, one uncrossing print, then OPEN / CLOSED
    auction_orders: AuctionOrders = 10  # call-phase limit orders per side of each auction
    auction_width_ticks: Count = 5  # call-phase prices uniform within this many ticks of the latent price
    regime_dwell_scale: Positive = 1.0  # multiplies every mean regime dwell (tests shorten it)
    hawkes_beta1: Positive = 10.0  # fast kernel decay, 1/s
    hawkes_beta2: Positive = 0.2  # slow kernel decay, 1/s
    hawkes_w1: Share = 0.9  # weight of the fast kernel (slow gets 1 - w1)
    hawkes_c_self: Share = 0.9  # share of the branching ratio that excites the same side
    hawkes_c_cross: Share = 0.1  # share that excites the other side
    mo_pull_min: Positive = 0.2  # clip of the market-order latent pull (lower)
    mo_pull_max: Positive = 5.0  # clip of the market-order latent pull (upper)
    theta: NonNegative = 0.2  # permanent impact per market order: theta * sign * size / mean best depth
    fleeting_share: Share = 0.15  # share of limit orders with a fleeting lifetime
    fleeting_mean_s: Seconds = 0.05  # mean fleeting lifetime, seconds
    patient_mean_s: Seconds = 10.0  # mean patient lifetime, seconds (divided by the regime cancel multiplier)
    partial_cancel_share: Share = 0.0075  # share of patient cancels that are partial (OrderCancel)
    reaction_ticks: Count = 2  # queue reaction zone: ticks from the best
    reaction_mult: AtLeastOne = 2.0  # patient hazard multiplier in the zone under adverse order flow
    reaction_tau_s: Seconds = 1.0  # time scale of the order-flow imbalance that triggers the reaction
    meta_active: NonNegative = 8.0  # mean number of metaorders being executed at once per instrument
    meta_alpha: Alpha = 1.5  # Pareto tail exponent of metaorder sizes
    meta_cap: MetaCap = 0.1  # metaorder size cap as a fraction of the background daily volume (~5% of all)
    meta_participation: tuple[OpenShare, OpenShare] = (0.05, 0.20)  # participation range (uniform)
    meta_impact: NonNegative = 0.42  # Y in the square-root permanent impact Y sigma_day sqrt(Q / V_day)
    vol_of_vol: NonNegative = 0.12  # s: shared volatility factor exp(s Y - s^2), Y a unit OU (E[factor^2] = 1)
    vol_tau_s: Seconds = 60.0  # time scale of the shared volatility factor
    common_lag_ms: LagMs = 2000  # each instrument receives the common factor after a lag uniform in [0, this]
    info_rate: NonNegative = 0.3  # rate (1/s) of latent information jumps (common and per instrument)
    info_share: Share = 0.85  # share of the latent diffusion variance delivered by those jumps
    news_market_per_hour: NonNegative = 0.5  # market-wide news rate
    news_instrument_per_hour: NonNegative = 0.25  # idiosyncratic news rate per instrument
    news_kj: NonNegative = 4.0  # jump size J = sign |t3| k_J sigma_60s
    vacuum_mult: AtLeastOne = 10.0  # cancel-rate multiplier near the best after news
    vacuum_ticks: Count = 10  # vacuum zone width from the best
    vacuum_s: tuple[Seconds, Seconds] = (2.0, 10.0)  # vacuum duration range (uniform)
    shock_mo_mult: AtLeastOne = 3.0  # SHOCK market-order multiplier at entry, decaying to 1
    shock_tau_s: Seconds = 60.0  # decay time of the SHOCK market-order multiplier
    episodes_per_hour: NonNegative = 3.0  # random labelled background episodes per hour per instrument (0: none)
    # label every aggressive order that executes at 2 or more prices a natural SWEEP (SPEC F22)
    natural_sweep_labels: bool = True
    # label every vacuum of the flow by SPEC F18's definition a natural VACUUM (feeds/simulator/natural.py);
    # off by default (it doubles the simulator's CPU time); chimera score-detectors turns both on
    natural_vacuum_labels: bool = False
    # label every absorption of the flow by SPEC F20's definition a natural ABSORPTION (feeds/simulator/natural.py)
    natural_absorption_labels: bool = False
    large_tick: LargeTickProfile = LargeTickProfile()  # large-tick calibration
    small_tick: SmallTickProfile = SmallTickProfile()  # small-tick calibration

    def __post_init__(self) -> None:
        check_ordered("meta_participation", self.meta_participation)
        check_ordered("vacuum_s", self.vacuum_s)
        if self.mo_pull_min > self.mo_pull_max:
            raise FieldError(f"Expected mo_pull_min <= mo_pull_max, got {self.mo_pull_min} > {self.mo_pull_max}",
                             "mo_pull_min", "mo_pull_max")
        if self.hawkes_c_self + self.hawkes_c_cross > 1.0 + 1e-9:
            raise FieldError("Expected hawkes_c_self + hawkes_c_cross <= 1 (shares of the branching ratio), got "
                             f"{self.hawkes_c_self} + {self.hawkes_c_cross}", "hawkes_c_self", "hawkes_c_cross")

    def profile(self, name: str) -> ProfileParams:
        """The calibration of profile ``name`` (``large_tick`` or ``small_tick``)."""
        if name == "large_tick":
            return self.large_tick
        if name == "small_tick":
            return self.small_tick
        raise ConfigError(f"unknown simulator profile {name!r} at $.instruments.*.profile "
                          "(expected 'large_tick' or 'small_tick')")


PROFILES: tuple[str, ...] = get_args(Profile)
