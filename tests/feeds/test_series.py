"""Tests of feeds.simulator.series: one-pass extraction of grid, L1, trades, orders, OFI, truth."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import OrderBook
from engine.events import (
    BUY,
    LAST,
    SELL,
    InstrumentDef,
    OrderAdd,
    OrderCancel,
    OrderExecute,
    Regime,
    Status,
    Trade,
    TruthKind,
    TruthLabel,
)
from feeds.simulator.series import (
    MarketSeries,
    extract_series,
    market_orders,
    ofi_increments,
    regime_path,
    volume_per_interval,
)

T0 = 1_700_000_000 * 10**9  # a whole second since the epoch
S = 10**9


def definition(iid: int = 1, symbol: str = "X") -> InstrumentDef:
    return InstrumentDef(iid, T0, T0, 0, LAST, symbol, "SIM", "0.01", 1)


class Stream:
    """Builds one instrument's events with consecutive seq numbers."""

    def __init__(self, iid: int = 1) -> None:
        self.iid, self.seq, self.events = iid, 0, []

    def _next(self) -> int:
        self.seq += 1
        return self.seq - 1

    def add(self, t: float, oid: int, side: int, price: int, size: int) -> Stream:
        ts = T0 + round(t * S)
        self.events.append(OrderAdd(self.iid, ts, ts, self._next(), LAST, oid, side, price, size))
        return self

    def cancel(self, t: float, oid: int, side: int, price: int, size: int) -> Stream:
        ts = T0 + round(t * S)
        self.events.append(OrderCancel(self.iid, ts, ts, self._next(), LAST, oid, side, price, size))
        return self

    def execute(self, t: float, oid: int, side: int, price: int, size: int, match_id: int = 0) -> Stream:
        ts = T0 + round(t * S)
        self.events.append(OrderExecute(self.iid, ts, ts, self._next(), 0, oid, side, price, size))
        self.events.append(Trade(self.iid, ts, ts, self._next(), LAST, price, size, -side, match_id=match_id))
        return self


def one(events, defs=None) -> MarketSeries:
    return extract_series(events, defs or [definition()])[1]


def test_grid_holds_last_state_at_or_before_each_second():
    """Grid samples are the book after every event with ts <= grid time, on whole seconds."""
    s = (Stream().add(0.5, 1, BUY, 100, 10).add(0.6, 2, SELL, 102, 5).add(1.0, 3, BUY, 101, 3)
         .execute(2.7, 2, SELL, 102, 2).cancel(5.2, 1, BUY, 100, 4))
    out = one(s.events)
    assert (out.grid_ts - T0).tolist() == [S, 2 * S, 3 * S, 4 * S, 5 * S]
    assert out.bid.tolist() == [101] * 5
    assert out.ask_size.tolist() == [5, 5, 3, 3, 3]
    assert out.depth_bid.tolist() == [13] * 5  # 101 x3 and 100 x10 are within 10 ticks
    assert out.mid2.tolist() == [203] * 5 and out.spread.tolist() == [1] * 5


def test_grid_before_two_sided_book_is_nan():
    """A grid time with an empty side has NaN prices and zero size."""
    out = one(Stream().add(0.2, 1, BUY, 100, 10).add(1.5, 2, SELL, 103, 1).add(2.5, 3, SELL, 104, 1).events)
    assert np.isnan(out.ask[0]) and out.ask_size[0] == 0 and out.bid[0] == 100
    assert out.ask[1] == 103


def test_l1_records_only_changes_of_the_top():
    """An add behind the best does not create an L1 record; a size change at the best does."""
    s = Stream().add(0.1, 1, BUY, 100, 10).add(0.2, 2, SELL, 102, 5).add(0.3, 3, BUY, 95, 7)
    s.add(0.4, 4, BUY, 100, 1)
    out = one(s.events)
    assert out.l1_bid_size.tolist() == [10, 10, 11]
    assert out.l1_valid.tolist() == [False, True, True]


def test_ofi_matches_the_spec_example():
    """qb 100 -> 150 and qa 200 -> 120 at unchanged prices add up to OFI = +130 (SPEC F5)."""
    s = Stream().add(0.1, 1, BUY, 100, 100).add(0.2, 2, SELL, 105, 200)
    s.add(0.3, 3, BUY, 100, 50).cancel(0.4, 2, SELL, 105, 80)
    e = ofi_increments(one(s.events))
    assert e.tolist() == [0, 0, 50, 80]


