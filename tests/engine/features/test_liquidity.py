"""F16 book slope and asymmetry, F17 liquidity cost, effective spread, sweeps and resiliency: hand
examples, naive recomputations, and the AMZN day's share of multi-level orders from SPEC."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import OrderBook
from engine.events import BUY, SELL, OrderAdd, OrderExecute, Trade
from engine.features.bars import TF2
from engine.features.liquidity import BookSlope, BookSlopeParams, LiquidityFlow
from engine.testing import EventBuilder, instrument, run_market
from tests.engine.features.conftest import NS, STEPS, make_sample, market_events

INST = instrument(1, "TEST")


def test_slopes_and_asymmetry_of_a_hand_book():
    """Bids 100x10, 99x20 and asks 102x5, 104x40 with N = 3: S_b = 160/14, S_a = 150/14, asymmetry 10/310."""
    feature = BookSlope(BookSlopeParams(slope_bins=3))
    feature.on_sample(make_sample(1, bids=((100, 10), (99, 20)), asks=((102, 5), (104, 40))))
    values = feature.values()
    assert values["book_slope_bid"] == pytest.approx(160 / 14)
    assert values["book_slope_ask"] == pytest.approx(150 / 14)
    assert values["book_asymmetry"] == pytest.approx(10 / 310)


def test_cost_walks_the_book_and_says_when_the_view_runs_out():
    """Asks 101x5, 102x10 over bid 100, median order 5 lots: 1x costs 0.5 tick; 5x (25 lots) 1.3 ticks, 60 % covered."""
    feature = BookSlope()
    feature.on_sample(make_sample(1, bids=((100, 50),), asks=((101, 5), (102, 10)), flow={"median_trade_size": 5}))
    values = feature.values()
    assert values["cost_1x_buy"] == pytest.approx(0.5) and values["cost_1x_buy_covered"] == 1.0
    assert values["cost_5x_buy"] == pytest.approx(1.3) and values["cost_5x_buy_covered"] == pytest.approx(0.6)
    assert values["cost_5x_sell"] == pytest.approx(0.5) and values["cost_ready"] == 1.0


def test_cost_is_not_ready_without_a_usable_book_or_an_order_size():
    """A one-sided book, or no median order size yet: costs 0 and cost_ready 0."""
    feature = BookSlope()
    feature.on_sample(make_sample(1, bid=None, flow={"median_trade_size": 5}))
    assert feature.values()["cost_ready"] == 0.0 and feature.values()["cost_1x_buy"] == 0.0
    feature.on_sample(make_sample(2))
    assert feature.values()["cost_ready"] == 0.0


def lobster_like_sweep(e: EventBuilder) -> list:
    """A buy order taking ask 101 (5 lots) then 102 (5 lots): executions before each print, one instant."""
    step, e.step_ns = e.step_ns, 0
    out = [e(OrderExecute, 2, SELL, 101, 5, last=False), e(Trade, 101, 5, BUY),
           e(OrderExecute, 3, SELL, 102, 5, last=False), e(Trade, 102, 5, BUY)]
    e.step_ns = step
    return out


def test_a_two_level_buy_is_a_sweep_with_its_effective_spread():
    """Mid 100.5 before the order, fills 5 @ 101 and 5 @ 102 (VWAP 101.5): effective spread 2 ticks, one sweep."""
    e = EventBuilder(instrument_id=1, ts=NS // 2)
    events = [e(OrderAdd, 1, BUY, 100, 50), e(OrderAdd, 2, SELL, 101, 5), e(OrderAdd, 3, SELL, 102, 5),
              e(OrderAdd, 4, SELL, 104, 9), *lobster_like_sweep(e)]
    market, _ = run_market(INST, events, lambda c: LiquidityFlow(c.book))
    values = market.accumulators[0].values(e.ts)
    assert values["effective_spread"] == pytest.approx(2.0)
    assert (values["sweeps"], values["sweep_share"]) == (1.0, 1.0)


def test_the_mid_before_a_sell_that_emptied_the_best_bid_is_rebuilt():
    """The execution removes the whole 100 bid before the print (as LOBSTER orders them): the pre-trade mid is
    still (100 + 102) / 2, so selling at 100 has an effective spread of 2 ticks."""
    e = EventBuilder(instrument_id=1, ts=NS // 2)
    events = [e(OrderAdd, 1, BUY, 100, 5), e(OrderAdd, 2, BUY, 98, 5), e(OrderAdd, 3, SELL, 102, 5),
              e(OrderExecute, 1, BUY, 100, 5, last=False), e(Trade, 100, 5, SELL)]
    market, _ = run_market(INST, events, lambda c: LiquidityFlow(c.book))
    assert market.book.best_bid == 98
    assert market.accumulators[0].values(e.ts)["effective_spread"] == pytest.approx(2.0)


def test_resiliency_is_the_time_back_to_the_median_spread():
    """Spread 1 at three TF2 closes; a sweep leaves 4 (excess 3); 2 at +1 s halves the excess, 1 at +2 s recovers."""
    e = EventBuilder(instrument_id=1, ts=NS // 2)
    events = [e(OrderAdd, 1, BUY, 100, 50), e(OrderAdd, 2, SELL, 101, 5), e(OrderAdd, 3, SELL, 102, 5),
              e(OrderAdd, 4, SELL, 104, 9)]
    e.ts = 31 * NS
    events += lobster_like_sweep(e)
    for t, price in ((31.5, 103), (32.0, 102), (33.0, 101)):
        e.ts = round(t * NS)
        events.append(e(OrderAdd, 10 + price, SELL, price, 5))
    e.ts = 40 * NS
    events.append(e(OrderAdd, 99, BUY, 90, 1))
    market, samples = run_market(INST, events, lambda c: LiquidityFlow(c.book))
    values = samples[-1].flow
    assert values["spread_median"] == 1.0
    assert values["resiliency_s"] == pytest.approx(2.0) and values["resiliency_half_s"] == pytest.approx(1.0)
    assert values["resiliency_ready"] == 1.0


def naive_orders(events: list) -> list[dict]:
    """Aggressive orders of ``events``: fills grouped by (match id, sign), with the mid before the first fill
    from a separate book."""
    book = OrderBook(1)
    orders: list[dict] = []
    for ev in events:
        if type(ev) is Trade:
            key = (ev.match_id, ev.aggressor)
            if not orders or orders[-1]["key"] != key:
                bid, ask = book.best_bid, book.best_ask
                mid2 = bid + ask if bid is not None and ask is not None and bid < ask else None
                orders.append({"key": key, "size": 0, "prices": set(), "mid2": mid2, "notional": 0,
                               "sign": ev.aggressor})
            order = orders[-1]
            order["size"] += ev.size
            order["notional"] += ev.price * ev.size
            if not ev.hidden:
                order["prices"].add(ev.price)
        book.update(ev)
    return orders


@settings(max_examples=40, deadline=None)
@given(STEPS)
def test_order_sizes_effective_spread_and_sweeps_equal_a_naive_recount(steps):
    """At every TF2 close the median order size, the last effective spread and the sweep count equal a recount
    from the events before the close (orders grouped by match id, pre-order mid from a separate book)."""
    events = market_events(steps)
    _, samples = run_market(INST, events, lambda c: LiquidityFlow(c.book))
    for sample in samples:
        if not sample.frames & TF2:
            continue
        orders = naive_orders([ev for ev in events if ev.ts_recv < sample.ts_recv])
        complete = [o["size"] for o in orders[:-1]]  # an order is complete once the next one started
        assert sample.flow["median_trade_size"] == (float(np.median(complete)) if complete else 0.0)
        assert sample.flow["sweeps"] == sum(1 for o in orders if len(o["prices"]) >= 2)
        priced = [o for o in orders if o["mid2"] is not None]
        if priced:
            last = priced[-1]
            expected = last["sign"] * (2 * last["notional"] / last["size"] - last["mid2"])
            assert sample.flow["effective_spread"] == pytest.approx(expected)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 30)), min_size=1, max_size=10),
       st.lists(st.tuples(st.integers(1, 4), st.integers(1, 30)), min_size=1, max_size=10),
       st.integers(1, 3), st.integers(1, 6), st.integers(1, 40))
def test_slope_and_cost_equal_a_naive_recount(bid_gaps, ask_gaps, width, bins, unit):
    """Slopes from explicit cumulative depths C(k) and costs from a lot-by-lot walk equal the feature's."""
    bids, asks, price = [], [], 1000
    for gap, size in bid_gaps:
        price -= gap
        bids.append((price, size))
    price = 1001
    for gap, size in ask_gaps:
        asks.append((price, size))
        price += gap
    bids = [(p + bid_gaps[0][0], q) for p, q in bids]  # best bid at 1000
    feature = BookSlope(BookSlopeParams(slope_bins=bins, bin_ticks=width, cost_multiples=(1, 3)))
    feature.on_sample(make_sample(1, bids=tuple(bids), asks=tuple(asks), flow={"median_trade_size": unit}))
    values = feature.values()
    for side, levels, name in ((-1, bids, "bid"), (1, asks, "ask")):
        best = levels[0][0]
        cumulative = [sum(q for p, q in levels if (p - best) * side < k * width) for k in range(1, bins + 1)]
        expected = sum(k * c for k, c in zip(range(1, bins + 1), cumulative, strict=True)) / sum(
            k * k for k in range(1, bins + 1)) / width
        assert values[f"book_slope_{name}"] == pytest.approx(expected)
    mid = (bids[0][0] + asks[0][0]) / 2
    for multiple in (1, 3):
        quantity = multiple * unit
        lots = [p for p, q in asks for _ in range(q)][:quantity]
        lots += [asks[-1][0]] * (quantity - len(lots))
        assert values[f"cost_{multiple}x_buy"] == pytest.approx(np.mean(lots) - mid)
        visible = min(quantity, sum(q for _, q in asks))
        assert values[f"cost_{multiple}x_buy_covered"] == pytest.approx(visible / quantity)


def test_amzn_day_sweep_share_is_spec_s_four_and_a_half_percent(amzn_day):
    """SPEC F22: 4.5 % of the aggregated market orders touched more than one price on the AMZN day.

    Exact up to the order grouping: SPEC groups visible executions by instant and sign, as we do, so
    the share must match to the printed digit (297 of 6,591 orders here).
    """
    assert amzn_day.last["sweep_share"] == pytest.approx(0.045, abs=0.0005)
    assert amzn_day.last["median_trade_size"] > 0 and amzn_day.last["cost_5x_buy"] > 0
