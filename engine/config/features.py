"""Feature parameters (the ``[features.*]`` tables of config.toml): SPEC section 2's windows and
constants of the per-sample features and their accumulators, each with a default and a range. The
features (engine/features/) read them; they live beside the rest of the configuration so that the
config, a core, imports no feature module.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from engine.config.ranges import AtLeastOne, Count, FieldError, OpenShare, Positive, Seconds, Share

Span = Annotated[int, Meta(ge=1, le=86_400)]  # whole seconds, at most a day
TF2_S = 10  # seconds in a TF2 bar


class OfiBiasParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F7."""

    half_life_bars: Positive = 10.0  # h: half-life of the EMA of sign(OFI_1s), in TF1 bars
    persistence_bars: Count = 30  # persistence: share of this many last TF1 bars with the current sign
    windows_s: Annotated[tuple[Annotated[int, Meta(ge=1)], ...], Meta(min_length=1)] = (
        1, 10, 60)  # OFI windows scored, seconds (ofi_{W}s must be in the flow)
    baseline_samples: Count = 180  # W_base: TF2 samples in the baseline (30 min)
    baseline_min_samples: Count = 30  # z is 0 until the baseline holds this many
    sigma_floor: Positive = 1.0  # floor of the baseline std, lots (z = (x - mean) / max(std, floor))


class VolatilityParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F10 realised volatility."""

    horizons_s: Annotated[tuple[Span, ...], Meta(min_length=1)] = (1, 10, 60)  # return horizons h, whole seconds
    windows_s: Annotated[tuple[Span, ...], Meta(min_length=1)] = (300, 3600)  # windows W, multiples of every h
    ewma_half_life_s: Seconds = 300.0  # half-life of the EWMA of r^2
    sigma1_horizon_s: Span = 60  # sigma1 = rv at this horizon (one of horizons_s) * sqrt(it)
    sigma1_window_s: Span = 3600  # ... over this window (one of windows_s)
    ratio_windows_s: Annotated[tuple[tuple[Span, Span], ...], Meta(max_length=8)] = (
        (300, 3600), (60, 1800))  # VR pairs (short, long) on the shortest horizon
    jump_sigmas: Positive = 4.0  # a jump: |r| above this many sigma of the shortest horizon
    jump_window_s: Span = 300  # jump_count counts jumps over this trailing window
    shock_sigmas: Positive = 6.0  # shock_jump_count: |r| above this many sigma...
    shock_window_s: Span = 60  # ... over this trailing window
    jump_sigma_window_s: Span = 3600  # sigma of a jump test: rms of the returns over this window before it
    min_returns: Count = 5  # a window with fewer returns reports 0 (and the jump test needs 12x this)

    def __post_init__(self) -> None:
        for window in (*self.windows_s, self.sigma1_window_s):
            for h in self.horizons_s:
                if window % h:
                    raise FieldError(f"window {window} s is not a multiple of the horizon {h} s", "windows_s")
        if self.sigma1_horizon_s not in self.horizons_s:
            raise FieldError("sigma1_horizon_s must be one of horizons_s", "sigma1_horizon_s")
        if self.sigma1_window_s not in self.windows_s:
            raise FieldError("sigma1_window_s must be one of windows_s", "sigma1_window_s")
        for short, long in self.ratio_windows_s:
            if short >= long:
                raise FieldError(f"ratio window ({short}, {long}): the short window must be shorter", "ratio_windows_s")


class VolumeAccelerationParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F12."""

    short_s: Count = 30  # the recent window, whole seconds
    long_s: Count = 300  # the reference window, whole seconds (longer than short_s)
    zero_floor_lots: Positive = 0.5  # V_short is floored at this many lots so the log stays finite

    def __post_init__(self) -> None:
        if self.short_s >= self.long_s:
            raise FieldError("short_s must be shorter than long_s", "short_s")


class TradeIntensityParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F11."""

    window_s: Count = 10  # W: aggressive orders counted over the last W seconds (whole TF1 bars)
    ewma_half_life_s: Seconds = 10.0  # half-life of the EWMA of the per-second counts
    baseline_samples: Count = 180  # W_base: TF2 samples in the z baseline (30 min)
    baseline_min_samples: Count = 30  # z is 0 until the baseline holds this many
    sigma_floor: Positive = 0.01  # floor of the baseline std, orders per second


class TrendParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F13."""

    windows_s: Annotated[tuple[Annotated[int, Meta(ge=30, le=86_400)], ...], Meta(min_length=1)] = (
        300, 1200)  # W of t_drift, ER and the OLS t, whole multiples of the 10 s TF2 bar
    tf_bars: Annotated[int, Meta(ge=3, le=10_000)] = 30  # t_drift per timeframe over this many bars of each
    sigma_floor_ticks: Positive = 0.05  # floor of the std of mid changes (and of OLS residuals), ticks

    def __post_init__(self) -> None:
        for window in self.windows_s:
            if window % TF2_S:
                raise FieldError(f"window {window} s is not a whole number of 10 s bars", "windows_s")


class ImpactParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F14."""

    bars: Count = 60  # N: TF2 bars in the rolling regression and in the Amihud mean
    baseline_samples: Count = 180  # W_base: TF2 samples in the baseline of lambda (30 min)
    baseline_min_samples: Count = 30  # kyle_lambda_z is 0 until the baseline holds this many
    sigma_floor: Positive = 1e-6  # floor of the baseline std of lambda, ticks per lot


class BookSlopeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F16 and the book side of F17."""

    slope_bins: Count = 10  # N: cumulative depth within k = 1..N bins of the best
    bin_ticks: Count = 1  # w: ticks per bin (large tick 1; small tick about the median spread)
    cost_multiples: Annotated[tuple[Annotated[int, Meta(ge=1, le=1000)], ...], Meta(min_length=1)] = (
        1, 5)  # Q = these multiples of the median aggressive order size


class LiquidityFlowParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of the trade side of F17."""

    median_window_s: Seconds = 1800.0  # median order size and median spread over this trailing window (30 min)
    sweep_levels: Annotated[int, Meta(ge=2, le=100)] = 2  # a sweep fills at this many distinct prices or more


class VpinParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F15."""

    buckets: Count = 50  # n: complete buckets in the VPIN sum
    buckets_per_day: Count = 50  # V_B = mean daily volume / this
    daily_volume: Annotated[int, Meta(ge=0)] = 0  # mean daily volume in lots; 0: estimated causally
    session_s: Seconds = 23_400.0  # trading-day length the running volume rate is extrapolated to (6.5 h)
    min_elapsed_s: Seconds = 300.0  # the running rate divides by at least this much time
    min_bucket_lots: Count = 100  # floor of an estimated V_B


class VolumeProfileParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F24."""

    bin_ticks: Annotated[int, Meta(ge=0, le=1_000_000)] = 0  # w in ticks; 0: from the first minutes' median spread
    bin_warmup_s: Seconds = 300.0  # the median spread of the TF1 closes over this first stretch fixes w
    rolling_s: Seconds = 7200.0  # window of the rolling profile (2 h)
    value_area_share: OpenShare = 0.70  # the value area holds at least this share of the volume
    bandwidth_bins: Positive = 3.0  # h: bandwidth of the Gaussian kernel of the node test, bins
    kernel_reach: Positive = 3.0  # the kernel spans |k - j| <= kernel_reach * h bins
    alpha: OpenShare = 0.01  # one-sided level of the node test, Benjamini-Hochberg over bins
    hvn_extent: Share = 0.5  # an HVN extends while the smoothed profile stays >= this share of its peak
    lvn_extent: AtLeastOne = 1.5  # an LVN extends while the smoothed profile stays <= this times its trough
    min_trades: Count = 100  # no node is tested in a profile of fewer trades
    node_every_s: Annotated[int, Meta(ge=10, le=86_400)] = 60  # node test at the TF2 closes on multiples of this, s


class StructureParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of F25."""

    swings_kept: Count = 5  # K: swings kept per side
    bar_s: Count = 10  # bar length of the fractal rule, whole seconds (TF2)
