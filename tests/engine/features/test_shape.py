"""Book shape at a sample (F1-F4) and the feature stage that assembles the vector."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import BookView, OrderBook
from engine.events import BUY, SELL, OrderAdd, OrderCancel, Trade
from engine.features.engine import FeatureEngine
from engine.features.flow import TradeFlow
from engine.features.microprice import MicropriceTable
from engine.features.sample import Sample
from engine.features.shape import BookShape, SpreadTime
from engine.testing import EventBuilder, instrument, run_market

NS = 1_000_000_000


def sample(bids=(), asks=(), depth=((), ()), flow=None) -> Sample:
    view = BookView(0, NS, NS, 1, 0, tuple(p for p, _ in bids), tuple(q for _, q in bids),
                    tuple(p for p, _ in asks), tuple(q for _, q in asks), *depth)
    return Sample(0, NS, 1, 1, view, flow or {})


def shape_of(s: Sample, **kwargs) -> dict[str, float]:
    shape = BookShape(depth_ticks=(5, 10), **kwargs)
    shape.on_sample(s)
    return shape.values()


def test_spec_f2_example_qi_one_half_and_weighted_mid():
    """qb = 300, qa = 100: QI = 0.5, weighted mid b + s * 0.75, lean of the fallback 0.25 * s."""
    v = shape_of(sample(bids=[(1000, 300)], asks=[(1004, 100)]))
    assert v["queue_imbalance"] == 0.5 and v["weighted_mid"] == 1003.0
    assert (v["best_bid"], v["best_ask"], v["spread"], v["mid"]) == (1000, 1004, 4, 1002.0)
    assert v["micro_lean"] == 1.0 and v["micro_from_table"] == 0.0
    assert v["spread_bps"] == pytest.approx(1e4 * 4 / 1002)


def test_depth_imbalance_comes_from_the_books_windows():
    """DI_N = (D^b_N - D^a_N) / (D^b_N + D^a_N) with the book's per-window depths."""
    v = shape_of(sample(bids=[(1000, 10)], asks=[(1001, 30)], depth=((40, 60), (10, 60))))
    assert v["depth_imbalance_5"] == 0.6 and v["depth_imbalance_10"] == 0.0


def test_level_weighted_imbalance():
    """w_i = exp(-0.5 (i - 1)) over the occupied levels of each side."""
    v = shape_of(sample(bids=[(1000, 10), (999, 20)], asks=[(1001, 30)]))
    bid = 10 + 20 * math.exp(-0.5)
    assert v["depth_imbalance_weighted"] == pytest.approx((bid - 30) / (bid + 30))


def test_a_calibrated_table_replaces_the_fallback():
    """With a micro-price table the lean is the table's value for the imbalance bucket and spread."""
    table = MicropriceTable(buckets=4, spreads=(4,), adjustments=[[-0.3, -0.1, 0.1, 0.3]])
    v = shape_of(sample(bids=[(1000, 300)], asks=[(1004, 100)]), micro=table)
    assert v["micro_lean"] == 0.3 and v["micro_from_table"] == 1.0


def test_a_state_the_table_never_saw_falls_back_to_the_weighted_mid():
    """A table without the sample's spread, or with no estimate for its bucket, leaves the weighted-mid lean."""
    tables = (MicropriceTable(4, (1,), [[-0.3, -0.1, 0.1, 0.3]]), MicropriceTable(4, (4,), [[0.0, 0.0, 0.0, None]]))
    for table in tables:
        v = shape_of(sample(bids=[(1000, 300)], asks=[(1004, 100)]), micro=table)
        assert v["micro_lean"] == 1.0 and v["micro_from_table"] == 0.0  # b + s I - m = 1000 + 3 - 1002


@pytest.mark.parametrize(("bids", "asks"), [((), ()), ([(1000, 5)], ()), ((), [(1001, 5)])])
def test_one_sided_or_empty_books_give_zeros(bids, asks):
    """A book without both sides gives has_bbo 0 and 0.0 for every value."""
    v = shape_of(sample(bids=bids, asks=asks))
    assert set(v.values()) == {0.0}


def test_time_weighted_spread_over_its_window():
    """Spread 2 for 4 s then 4 for 6 s: the 10 s time-weighted mean is 3.2."""
    e = EventBuilder(instrument_id=1, ts=0, step_ns=0)
    events = [e(OrderAdd, 1, BUY, 100, 5, last=False), e(OrderAdd, 2, SELL, 102, 5)]
    e.ts = 4 * NS
    events += [e(OrderAdd, 3, SELL, 104, 5, last=False), e(OrderCancel, 2, SELL, 102, 5, 0)]
    market, _ = run_market(instrument(1, "T"), events, lambda ctx: SpreadTime(ctx.book, 10.0))
    (spread,) = market.accumulators
    assert spread.mean(10 * NS) == pytest.approx((2 * 4 + 4 * 6) / 10)
    assert spread.mean(20 * NS) == 4.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 900), st.integers(1, 3)), min_size=2, max_size=40))
def test_time_weighted_spread_equals_a_naive_integral(steps):
    """At every bar close, the 10 s mean equals the integral of the spread step function recomputed."""
    e = EventBuilder(instrument_id=1, ts=NS // 7, step_ns=0)
    events = [e(OrderAdd, 1, BUY, 100, 5, last=False), e(OrderAdd, 2, SELL, 101, 5)]
    history = [(events[-1].ts_recv, 1)]
    oid = 3
    for gap_ms, spread in steps:
        e.ts += gap_ms * 1_000_000
        events.append(e(OrderAdd, oid, SELL, 100 + spread, 5, last=False))
        events.append(e(OrderCancel, oid - 1, SELL, 100 + history[-1][1], 5, 0))
        history.append((e.ts - 0, spread))
        oid += 1
    market, samples = run_market(instrument(1, "T"), events, lambda ctx: SpreadTime(ctx.book, 10.0))
    for s in samples:
        t, start = s.ts_recv, max(s.ts_recv - 10 * NS, history[0][0])
        points = [(ts, v) for ts, v in history if ts < t]
        ends = [ts for ts, _ in points[1:]] + [t]
        integral = sum(v * (min(end, t) - max(ts, start))
                       for (ts, v), end in zip(points, ends, strict=True) if min(end, t) > max(ts, start))
        assert s.flow["spread_twa"] == pytest.approx(integral / (t - start), rel=1e-9)


def test_feature_engine_vectors_carry_exactly_the_declared_names():
    """Every vector has the engine's names, in order, flow and derived values included, all finite."""
    book = OrderBook(1)
    flow = TradeFlow()
    flow_names = tuple(flow.values(0))
    engine = FeatureEngine(1, [BookShape((5,))], flow_names)
    flow.on_trade(Trade(1, NS, NS, 0, 0, 1000, 100, BUY))
    flow.on_trade(Trade(1, NS, NS, 1, 0, 1004, 300, SELL))
    fv = engine.vector(sample(bids=[(1005, 10)], asks=[(1008, 10)], flow=flow.values(NS)))
    assert tuple(fv.values) == engine.names and book.instrument_id == 1
    assert fv["vwap"] == 1003 and fv["vwap_dev"] == 3.5 and fv["vwap_dev_sigma"] == pytest.approx(3.5 / 1.7320508)
    assert all(math.isfinite(v) for v in fv.values.values())
