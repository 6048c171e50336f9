"""Every feature family of this package together: finite on empty, one-sided, crossed, halted and stale
books; identical for any batch size; causal (a tape cut at any event gives the prefix of the full
run's values); finite over the whole AMZN day with stable names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import CROSSED, HALTED, STALE
from engine.events import BUY, SELL, Clock, MarketState, OrderAdd, OrderDelete, Status, Trade
from engine.features.activity import TradeIntensity, VolumeAcceleration
from engine.features.flow import TradeFlow
from engine.features.impact import PriceImpact
from engine.features.liquidity import BookSlope, LiquidityFlow
from engine.features.ofi import OrderFlowImbalance
from engine.features.ofi_bias import OfiBias
from engine.features.profile import VolumeProfile, VolumeProfileParams
from engine.features.structure import SwingStructure
from engine.features.trend import TrendParams, TrendStrength
from engine.features.volatility import RealisedVolatility, VolatilityParams
from engine.features.vpin import Vpin, VpinParams
from engine.testing import EventBuilder, instrument, run_market
from tests.engine.features.conftest import NS, STEPS, assert_finite, make_sample, market_events

INST = instrument(1, "TEST")
ACCUMULATORS = (lambda c: TradeFlow(), lambda c: OrderFlowImbalance(c.book),
                lambda c: Vpin(VpinParams(daily_volume=2_000)),
                lambda c: LiquidityFlow(c.book), lambda c: VolumeProfile(c.book, VolumeProfileParams(bin_warmup_s=5.0)),
                lambda c: SwingStructure(c.book))
SHORT_VOL = VolatilityParams(horizons_s=(1, 10), windows_s=(20, 60), sigma1_horizon_s=10, sigma1_window_s=60,
                             ratio_windows_s=((20, 60),), jump_sigma_window_s=60, jump_window_s=20, shock_window_s=10,
                             min_returns=2)


def sample_features():
    return [RealisedVolatility(SHORT_VOL), OfiBias(), TradeIntensity(), VolumeAcceleration(),
            TrendStrength(TrendParams(windows_s=(30,), tf_bars=3)), PriceImpact(), BookSlope()]


def everything(samples) -> list[dict[str, float]]:
    """Per sample: the accumulators' values and every per-sample feature's."""
    features = sample_features()
    out = []
    for sample in samples:
        values = dict(sample.flow)
        for feature in features:
            feature.on_sample(sample)
            values.update(feature.values())
        out.append(values)
    return out


def troubled_tape() -> list:
    """Empty book, then one-sided, trades into a one-sided book, a crossed book, a halt and a sequence gap."""
    e = EventBuilder(instrument_id=1, ts=NS // 2, step_ns=400_000_000)
    events = [e(Clock), e(Clock), e(Trade, 1000, 5, BUY, 1, 1)]  # empty book, a trade into nothing
    events += [e(OrderAdd, 1, BUY, 1000, 10), e(Clock), e(Trade, 1000, 3, SELL, 2, 2)]  # one-sided
    events += [e(OrderAdd, 2, SELL, 1003, 10), e(Trade, 1003, 12, BUY, 3, 3), e(OrderAdd, 3, SELL, 999, 4)]  # crossed
    events += [e(OrderDelete, 3, SELL, 999), e(Status, MarketState.HALTED), e(Clock), e(Clock)]
    events += [e(Status, MarketState.OPEN), e(OrderAdd, 4, SELL, 1002, 7)]
    e.seq += 3  # a gap: STALE from here on
    events += [e(OrderAdd, 5, BUY, 1001, 2), e(Trade, 1002, 1, BUY, 4, 4)]
    for _ in range(60):
        events.append(e(Clock))
    return events


def test_every_value_is_finite_through_empty_one_sided_crossed_halted_and_stale_books():
    """The troubled tape shows every state bit, and no value of any family is ever NaN or inf."""
    _, samples = run_market(INST, troubled_tape(), *ACCUMULATORS)
    states = {sample.view.state for sample in samples}
    assert {CROSSED & s for s in states} >= {CROSSED} and any(s & HALTED for s in states)
    assert any(s & STALE for s in states)
    assert any(not s.view.bid_px and not s.view.ask_px for s in samples)
    for values in everything(samples):
        assert_finite(values)


def test_per_sample_features_are_finite_on_views_without_a_book():
    """Samples with an empty view, one side only, or a crossed touch (and no flow at all) give finite zeros."""
    views = [make_sample(1, bid=None, ask=None), make_sample(2, ask=None), make_sample(3, bid=None),
             make_sample(10, bid=1003, ask=1002, state=CROSSED), make_sample(11, state=STALE | HALTED)]
    for values in everything(views):
        assert_finite(values)


@settings(max_examples=25, deadline=None)
@given(STEPS, st.integers(1, 9))
def test_values_are_identical_for_any_batch_size(steps, batch_size):
    """Batches of one event, of a few, or the whole tape give the same samples and the same values."""
    events = market_events(steps)
    _, whole = run_market(INST, events, *ACCUMULATORS)
    _, batched = run_market(INST, events, *ACCUMULATORS, batch_size=batch_size)
    assert [s.ts_recv for s in batched] == [s.ts_recv for s in whole]
    assert everything(batched) == everything(whole)


@settings(max_examples=25, deadline=None)
@given(STEPS, st.floats(0.0, 1.0))
def test_a_tape_cut_at_any_event_gives_the_prefix_of_the_full_run(steps, where):
    """Nothing reads the future: the values of a tape cut after event k equal the full run's up to there."""
    events = market_events(steps)
    cut = round(where * len(events))
    _, full = run_market(INST, events, *ACCUMULATORS)
    _, prefix = run_market(INST, events[:cut], *ACCUMULATORS)
    assert everything(prefix) == everything(full)[: len(prefix)]


def test_amzn_day_every_value_is_finite_under_stable_names(amzn_day):
    """Over the whole AMZN day (23,399 samples) no value of any family is NaN or inf, and every name is there."""
    assert amzn_day.samples > 23_000
    assert amzn_day.non_finite == {}
    expected = {"ofi_bias", "ofi_persistence", "ofi_z_1s", "ofi_z_10s", "ofi_z_60s", "rv_1s_5m", "rv_bps_60s_60m",
                "rv_ewma_1s", "sigma1", "vol_ratio_5m_60m", "vol_ratio_1m_30m", "jump_count", "shock_jump_count",
                "trade_intensity", "trade_intensity_ewma", "trade_intensity_z", "log_volume_accel", "t_drift_5m",
                "t_drift_20m", "efficiency_ratio_20m", "trend_t_20m", "t_drift_tf1", "t_drift_tf2", "t_drift_tf3",
                "kyle_lambda", "kyle_lambda_z", "amihud", "vpin", "vpin_ready", "book_slope_bid", "book_asymmetry",
                "cost_1x_buy", "cost_5x_sell", "effective_spread", "median_trade_size", "resiliency_s",
                "profile_poc", "profile_vah", "profile_val", "profile_in_value_area", "profile_2h_hvn_above_dist",
                "profile_lvn_below", "swing_high_1", "swing_low_dist", "session_high", "prior_day_low"}
    assert expected <= amzn_day.keys
    last = amzn_day.last
    for flag in ("rv_ready_5m", "rv_ready_60m", "sigma1_ready", "ofi_z_ready", "trade_intensity_ready",
                 "volume_accel_ready", "trend_ready_20m", "kyle_lambda_ready", "vpin_ready", "cost_ready",
                 "profile_ready", "profile_2h_ready"):
        assert last[flag] == 1.0, flag
