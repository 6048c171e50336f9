"""ZeroIntelligenceFeed: deterministic per seed, valid L3 for a fresh OrderBook, ordered, atomic LAST groups."""

from __future__ import annotations

from collections import defaultdict

import msgspec
import pytest

from engine.book import BookCounters, BookView, OrderBook
from engine.config import DEFAULT_INSTRUMENTS
from engine.events import (
    LAST,
    SIM,
    MarketState,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Status,
    Trade,
)
from feeds.zero_intelligence import NS, SESSION_START_NS, ZeroIntelligenceFeed

SYMBOLS = ["AAPL", "TSLA", "XYZ"]  # small-tick, large-tick, and a symbol without a spec
DURATION_S = 40.0
LATENCY_US = 150.0


def make(seed: int = 11) -> ZeroIntelligenceFeed:
    return ZeroIntelligenceFeed(SYMBOLS, DEFAULT_INSTRUMENTS, seed=seed, duration_s=DURATION_S, latency_us=LATENCY_US)


@pytest.fixture(scope="module")
def stream() -> list:
    return list(make().events())


def by_instrument(events: list) -> dict[int, list]:
    out: dict[int, list] = defaultdict(list)
    for ev in events:
        out[ev.instrument_id].append(ev)
    return out


def groups(events: list) -> list[list]:
    """Split one instrument's events into atomic groups ending at a LAST flag."""
    out, current = [], []
    for ev in events:
        current.append(ev)
        if ev.flags & LAST:
            out.append(current)
            current = []
    assert current == [], "the stream ends inside an atomic event"
    return out


def test_instruments_describe_each_symbol():
    """instruments() gives consecutive ids with the symbol's tick size and profile (default spec if unknown)."""
    defs = make().instruments()
    assert [(d.instrument_id, d.symbol, d.tick_size, d.profile) for d in defs] == [
        (0, "AAPL", "0.01", "small_tick"), (1, "TSLA", "0.25", "large_tick"), (2, "XYZ", "0.01", "small_tick")]
    assert all(d.session_open == SESSION_START_NS and d.session_close == SESSION_START_NS + 40 * NS for d in defs)


def test_same_seed_same_stream(stream):
    """Two feeds with one seed, or one feed iterated twice, give byte-identical streams."""
    encoded = msgspec.json.encode(stream)
    assert msgspec.json.encode(list(make().events())) == encoded
    feed = make()
    list(feed.events())
    assert msgspec.json.encode(list(feed.events())) == encoded


def test_different_seed_different_stream(stream):
    """Another seed gives another stream."""
    assert msgspec.json.encode(list(make(seed=12).events())) != msgspec.json.encode(stream)


def test_stream_is_busy_enough_to_mean_something(stream):
    """Every instrument has adds, cancels, deletes and trades within the session."""
    for iid, events in by_instrument(stream).items():
        kinds = {type(ev) for ev in events}
        assert {Status, OrderAdd, OrderCancel, OrderDelete, OrderExecute, Trade} <= kinds, iid
        assert sum(type(ev) is Trade for ev in events) > 20


def test_stats_count_the_events():
    """stats() reports how many events the feed yielded."""
    feed = make()
    assert feed.stats() == {"events": 0}
    count = sum(1 for _ in feed.events())
    assert feed.stats() == {"events": count}


def test_global_order_and_timestamps(stream):
    """Events come in (ts_recv, instrument_id, seq) order, inside the session, with the SIM flag and latency."""
    keys = [(ev.ts_recv, ev.instrument_id, ev.seq) for ev in stream]
    assert keys == sorted(keys)
    assert all(ev.ts_recv - ev.ts_event == int(LATENCY_US * 1000) for ev in stream)
    assert all(SESSION_START_NS <= ev.ts_event < SESSION_START_NS + int(DURATION_S * NS) for ev in stream)
    assert all(ev.flags & SIM for ev in stream)


def test_seq_is_consecutive_per_instrument(stream):
    """Each instrument's seq runs 0, 1, 2, ... without gaps or repeats, starting with an OPEN status."""
    for events in by_instrument(stream).values():
        assert [ev.seq for ev in events] == list(range(len(events)))
        assert type(events[0]) is Status and events[0].state == MarketState.OPEN


def test_last_groups_are_atomic_events(stream):
    """A LAST group is one add/cancel/delete/status, or the execute+trade pairs of one market order."""
    for events in by_instrument(stream).values():
        for group in groups(events):
            assert len({ev.ts_event for ev in group}) == 1
            if len(group) == 1 and type(group[0]) is not OrderExecute:
                assert type(group[0]) in (Status, OrderAdd, OrderCancel, OrderDelete)
                continue
            assert len(group) % 2 == 0
            executes, trades = group[0::2], group[1::2]
            assert {type(ev) for ev in executes} == {OrderExecute} and {type(ev) for ev in trades} == {Trade}
            aggressor = trades[0].aggressor
            assert aggressor in (1, -1)
            for ex, tr in zip(executes, trades, strict=True):
                assert (tr.price, tr.size, tr.aggressor, tr.match_id) == (ex.price, ex.size, -ex.side, ex.trade_id)
                assert not tr.hidden
            assert len({tr.match_id for tr in trades}) == 1
            prices = [ex.price for ex in executes]
            assert prices == sorted(prices, reverse=aggressor < 0)  # the walk goes away from the best


def test_last_groups_are_contiguous_in_the_merged_stream(stream):
    """No other instrument's event falls inside an atomic group."""
    open_group: int | None = None
    for ev in stream:
        assert open_group in (None, ev.instrument_id)
        open_group = None if ev.flags & LAST else ev.instrument_id


def test_replay_into_a_fresh_book_is_clean(stream):
    """Replaying each instrument into a new OrderBook leaves every integrity counter at zero."""
    for iid, events in by_instrument(stream).items():
        book = OrderBook(iid)
        for ev in events:
            if type(ev) is OrderDelete:
                assert book.order(ev.order_id) == (ev.side, ev.price, ev.size)
            elif type(ev) in (OrderCancel, OrderExecute):
                side, price, size = book.order(ev.order_id)
                assert (side, price) == (ev.side, ev.price)
                taken = ev.size_cancelled if type(ev) is OrderCancel else ev.size
                assert 0 < taken <= size
                if type(ev) is OrderCancel:
                    assert ev.size_remaining == size - taken > 0
            book.update(ev)
        assert book.counters == BookCounters()
        assert book.check_invariants() == []
        assert book.best_bid is not None and book.best_ask is not None


def test_views_at_last_boundaries_are_usable(stream):
    """Through the stage API, every view is uncrossed and in a usable state (adds never cross the book)."""
    for iid, events in by_instrument(stream).items():
        views = [x for x in OrderBook(iid).apply(events) if type(x) is BookView]
        assert len(views) == len(groups(events))
        assert all(v.state == 0 for v in views)
        assert all(v.bid_px[0] < v.ask_px[0] for v in views if v.bid_px and v.ask_px)