def test_ofi_price_improvement_and_level_depletion():
    """A new best bid adds its whole size; a depleted best ask counts its last size as buy pressure."""
    s = Stream().add(0.1, 1, BUY, 100, 100).add(0.2, 2, SELL, 105, 30).add(0.25, 5, SELL, 106, 40)
    s.add(0.3, 3, BUY, 101, 20).execute(0.4, 2, SELL, 105, 30)
    e = ofi_increments(one(s.events))
    assert e[-2:].tolist() == [20, 30]


def naive_ofi(b, qb, a, qa) -> list[int]:
    out = [0]
    for n in range(1, len(b)):
        e = qb[n] * (b[n] >= b[n - 1]) - qb[n - 1] * (b[n] <= b[n - 1])
        e += -qa[n] * (a[n] <= a[n - 1]) + qa[n - 1] * (a[n] >= a[n - 1])
        out.append(int(e))
    return out


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(95, 100), st.integers(1, 50), st.integers(101, 106), st.integers(1, 50)),
                min_size=1, max_size=40))
def test_ofi_vectorised_equals_naive_loop(rows):
    """The vectorised OFI equals the per-update F5 formula on any valid L1 sequence."""
    arr = np.array(rows, dtype=np.int64)
    series = series_from_l1(arr)
    assert ofi_increments(series).tolist() == naive_ofi(*arr.T.tolist())


def series_from_l1(arr: np.ndarray) -> MarketSeries:
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    n = len(arr)
    return MarketSeries(
        1, "X", "", S, empty_i, empty_f, empty_f, empty_f, empty_f, empty_f, empty_f, np.zeros(0, bool),
        T0 + np.arange(n, dtype=np.int64), arr[:, 0], arr[:, 2], arr[:, 1], arr[:, 3],
        empty_i, empty_i, empty_i, np.zeros(0, np.int8), empty_i, np.zeros(0, bool))


def test_market_orders_group_by_match_id_then_by_timestamp_and_sign():
    """Fills sharing a match_id, or a timestamp and sign when match_id is 0, form one order."""
    s = Stream()
    for oid, price in ((1, 105), (2, 105), (3, 106)):
        s.add(0.1, oid, SELL, price, 10)
    for oid, price in ((4, 100), (5, 99)):
        s.add(0.1, oid, BUY, price, 10)
    s.execute(1.0, 1, SELL, 105, 10, match_id=7).execute(1.0, 2, SELL, 105, 4, match_id=7)
    s.execute(1.0, 3, SELL, 106, 2, match_id=7)
    s.execute(2.0, 4, BUY, 100, 10).execute(2.0, 5, BUY, 99, 3)  # one sell order through two levels
    s.execute(2.0, 2, SELL, 105, 1)  # same time, other sign: another order
    mo = market_orders(one(s.events))
    assert mo.sign.tolist() == [1, -1, 1]
    assert mo.size.tolist() == [16, 13, 1]
    assert mo.levels.tolist() == [2, 2, 1]
    assert np.allclose(mo.vwap, [(14 * 105 + 2 * 106) / 16, (10 * 100 + 3 * 99) / 13, 105])


def naive_groups(ts, sign, match) -> list[int]:
    sizes, key = [], None
    for t, g, m in zip(ts, sign, match, strict=True):
        k = ("m", m) if m else ("t", t, g)
        if k != key:
            sizes.append(0)
            key = k
        sizes[-1] += 1
    return sizes


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([-1, 1]), st.sampled_from([0, 0, 1, 2])),
                min_size=1, max_size=30))
def test_market_orders_equal_naive_grouping(rows):
    """Order grouping matches a loop over consecutive fills (match_id first, else ts and sign)."""
    rows = sorted(rows, key=lambda r: r[0])
    ts = np.array([T0 + r[0] for r in rows], np.int64)
    sign = np.array([r[1] for r in rows], np.int8)
    match = np.array([r[2] for r in rows], np.int64)
    base = series_from_l1(np.zeros((0, 4), np.int64))
    series = MarketSeries(**{**{f: getattr(base, f) for f in base.__dataclass_fields__},
                             "trade_ts": ts, "trade_price": np.full(len(ts), 100), "trade_size": np.ones(len(ts), int),
                             "trade_aggressor": sign, "trade_match_id": match, "trade_hidden": np.zeros(len(ts), bool)})
    assert market_orders(series).size.tolist() == naive_groups(ts.tolist(), sign.tolist(), match.tolist())


