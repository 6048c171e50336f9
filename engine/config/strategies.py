"""Strategy parameters (the ``[strategies.*]`` tables of config.toml): SPEC sections 3 and 4, the
genes of the optimiser, each with a default and a range. The strategies (strategies/) read them;
they live beside the rest of the configuration so that the config, a core, imports no strategy.

``enabled`` names the strategies every lane runs: a built-in name, or ``package.module:Class`` for
a user strategy (loaded and checked against the protocol by strategies/registry.py). Each
instrument may narrow the list with ``[instruments.SYMBOL] strategies``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from engine.config.ranges import FieldError, check_distinct

BUILTIN = ("sweep_reversal", "stacked_absorption", "iceberg_defense", "vacuum_entry", "mean_reversion",
           "hvn_bounce", "queue_imbalance")
STRATEGY_PATTERN = r"^([a-z][a-z0-9_]*|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$"
StrategyName = Annotated[str, Meta(pattern=STRATEGY_PATTERN)]

Ticks = Annotated[int, Meta(ge=0, le=10_000)]
Secs = Annotated[float, Meta(gt=0, le=86_400)]
Z = Annotated[float, Meta(ge=-10, le=10)]
Ratio = Annotated[float, Meta(ge=0, le=100)]
Fraction = Annotated[float, Meta(ge=0, le=1)]


class _Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class CommonParams(_Params, frozen=True):
    """Shared by every built-in strategy."""

    # buf = max(buffer_min_ticks, buffer_sigma1 * sigma1, buffer_spreads * spread) ticks (SPEC 3)
    buffer_min_ticks: Annotated[int, Meta(ge=1, le=1_000)] = 2
    # the sigma1 share of the buffer
    buffer_sigma1: Ratio = 0.5
    # spreads in the buffer
    buffer_spreads: Ratio = 1.0
    # a strategy signals at most once per this many seconds per instrument
    cooldown_s: Secs = 30.0
    # True: a last target short of min R:R is moved out to it (S_raw is lowered by the shortfall);
    # False: the signal is skipped (SPEC's rule)
    extend_target: bool = True


class ConfluenceParams(_Params, frozen=True):
    """SPEC section 4: directional evidence per timeframe, the families' confluence, the regime gates."""

    # weights of the 1 s, 10 s and 60 s frames in the trend-family C
    weight_1s: Ratio = 0.2
    # weight of the 10 s frame
    weight_10s: Ratio = 0.3
    # weight of the 60 s frame
    weight_60s: Ratio = 0.5
    # trend family (S4) needs C >= this
    min_trend: Z = 0.2
    # reversal family (S1, S2, S3, S5, S6) needs C >= this
    min_reversal: Z = 0.3
    # reversal family: the slow frame must not be more against than this (eps * d_60s > -slow_against)
    slow_against: Fraction = 0.6
    # the strategies' own z-scores (used until the 30-min baselines are ready): EWMA span in bar closes
    z_span: Annotated[int, Meta(ge=2, le=100_000)] = 300
    # ... and the closes needed before such a z-score is used (0 until then)
    z_min_samples: Annotated[int, Meta(ge=2, le=100_000)] = 20
    # regime rules (SPEC 5): |t_drift(20 min)| for TREND
    trend_t: Ratio = 2.5
    # ... and the efficiency ratio (20 min) for TREND
    trend_er: Fraction = 0.2
    # BREAKOUT: volume ratio 1 min / 30 min at least this
    breakout_vr: Ratio = 1.5
    # TF2 closes a new label must persist before it replaces the previous one (SHOCK applies at once)
    hysteresis: Annotated[int, Meta(ge=1, le=1_000)] = 3
    # apply the regime gate matrix (SPEC 4.7) once the regime is known
    gates: bool = True


