"""Detector parameters (the ``[detectors.*]`` tables of config.toml): SPEC section 2's thresholds,
each with a default and a range. The detectors (engine/detectors/) read them; they live beside the
rest of the configuration so that the config, a core, imports no detector.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class SweepParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of the sweep detector (SPEC F22)."""

    # Δt_sw: same-sign fills within this many ms of a burst's first fill belong to it
    window_ms: Annotated[float, Meta(gt=0, le=10_000)] = 50.0
    # k_lv: a burst that executed at this many distinct prices or more is a sweep
    min_levels: Annotated[int, Meta(ge=2, le=1_000)] = 2
    # a burst over at least this many prices whose volume exceeds the auto threshold is a sweep too
    volume_levels: Annotated[int, Meta(ge=2, le=1_000)] = 2
    # auto threshold = mean + threshold_k * std of the per-burst volume baseline
    threshold_k: Annotated[float, Meta(ge=0, le=20)] = 2.0
    # TF2 bars in the per-burst volume baseline (180 = 30 min)
    baseline_bars: Annotated[int, Meta(ge=1, le=100_000)] = 180
    # bursts the baseline must hold before it gives a threshold (fallback: level rule only)
    min_bursts: Annotated[int, Meta(ge=2, le=1_000_000)] = 20
    # True: a sweep needs min_levels prices AND a volume above the threshold (Bookmap's rule)
    require_volume: bool = False
    # True: fills that carry a match_id group by it (one aggressive order); the time window groups only
    # fills without one (SPEC F22: "match_id when available"); False: the window groups every fill
    group_by_match: bool = True


class TrappedParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of the trapped-volume detector (SPEC F23)."""

    # L_s: the reference R is the trade extreme of this many seconds before the sweep ...
    lookback_s: Annotated[float, Meta(gt=0, le=86_400)] = 900.0
    # ... leaving out the most recent seconds
    exclude_s: Annotated[float, Meta(ge=0, le=86_400)] = 30.0
    # R exists only once the window holds this many seconds of trading (not a few seconds of it)
    min_history_s: Annotated[float, Meta(ge=0, le=86_400)] = 30.0
    # T_f: aggressive volume beyond R counts from the sweep start for this long
    follow_s: Annotated[float, Meta(ge=0, le=3_600)] = 30.0
    # T_trap: the mid must return through R within this long after the sweep start
    trap_s: Annotated[float, Meta(gt=0, le=3_600)] = 60.0
    # ... and stay through R this long (a book refilling behind a sweep flickers through R)
    hold_s: Annotated[float, Meta(ge=0, le=3_600)] = 3.0
    # resolution of the reference extremes (per-bucket highs and lows), ms
    bucket_ms: Annotated[int, Meta(ge=1, le=60_000)] = 1_000
    # open episodes per direction (one per reference level); the oldest makes way
    max_episodes: Annotated[int, Meta(ge=1, le=64)] = 4


class VacuumParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of the vacuum detector and the void accumulator (SPEC F18)."""

    # N: bins (of the context's bin_ticks ticks; ticks on large-tick books) beyond the best
    bins: Annotated[int, Meta(ge=1, le=1_000)] = 10
    # Δt: the fall must happen within this many ms
    window_ms: Annotated[float, Meta(gt=0, le=60_000)] = 2_000.0
    # D_N must fall by at least this share of its maximum over the window
    min_drop: Annotated[float, Meta(gt=0, le=1)] = 0.5
    # cancelled / max(decrease, cancelled + executed) over the fall: at least this
    min_cancel_share: Annotated[float, Meta(ge=0, le=1)] = 0.7
    # D_N / median at most this afterwards
    max_depth_ratio: Annotated[float, Meta(ge=0, lt=1)] = 0.4
    # after a vacuum the side stays quiet this many ms, and the next fall is measured from depths seen after it
    refractory_ms: Annotated[float, Meta(ge=0, le=3_600_000)] = 2_000.0
    # TF2 samples of D_N in the running median (180 = 30 min)
    median_bars: Annotated[int, Meta(ge=1, le=100_000)] = 180
    # samples needed before the median is used (fallback: the median of those so far)
    min_median_bars: Annotated[int, Meta(ge=1, le=100_000)] = 3


class WallParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of the wall detector (SPEC F19)."""

    # N: bins from the best scanned per side
    levels: Annotated[int, Meta(ge=2, le=500)] = 20
    # k: a wall holds at least k times the median occupied bin
    k: Annotated[float, Meta(ge=1.0, le=1_000.0)] = 5.0
    # Q_abs: and at least this many lots (0: no absolute floor)
    min_lots: Annotated[int, Meta(ge=0)] = 0
    # and its robust z-score (q - median) / (1.4826 MAD) is at least this
    z_min: Annotated[float, Meta(ge=0.0, le=1_000.0)] = 3.0
    # a candidate becomes a wall after qualifying this long (spoof filter), milliseconds
    persist_ms: Annotated[int, Meta(ge=0, le=3_600_000)] = 2_000
    # occupied bins needed in the window before a median means anything
    min_levels: Annotated[int, Meta(ge=3, le=500)] = 3


class SpoofParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of the spoofing/layering detector."""

    # an order is large when its size exceeds this quantile of the recent add sizes
    large_quantile: Annotated[float, Meta(ge=0.5, le=1.0)] = 0.999
    # window of add sizes behind that quantile (the SPEC's W_base), seconds
    baseline_s: Annotated[int, Meta(ge=10, le=86_400)] = 1800
    # adds seen before the quantile is trusted
    min_adds: Annotated[int, Meta(ge=1, le=1_000_000)] = 500
    # large-order threshold (lots) until then; 0 = no detection until the baseline is ready
    fallback_lots: Annotated[int, Meta(ge=0)] = 0
    # placed at least this many bins behind the best of its side
    min_gap_bins: Annotated[int, Meta(ge=1, le=1_000)] = 1
    # removed at most this long after placement, milliseconds
    max_lifetime_ms: Annotated[int, Meta(ge=1, le=3_600_000)] = 90_000
    # share of the order that may have executed before the pull (0: clean spoofs only) ...
    max_fill_share: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.25
    # ... provided the pull came within this long of its last execution (pulled because it was hit), ms
    fill_pull_ms: Annotated[int, Meta(ge=0, le=60_000)] = 100
    # the side's best must have come at least one bin closer before the pull
    require_approach: bool = False
    # a layering episode has at least this many orders on adjacent prices
    layer_min_orders: Annotated[int, Meta(ge=2, le=100)] = 3
    # each layer is at least this share of the large-order threshold (their total at least all of it)
    layer_share: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.5
    # layers are placed within this long of one another, milliseconds
    layer_place_ms: Annotated[int, Meta(ge=0, le=600_000)] = 2_000
    # removals within this long of the first one were "cancelled together" (also the emission delay)
    layer_cancel_ms: Annotated[int, Meta(ge=0, le=60_000)] = 200


class WithdrawalParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of the quote-withdrawal detector."""

    # the touch: this many bins from the best (2: the best and best + 1)
    touch_bins: Annotated[int, Meta(ge=1, le=100)] = 2
    # touch cancels within this long of the first one form a cluster, milliseconds
    cancel_window_ms: Annotated[int, Meta(ge=1, le=60_000)] = 200
    # auto threshold on cluster sizes: mean + k * std over the baseline
    k: Annotated[float, Meta(ge=0.0, le=100.0)] = 3.0
    # window of cluster sizes behind that threshold (the SPEC's W_base), seconds
    baseline_s: Annotated[int, Meta(ge=10, le=86_400)] = 1800
    # clusters seen before the auto threshold is trusted
    min_clusters: Annotated[int, Meta(ge=1, le=1_000_000)] = 50
    # burst threshold (lots) until then; 0 = no detection until the baseline is ready
    fallback_lots: Annotated[int, Meta(ge=0)] = 0
    # a burst also removes at least this share of the touch depth it started from
    min_share: Annotated[float, Meta(ge=0.0, le=100.0)] = 1.0
    # and moves the side's best away by at least this many bins (the touch is gone, not just thinned)
    min_retreat_bins: Annotated[int, Meta(ge=0, le=100)] = 2
    # the aggressive flow must arrive within this long of the burst's last cancel, milliseconds
    follow_ms: Annotated[int, Meta(ge=1, le=60_000)] = 2_000
    # lots traded aggressively through the withdrawn side that make the flow
    min_flow_lots: Annotated[int, Meta(ge=1)] = 1
    # L2 only: trades at a price this recent explain a size decrease there, milliseconds
    l2_trade_ms: Annotated[int, Meta(ge=0, le=10_000)] = 5


class IcebergParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of F21 (defaults from SPEC section 2)."""

    # a depletion leaves at most this share of the pre-trade displayed size at p
    depletion_frac: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.10
    # delta: a refill (or an L3 chained order) must arrive within this many ms of the depletion
    refill_ms: Annotated[float, Meta(gt=0.0, le=10_000.0)] = 50.0
    # a refill's size is within +- this share of the median refill so far
    refill_band: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.25
    # L3: the chained order's size is within +- this share of the fully executed order's
    chain_band: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.10
    # significance level of the Binomial replenishment test
    alpha: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.01
    # fewest refills (or chain links) for an event
    min_refills: Annotated[int, Meta(ge=2, le=1000)] = 3
    # smallest estimated peak (lots) an event may have: one-lot refills are not tested
    min_peak: Annotated[int, Meta(ge=1, le=1_000_000)] = 2
    # trailing window of the null estimates (answer chance, answer sizes' span, hidden rate), seconds
    null_window_s: Annotated[float, Meta(gt=0.0, le=86_400.0)] = 1800.0
    # number of recent answering arrivals behind pi_size
    size_sample: Annotated[int, Meta(ge=16, le=1_000_000)] = 4096
    # an episode without depletion, refill or link for this long is dropped, seconds
    idle_s: Annotated[float, Meta(gt=0.0, le=86_400.0)] = 60.0
    # hidden executions at one price with gaps up to this many seconds form a run
    hidden_gap_s: Annotated[float, Meta(gt=0.0, le=3600.0)] = 5.0
    # a hidden run emits from this execution on
    hidden_min_execs: Annotated[int, Meta(ge=1, le=1000)] = 2
    # most (side, price) episodes kept; the stalest is evicted beyond it
    max_levels: Annotated[int, Meta(ge=4, le=100_000)] = 256


class AbsorptionParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds of F20 (defaults from SPEC section 2)."""

    # W: the window of executions at one price, seconds
    window_s: Annotated[float, Meta(gt=0.0, le=600.0)] = 5.0
    # T_hold: p must not be traded through for this long after the crossing execution, seconds
    hold_s: Annotated[float, Meta(ge=0.0, le=600.0)] = 2.0
    # k of the auto threshold mean + k std
    k: Annotated[float, Meta(ge=0.0, le=20.0)] = 2.0
    # the baseline's trailing window, seconds (30 min of TF2 closes, two samples per close)
    baseline_s: Annotated[float, Meta(ge=20.0, le=86_400.0)] = 1800.0
    # samples before the auto threshold is used
    min_samples: Annotated[int, Meta(ge=2, le=100_000)] = 30
    # before that, the same mean + k std over the samples seen so far, once there are this many
    fallback_min_samples: Annotated[int, Meta(ge=2, le=100_000)] = 6
    # an event needs volume / (D0 + 1) at least this: more traded than was displayed (0 = SPEC)
    min_refill_ratio: Annotated[float, Meta(ge=0.0, le=1000.0)] = 1.0
    # stacked: events within this many bins of each other
    stack_bins: Annotated[int, Meta(ge=0, le=1000)] = 3
    # stacked: events within this many seconds
    stack_window_s: Annotated[float, Meta(gt=0.0, le=3600.0)] = 60.0
    # stacked: fewest events
    stack_min: Annotated[int, Meta(ge=2, le=100)] = 2
    # stacked: fewest distinct prices among them (1: repeated events at one price stack too)
    stack_prices: Annotated[int, Meta(ge=1, le=100)] = 1
    # p is broken once the own best has stayed beyond it this long, ms (an iceberg's refill gap)
    grace_ms: Annotated[float, Meta(ge=0.0, le=10_000.0)] = 50.0
    # most prices watched per side (the one with the oldest execution is dropped beyond it)
    max_levels: Annotated[int, Meta(ge=1, le=1000)] = 16


DetectorName = Literal["iceberg", "absorption", "sweep", "trapped", "vacuum", "walls", "spoofing", "withdrawal"]
ALL_DETECTORS: tuple[DetectorName, ...] = ("iceberg", "absorption", "sweep", "trapped", "vacuum", "walls", "spoofing",
                                  "withdrawal")


class DetectorsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which detectors run in every market stage, and each one's thresholds."""

    enabled: list[DetectorName] = msgspec.field(default_factory=lambda: list(ALL_DETECTORS))
    # w: ticks per bin of the per-price statistics; 0: by the instrument's profile (small_tick 10, else 1)
    bin_ticks: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    iceberg: IcebergParams = IcebergParams()
    absorption: AbsorptionParams = AbsorptionParams()
    sweep: SweepParams = SweepParams()
    trapped: TrappedParams = TrappedParams()
    vacuum: VacuumParams = VacuumParams()
    walls: WallParams = WallParams()
    spoofing: SpoofParams = SpoofParams()
    withdrawal: WithdrawalParams = WithdrawalParams()
