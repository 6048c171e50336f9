"""F15 VPIN: exact bucket splitting by hand, the causal bucket size, bulk classification of unsided
trades, and a per-lot naive recount on random trades."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import BUY, NO_SIDE, SELL, Trade
from engine.features.vpin import Vpin, VpinParams
from engine.testing import EventBuilder

NS = 1_000_000_000
HUNDRED = VpinParams(buckets=3, daily_volume=5_000, buckets_per_day=50)  # V_B = 100 lots


def trade(e: EventBuilder, sign: int, size: int, price: int = 1000) -> Trade:
    return e(Trade, price, size, sign, 0, 0)


def test_trades_split_exactly_across_bucket_boundaries():
    """Buy 150, sell 100, buy 50 fill buckets (B100), (B50 S50), (S50 B50): VPIN 100/300; then B100, S100: 200/300."""
    e, vpin = EventBuilder(instrument_id=1), Vpin(HUNDRED)
    for sign, size in ((BUY, 150), (SELL, 100), (BUY, 50)):
        vpin.on_trade(trade(e, sign, size))
    assert vpin.values(e.ts)["vpin"] == pytest.approx(1 / 3)
    assert vpin.values(e.ts)["vpin_ready"] == 1.0
    for sign, size in ((BUY, 100), (SELL, 100)):
        vpin.on_trade(trade(e, sign, size))
    assert vpin.values(e.ts)["vpin"] == pytest.approx(2 / 3)
    assert vpin.values(e.ts)["vpin_buckets"] == 5.0


def test_one_trade_larger_than_several_buckets_fills_them_all():
    """A 350-lot buy fills three 100-lot buckets and leaves 50 in the open one."""
    e, vpin = EventBuilder(instrument_id=1), Vpin(HUNDRED)
    vpin.on_trade(trade(e, BUY, 350))
    values = vpin.values(e.ts)
    assert (values["vpin"], values["vpin_buckets"]) == (1.0, 3.0)
    assert vpin.filled == 50


def test_causal_bucket_size_extrapolates_the_volume_rate_with_a_floor():
    """First bucket at the 100-lot floor; the next from 100 lots over the minimum 300 s: 100/300 x 23,400/50 = 156."""
    e, vpin = EventBuilder(instrument_id=1), Vpin(VpinParams())
    vpin.on_trade(trade(e, BUY, 130))
    assert vpin.values(e.ts)["vpin_bucket_volume"] == 156.0
    e.ts += 600 * NS  # 126 lots complete the second bucket; 256 lots over 600 s size the third: 256/600 x 468 = 199.7
    vpin.on_trade(trade(e, SELL, 126))
    vpin.on_trade(trade(e, SELL, 1))
    assert vpin.values(e.ts)["vpin_bucket_volume"] == 200.0


def test_unsided_volume_is_split_by_bulk_classification():
    """Four unsided 100-lot buckets closing at 100, 101, 100, 102: the last move (+2, sigma 1) buys Phi(2) of it."""
    e, vpin = EventBuilder(instrument_id=1), Vpin(VpinParams(buckets=4, daily_volume=5_000, buckets_per_day=50))
    for price in (100, 101, 100, 102):
        vpin.on_trade(trade(e, NO_SIDE, 100, price))
    assert vpin.values(e.ts)["vpin"] == pytest.approx(0.23862493402591042)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 60)), min_size=1, max_size=80),
       st.integers(5, 40), st.integers(1, 6))
def test_vpin_equals_a_per_lot_recount(trades, bucket, n):
    """After every trade VPIN equals the mean |buy - sell| / V_B over the last n complete buckets of a
    lot-by-lot expansion of the trades."""
    e = EventBuilder(instrument_id=1)
    vpin = Vpin(VpinParams(buckets=n, daily_volume=bucket * 50, buckets_per_day=50))
    lots: list[int] = []
    for sign, size in trades:
        vpin.on_trade(trade(e, sign, size))
        lots += [sign] * size
        complete = [lots[k:k + bucket] for k in range(0, len(lots) - bucket + 1, bucket)][-n:]
        expected = sum(abs(sum(b)) for b in complete) / (bucket * len(complete)) if complete else 0.0
        assert vpin.values(e.ts)["vpin"] == pytest.approx(expected)
        assert vpin.values(e.ts)["vpin_ready"] == (1.0 if len(lots) // bucket >= n else 0.0)