def test_volume_per_interval_counts_trades_in_each_second():
    """Traded lots fall in the grid interval (t-1 s, t] that contains them."""
    s = Stream().add(0.1, 1, SELL, 105, 100).add(0.2, 2, BUY, 100, 100)
    s.execute(1.0, 1, SELL, 105, 3).execute(1.5, 1, SELL, 105, 4).execute(3.2, 2, BUY, 100, 5)
    s.add(4.0, 3, BUY, 99, 1)
    out = one(s.events)
    assert volume_per_interval(out).tolist() == [3, 4, 0, 5]


def test_truth_labels_are_routed_and_regime_path_reads_names_and_codes():
    """Labels of a known instrument stay with it, others go to every instrument; regimes parse."""
    def label(iid, t, regime, seq):
        ts = T0 + t * S
        return TruthLabel(iid, ts, ts, seq, LAST, seq, int(TruthKind.REGIME), 0, 0, 0, ts, 0,
                          {"regime": regime})
    events = [*Stream(1).add(0.5, 1, BUY, 100, 1).events, label(1, 1, "TREND_UP", 0),
              label(0, 2, int(Regime.SHOCK), 0), *Stream(2).add(2.5, 9, BUY, 50, 1).events]
    out = extract_series(events, [definition(1), definition(2, "Y")])
    times, regimes = regime_path(out[1])
    assert (times - T0).tolist() == [S, 2 * S]
    assert regimes.tolist() == [Regime.TREND_UP, Regime.SHOCK]
    assert [int(r) for r in regime_path(out[2])[1]] == [Regime.SHOCK]


def test_two_instruments_share_aligned_grids_and_status():
    """Interleaved instruments get grids on the same whole seconds; a halt shows in is_open."""
    a, b = Stream(1), Stream(2)
    a.add(0.3, 1, BUY, 100, 1).add(0.4, 2, SELL, 101, 1)
    b.add(1.7, 1, BUY, 500, 1).add(1.8, 2, SELL, 502, 1)
    halt = Status(2, T0 + 3 * S, T0 + 3 * S, b.seq, LAST, 2)
    a.add(4.5, 3, BUY, 99, 1)
    b.events.append(halt)
    b.add(4.6, 3, BUY, 499, 1)
    events = sorted(a.events + b.events, key=lambda e: (e.ts_recv, e.instrument_id, e.seq))
    out = extract_series(events, [definition(1), definition(2, "Y")])
    assert (out[1].grid_ts - T0).tolist() == [S, 2 * S, 3 * S, 4 * S]
    assert (out[2].grid_ts - T0).tolist() == [2 * S, 3 * S, 4 * S]
    assert out[2].is_open.tolist() == [True, False, False]


def test_empty_stream_gives_empty_arrays():
    """No events: every array is empty and nothing raises."""
    out = one([])
    assert len(out.grid_ts) == len(out.l1_ts) == len(out.trade_ts) == 0
    assert len(market_orders(out).ts) == 0 and ofi_increments(out).tolist() == []


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4000), st.sampled_from([BUY, SELL]), st.integers(0, 8),
                          st.integers(1, 30), st.booleans()), min_size=1, max_size=60))
def test_grid_equals_naive_replay(ops):
    """Every grid sample equals a fresh book replayed up to that grid time (naive reference)."""
    s, live = Stream(), {}
    for k, (ms, side, off, size, cancel) in enumerate(sorted(ops)):
        t = ms / 1000
        if cancel and live:
            oid, (sd, px, sz) = next(iter(live.items()))
            s.cancel(t, oid, sd, px, sz)
            del live[oid]
        else:
            price = 100 - off if side == BUY else 110 + off
            s.add(t, k + 1, side, price, size)
            live[k + 1] = (side, price, size)
    out = one(s.events)
    for i, g in enumerate(out.grid_ts):
        book = OrderBook(1)
        for ev in s.events:
            if ev.ts_event <= g:
                book.update(ev)
        bid = book.best_bid
        assert (np.isnan(out.bid[i]) if bid is None else out.bid[i] == bid)
        assert out.depth_ask[i] == book.depth_within(SELL, 10)