class SweepReversalParams(_Params, frozen=True):
    """S1 Liquidity Sweep Reversal."""

    # R = the highest swing high (lowest swing low) confirmed within this many seconds, or VAH (VAL)
    swing_lookback_s: Secs = 900.0
    # P_max = max(p_max_ticks, p_max_sigma1 * sigma1): the sweep's extreme lies in (R, R + P_max]
    p_max_ticks: Annotated[int, Meta(ge=1, le=10_000)] = 8
    # the sigma1 multiple of P_max
    p_max_sigma1: Ratio = 3.0
    # T_rev: the reversal must come within this many seconds of the sweep
    reversal_s: Secs = 20.0
    # V_trap >= trap_share * sweep volume
    trap_share: Fraction = 0.15
    # the 1 s OFI z-score must be at most this at the reversal
    ofi_z_max: Z = 0.0
    # CVD over this many seconds must be <= 0 (short; >= 0 long) at the reversal
    cvd_window_s: Secs = 5.0
    # minimum reward to risk against the last target
    min_rr: Ratio = 1.5
    # time stop, seconds
    time_stop_s: Secs = 300.0


class StackedAbsorptionParams(_Params, frozen=True):
    """S2 Stacked Absorption Reversal."""

    # at least this many absorption events in the stack
    min_events: Annotated[int, Meta(ge=2, le=100)] = 2
    # the stack's mean absorption strength (AS = volume / auto threshold) must reach this
    min_strength: Ratio = 1.0
    # divergence: mid change over the stack window >= -max_adverse_ticks (long)
    max_adverse_ticks: Ticks = 1
    # confirmation within this many seconds of the stack
    confirm_s: Secs = 30.0
    # confirmation: 1 s OFI z above this ...
    confirm_ofi_z: Z = 0.5
    # ... or the lean above this many ticks, or the best ask lifted
    confirm_lean: Ratio = 0.25
    # target in R
    target_r: Ratio = 2.0
    # time stop, seconds
    time_stop_s: Secs = 600.0


class IcebergDefenseParams(_Params, frozen=True):
    """S3 Iceberg Defense Entry."""

    # n_r: refills seen at P
    min_refills: Annotated[int, Meta(ge=1, le=1_000)] = 3
    # the last refill must be at most this many seconds old
    refill_age_s: Secs = 10.0
    # the mid must be within this many bins of P
    max_distance_bins: Annotated[int, Meta(ge=0, le=1_000)] = 2
    # target = target_stops * stop distance (or the next opposite wall - 1 tick, when nearer and beyond 1R)
    target_stops: Ratio = 2.5
    # time stop, seconds
    time_stop_s: Secs = 600.0


class VacuumEntryParams(_Params, frozen=True):
    """S4 Vacuum Entry."""

    # the 1 s OFI z-score (in the vacuum's direction) must exceed this
    min_ofi_z: Z = 1.0
    # aggressive volume toward the vacuum (CVD change since its start) at least this many lots (0: not against)
    min_flow: Annotated[int, Meta(ge=0, le=10_000_000)] = 0
    # no absorption on the vacuum side within this many seconds
    absorption_quiet_s: Secs = 10.0
    # the next wall on the vacuum side must be at least this many ticks away
    min_wall_ticks: Ticks = 3
    # target when no wall: this many stop distances
    target_stops: Ratio = 2.0
    # time stop without progress, seconds
    time_stop_s: Secs = 20.0
    # the vacuum waits this many seconds at most for its side's depth to come back
    confirm_s: Secs = 15.0
    # ... back means D_N >= refill_share * the detector's median depth (SPEC's 80 % of baseline)
    refill_share: Fraction = 0.8
    # the mid must reach this many ticks beyond the mid before the vacuum before the depth is back ...
    progress_ticks: Ticks = 3
    # ... or this many sigma1, whichever is larger
    progress_sigma1: Ratio = 1.0


