"""FeatureEngine against hand-computed examples (SPEC F1, F2, F3, F8, F9) and a naive recompute."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import CROSSED, BookView
from engine.events import BUY, LAST, NO_SIDE, SELL, Trade
from engine.features.core import FeatureEngine, FeatureVector

NS = 1_000_000_000


def view(ts: int, bids=(), asks=(), state: int = 0, seq: int = 0) -> BookView:
    """A BookView at ``ts`` ns from ``(price, size)`` levels, best first."""
    return BookView(
        0, ts, ts, seq, state,
        tuple(p for p, _ in bids), tuple(s for _, s in bids),
        tuple(p for p, _ in asks), tuple(s for _, s in asks),
    )


def trade(ts: int, price: int, size: int, aggressor: int, hidden: bool = False) -> Trade:
    return Trade(0, ts, ts, 0, LAST, price, size, aggressor, hidden=hidden)


def vectors(engine: FeatureEngine, batch: list) -> list[FeatureVector]:
    return [item for item in engine.apply(batch) if type(item) is FeatureVector]


def one(engine: FeatureEngine, batch: list) -> FeatureVector:
    out = vectors(engine, batch)
    assert len(out) == 1
    return out[0]


def all_finite(vector: FeatureVector) -> bool:
    values = [vector.spread_twa, vector.weighted_mid, vector.queue_imbalance, vector.vwap, vector.vwap_dev,
              *vector.depth_imbalance, *vector.trade_imbalance]
    return all(math.isfinite(v) for v in values)


def test_queue_imbalance_spec_example():
    """SPEC F2: qb = 300, qa = 100 gives QI = 0.5 and weighted mid b + s * 0.75."""
    v = one(FeatureEngine(0), [view(NS, bids=[(1000, 300)], asks=[(1004, 100)])])
    assert v.queue_imbalance == 0.5
    assert v.weighted_mid == 1003.0
    assert (v.best_bid, v.best_ask, v.spread, v.mid2) == (1000, 1004, 4, 2004)
    assert v.has_bbo and not v.has_trades


def test_vwap_spec_example():
    """SPEC F9: trades 100 @ 1000 and 300 @ 1004 give VWAP 1003; mid 1006.5 is 3.5 ticks above it."""
    engine = FeatureEngine(0)
    v = one(engine, [
        trade(NS, 1000, 100, BUY),
        trade(NS + 1, 1004, 300, SELL),
        view(NS + 2, bids=[(1006, 10)], asks=[(1007, 10)]),
    ])
    assert v.vwap == 1003.0
    assert v.vwap_dev == 3.5
    assert v.mid2 == 2013
    assert v.has_trades


def test_vwap_dev_is_zero_without_both_sides():
    """VWAP is kept but its deviation is 0 while the book is one-sided."""
    v = one(FeatureEngine(0), [trade(NS, 1000, 10, BUY), view(NS, bids=[(999, 5)])])
    assert v.vwap == 1000.0 and v.vwap_dev == 0.0 and not v.has_bbo


def test_depth_imbalance_within_n_ticks():
    """SPEC F3: D_N counts bid levels >= b - N + 1 and ask levels <= a + N - 1."""
    engine = FeatureEngine(0, depth_ticks=(1, 4, 5, 10))
    v = one(engine, [view(NS, bids=[(100, 10), (99, 20), (97, 30), (96, 7), (94, 40)],
                          asks=[(101, 5), (103, 15), (105, 2), (106, 25)])])
    # N=1: 10 vs 5; N=4: bids >= 97 (60) vs asks <= 104 (20); N=5: bids >= 96 (67) vs asks <= 105 (22);
    # N=10: everything (107 vs 47).
    assert v.depth_imbalance == pytest.approx((5 / 15, 40 / 80, 45 / 89, 60 / 154), rel=1e-15)
    assert engine.named(v)["depth_imbalance_5"] == pytest.approx(45 / 89, rel=1e-15)


def test_trade_imbalance_windows_evict_by_event_time():
    """F8: a trade leaves a window of W seconds exactly W seconds after its ts_recv."""
    engine = FeatureEngine(0, trade_windows_s=(5.0, 30.0))
    out = vectors(engine, [
        trade(0, 100, 100, BUY),
        trade(2 * NS, 100, 50, SELL),
        view(4 * NS, bids=[(99, 1)], asks=[(101, 1)]),
        trade(5 * NS, 100, 30, BUY),
        view(5 * NS, bids=[(99, 1)], asks=[(101, 1)]),
        view(7 * NS + NS // 2, bids=[(99, 1)], asks=[(101, 1)]),
        view(20 * NS, bids=[(99, 1)], asks=[(101, 1)]),
        view(32 * NS, bids=[(99, 1)], asks=[(101, 1)]),
        view(40 * NS, bids=[(99, 1)], asks=[(101, 1)]),
    ])
    assert [v.trade_imbalance for v in out] == [
        (50 / 150, 50 / 150),  # t=4: both trades in both windows
        (-20 / 80, 80 / 180),  # t=5: the trade at 0 left the 5 s window
        (1.0, 80 / 180),  # t=7.5: only the buy of 30 is in the 5 s window
        (0.0, 80 / 180),  # t=20: 5 s window empty
        (0.0, 30 / 30),  # t=32: the 30 s window lost the trades at 0 and 2
        (0.0, 0.0),
    ]
    assert engine.named(out[0])["trade_imbalance_5s"] == 50 / 150
    assert engine.named(out[0])["trade_imbalance_30s"] == 50 / 150


def test_cvd_counts_hidden_trades_and_ignores_unknown_aggressor():
    """F8: CVD is the signed volume since the start, hidden executions included, NO_SIDE adding nothing."""
    engine = FeatureEngine(0)
    v = one(engine, [
        trade(1, 100, 40, BUY),
        trade(2, 100, 25, SELL, hidden=True),
        trade(3, 100, 7, NO_SIDE),
        trade(4, 101, 10, BUY, hidden=True),
        view(5, bids=[(99, 1)], asks=[(101, 1)]),
    ])
    assert v.cvd == 40 - 25 + 10
    assert v.trade_imbalance == ((40 - 25 + 10) / 82, (40 - 25 + 10) / 82)
    assert v.vwap == (100 * 72 + 101 * 10) / 82


def test_time_weighted_spread_trims_the_partially_expired_segment():
    """F1: the spread mean integrates the step function over the last W only, cutting the oldest segment."""
    engine = FeatureEngine(0, spread_window_s=10.0)
    out = vectors(engine, [
        view(0, bids=[(100, 1)], asks=[(102, 1)]),  # spread 2 from t=0
        view(4 * NS, bids=[(100, 1)], asks=[(104, 1)]),  # spread 4 from t=4
        view(12 * NS, bids=[(100, 1)], asks=[(101, 1)]),  # spread 1 from t=12
        view(14 * NS, bids=[(100, 1)], asks=[(101, 1)]),
        view(30 * NS, bids=[(100, 1)], asks=[(103, 1)]),
    ])
    assert [v.spread for v in out] == [2, 4, 1, 1, 3]
    assert out[0].spread_twa == 2.0  # no history yet: the current value
    assert out[1].spread_twa == 2.0  # [0, 4] at 2
    assert out[2].spread_twa == pytest.approx((2 * 2 + 8 * 4) / 10)  # window [2, 12]: [0, 2] expired
    assert out[3].spread_twa == pytest.approx((8 * 4 + 2 * 1) / 10)  # window [4, 14]
    assert out[4].spread_twa == 1.0  # window [20, 30]: all at 1
    assert engine.named(out[2])["spread_twa"] == out[2].spread_twa


def test_one_sided_views_do_not_feed_the_spread_average():
    """A one-sided view leaves the spread undefined (0) while the last spread continues in the average."""
    engine = FeatureEngine(0, spread_window_s=10.0)
    out = vectors(engine, [
        view(0, bids=[(100, 1)], asks=[(102, 1)]),
        view(2 * NS, bids=[(100, 1)]),
        view(4 * NS, bids=[(100, 1)], asks=[(106, 1)]),
        view(6 * NS, bids=[(100, 1)], asks=[(106, 1)]),
    ])
    assert out[1].spread == 0 and out[1].spread_twa == 2.0
    assert out[3].spread_twa == pytest.approx((4 * 2 + 2 * 6) / 6)


@pytest.mark.parametrize(
    ("bids", "asks", "state"),
    [
        ((), (), 0),
        ([(100, 5)], (), 0),
        ((), [(101, 5)], 0),
        ([(102, 5), (101, 3)], [(100, 4), (101, 1)], CROSSED),  # crossed
        ([(100, 5)], [(100, 4)], CROSSED),  # locked
    ],
    ids=["empty", "bid-only", "ask-only", "crossed", "locked"],
)
def test_no_nan_or_inf_on_degenerate_views(bids, asks, state):
    """Empty, one-sided, crossed and locked views, and a 0-tick depth window, give finite values (0.0 if undefined)."""
    engine = FeatureEngine(0, depth_ticks=(0, 1, 5))
    before = one(engine, [view(1, bids=bids, asks=asks, state=state)])
    after = one(engine, [trade(2, 100, 3, BUY), view(3, bids=bids, asks=asks, state=state)])
    for v in (before, after):
        assert all_finite(v)
        assert v.state == state
        assert v.has_bbo == bool(bids and asks)
        if not v.has_bbo:
            assert (v.spread, v.mid2, v.queue_imbalance, v.depth_imbalance, v.vwap_dev) == (0, 0, 0.0, (0.0,) * 3, 0.0)
    assert all(math.isfinite(x) for x in engine.named(after).values())


def test_apply_passes_every_item_through_and_adds_one_vector_per_view():
    """apply returns its input in order with a FeatureVector right after each BookView; flush adds nothing."""
    engine = FeatureEngine(7)
    t = trade(1, 100, 1, BUY)
    v1, v2 = view(2, bids=[(99, 1)], asks=[(101, 1)], seq=4), view(3, bids=[(99, 1)], asks=[(101, 2)], seq=5)
    out = engine.apply([t, v1, v2])
    assert out[:2] == [t, v1] and out[3] is v2
    assert [type(x) for x in out] == [Trade, BookView, FeatureVector, BookView, FeatureVector]
    assert (out[2].instrument_id, out[2].ts_recv, out[2].seq) == (7, 2, 4)
    assert engine.last is out[4]
    assert engine.flush() == []


# ---- naive reference --------------------------------------------------------------------------------
def naive_trade_imbalance(trades: list[tuple[int, int, int]], now: int, window_ns: int) -> float:
    """Recompute sum(sign * size) / sum(size) over trades with ts in (now - W, now]."""
    inside = [(sign, size) for ts, sign, size in trades if now - window_ns < ts <= now]
    total = sum(size for _, size in inside)
    return sum(sign * size for sign, size in inside) / total if total else 0.0


def naive_spread_mean(history: list[tuple[int, int]], now: int, window_ns: int) -> float:
    """Integrate the spread step function over [max(first, now - W), now] from scratch."""
    if not history:
        return 0.0
    start = max(history[0][0], now - window_ns)
    if now <= start:
        return float(history[-1][1])
    integral = 0
    for (t0, value), (t1, _) in zip(history, [*history[1:], (now, 0)], strict=True):
        lo, hi = max(t0, start), min(t1, now)
        if hi > lo:
            integral += (hi - lo) * value
    return integral / (now - start)


step = st.tuples(
    # time step in ns: round steps land exactly on window boundaries, 0 gives equal timestamps
    st.one_of(st.sampled_from([0, NS // 2, NS]), st.integers(0, 3 * NS)),
    st.sampled_from(["trade", "view", "view", "one-sided"]),
    st.sampled_from([BUY, SELL, NO_SIDE]),
    st.integers(0, 50),  # trade size (0 allowed)
    st.integers(1, 6),  # spread
)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(step, max_size=60), windows=st.lists(st.integers(1, 8), min_size=1, max_size=3),
       spread_window=st.integers(1, 8))
def test_trade_imbalance_and_spread_mean_match_naive_recompute(steps, windows, spread_window):
    """On random sequences, trade imbalance and the time-weighted spread equal a recompute from scratch."""
    engine = FeatureEngine(0, trade_windows_s=[float(w) for w in windows], spread_window_s=float(spread_window))
    trades: list[tuple[int, int, int]] = []
    history: list[tuple[int, int]] = []
    ts = 0
    for dt, kind, sign, size, spread in steps:
        ts += dt
        if kind == "trade":
            engine.apply([trade(ts, 100, size, sign)])
            trades.append((ts, sign, size))
            continue
        asks = [(100 + spread, 3)] if kind == "view" else []
        vector = one(engine, [view(ts, bids=[(100, 2)], asks=asks)])
        expected = tuple(naive_trade_imbalance(trades, ts, w * NS) for w in windows)
        assert vector.trade_imbalance == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert vector.cvd == sum(s * v for _, s, v in trades)
        if kind == "view":
            if history and history[-1][0] == ts:
                history[-1] = (ts, spread)
            else:
                history.append((ts, spread))
        assert vector.spread_twa == pytest.approx(naive_spread_mean(history, ts, spread_window * NS), rel=1e-12)
        assert all_finite(vector)


def naive_depth_imbalance(bids: list[tuple[int, int]], asks: list[tuple[int, int]], n: int) -> float:
    """SPEC F3 from scratch: bid size at prices >= b - N + 1 against ask size at prices <= a + N - 1."""
    d_bid = sum(size for price, size in bids if price >= bids[0][0] - n + 1)
    d_ask = sum(size for price, size in asks if price <= asks[0][0] + n - 1)
    return (d_bid - d_ask) / (d_bid + d_ask) if d_bid + d_ask else 0.0


def side_levels(direction: int):
    """Distinct prices moving away from the best by 1..4 ticks, with sizes 1..500, best first."""
    gaps = st.lists(st.integers(1, 4), min_size=0, max_size=12)
    sizes = st.lists(st.integers(1, 500), min_size=13, max_size=13)
    return st.tuples(gaps, sizes).map(
        lambda gs: [(1000 + direction * sum(gs[0][:i]), gs[1][i]) for i in range(len(gs[0]) + 1)]
    )


@settings(max_examples=200, deadline=None)
@given(bids=side_levels(-1), asks=side_levels(+1), windows=st.lists(st.integers(0, 12), min_size=1, max_size=4))
def test_depth_imbalance_matches_naive_definition(bids, asks, windows):
    """On random sparse and dense books, depth imbalance per window equals the SPEC F3 definition."""
    asks = [(price + 5, size) for price, size in asks]
    engine = FeatureEngine(0, depth_ticks=windows)
    vector = one(engine, [view(1, bids=bids, asks=asks)])
    expected = {n: naive_depth_imbalance(bids, asks, n) for n in windows}
    assert dict(zip(engine.depth_ticks, vector.depth_imbalance, strict=True)) == pytest.approx(expected, rel=1e-12)