class MeanReversionParams(_Params, frozen=True):
    """S5 Mean Reversion Fade."""

    # dev_sigma (F9) at least this far from VWAP ...
    min_dev_sigma: Ratio = 2.0
    # ... or the mid beyond VAH (VAL) by this many ticks
    value_area_ticks: Ticks = 2
    # exhaustion: log volume acceleration below this (SPEC: 0; measured on range_overextension, log VA stays
    # above 0 for ~30 s after the 12 s burst while the stretch fades, so 0.25)
    max_log_va: Z = 0.25
    # exhaustion: 10 s OFI z (in the stretch's direction) at most this
    max_ofi_z_10s: Z = 0.5
    # no vacuum on the fade's side within this many seconds
    vacuum_quiet_s: Secs = 10.0
    # the extreme is the furthest mid of this many seconds
    extreme_window_s: Secs = 60.0
    # time stop, seconds
    time_stop_s: Secs = 600.0


class HvnBounceParams(_Params, frozen=True):
    """S6 HVN/LVN Bounce: the HVN retest and the LVN rejection."""

    # without significant nodes, HVNs are the profile's volume peaks at least this many times the mean bin
    peak_ratio: Ratio = 1.5
    # the side: long when the mid this many seconds before entering the node was above it, else short
    approach_s: Secs = 60.0
    # the node must have been untested this many seconds before the retest ...
    untested_s: Secs = 600.0
    # ... or, while the session profile spans less than 2 h, this share of its span if shorter
    # (a deviation from SPEC S6's fixed 10 minutes, so that a short session can have a retest)
    untested_share: Annotated[float, Meta(gt=0, le=1)] = 0.083
    # confirmation: absorption on the node's side with AS at least this within confirm_s ...
    min_absorption: Ratio = 0.7
    # ... or QI at least this with the 1 s OFI z turning in the trade's direction
    min_qi: Fraction = 0.3
    # the retest (confirmation window) lasts this many seconds after entering the node, while the mid stays within buf
    confirm_s: Secs = 90.0
    # not against a trend: eps * t_drift(20 min) > -max_trend_t
    max_trend_t: Ratio = 2.5
    # minimum reward to risk
    min_rr: Ratio = 2.0
    # time stop, seconds
    time_stop_s: Secs = 900.0
    # without significant nodes, LVNs are the runs between two HVNs at most this many times the mean bin
    trough_ratio: Ratio = 0.5
    # LVN rejection: the mid penetrates the LVN's near edge by at most this many ticks ...
    lvn_penetration_ticks: Ticks = 2
    # ... and is back outside on the same side within this many seconds
    lvn_return_s: Secs = 10.0


class QueueImbalanceParams(_Params, frozen=True):
    """The plumbing example (off by default): trade toward a strong L1 queue imbalance."""

    # |QI| at least this
    threshold: Fraction = 0.8
    # spread at most this many ticks
    max_spread: Annotated[int, Meta(ge=1, le=10_000)] = 2
    # stop distance, ticks
    stop_ticks: Annotated[int, Meta(ge=1, le=10_000)] = 4
    # target = reward_ratio * stop distance
    reward_ratio: Ratio = 2.0
    # seconds between signals
    cooldown_s: Secs = 30.0
    # time stop, seconds
    time_stop_s: Secs = 60.0


class StrategiesConfig(_Params, frozen=True):
    enabled: list[StrategyName] = msgspec.field(default_factory=lambda: list(BUILTIN[:6]))
    common: CommonParams = CommonParams()
    confluence: ConfluenceParams = ConfluenceParams()
    sweep_reversal: SweepReversalParams = SweepReversalParams()
    stacked_absorption: StackedAbsorptionParams = StackedAbsorptionParams()
    iceberg_defense: IcebergDefenseParams = IcebergDefenseParams()
    vacuum_entry: VacuumEntryParams = VacuumEntryParams()
    mean_reversion: MeanReversionParams = MeanReversionParams()
    hvn_bounce: HvnBounceParams = HvnBounceParams()
    queue_imbalance: QueueImbalanceParams = QueueImbalanceParams()

    def __post_init__(self) -> None:
        check_distinct("enabled", self.enabled)
        for name in self.enabled:
            if ":" not in name and name not in BUILTIN:
                raise FieldError(f"Expected a built-in strategy ({', '.join(BUILTIN)}) or package.module:Class, "
                                 f"got {name!r}", "enabled")
