"""Tests for feeds/dbn.py and feeds/dbn_events.py: DBN files written by databento-dbn's own encoder."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import STALE, BookView, OrderBook
from engine.errors import UsageError
from engine.events import (
    ADD,
    BAD_TS,
    BUY,
    DELETE,
    LAST,
    NO_SIDE,
    SELL,
    SNAPSHOT,
    UPDATE,
    BookDelta,
    BookSnapshot,
    OrderAdd,
    OrderCancel,
    OrderExecute,
    OrderModify,
    Trade,
)
from feeds.dbn import DbnFeed, import_dbn
from feeds.dbn_events import DbnError, RecordMapper
from feeds.merge import MergedFeed, open_feeds
from feeds.tape import TapeFeed, TapeWriter

T0 = 1_718_582_400_000_000_000  # 2024-06-17 00:00 UTC
SECOND = 1_000_000_000
ES = 4916  # instrument id of ESM4 in the files below
NQ = 5002
SNAP = dbn.F_SNAPSHOT | dbn.F_BAD_TS_RECV
A, C, M, R, T, F, N = (dbn.Action.ADD, dbn.Action.CANCEL, dbn.Action.MODIFY, dbn.Action.CLEAR, dbn.Action.TRADE,
                       dbn.Action.FILL, dbn.Action.NONE)
BID, ASK, NONE = dbn.Side.BID, dbn.Side.ASK, dbn.Side.NONE


@dataclass
class Interval:
    start_date: date
    end_date: date
    symbol: str


@dataclass
class Mapping:
    raw_symbol: str
    intervals: list[Interval] = field(default_factory=list)


def mapping(symbol: str, instrument_id: int) -> Mapping:
    return Mapping(symbol, [Interval(date(2024, 6, 17), date(2024, 6, 18), str(instrument_id))])


def px(price: float | None) -> int:
    """A price in DBN's fixed-point units (1e-9)."""
    return dbn.UNDEF_PRICE if price is None else round(price * 1_000_000_000)


def write_dbn(path: Path, schema: dbn.Schema, records: list, *, version: int = 3,
              mappings: tuple[Mapping, ...] = (mapping("ESM4", ES),)) -> Path:
    """Encode ``records`` behind their metadata with the package; ``.zst`` paths go through its zstd Transcoder."""
    metadata = dbn.Metadata("GLBX.MDP3", T0, dbn.SType.RAW_SYMBOL, dbn.SType.INSTRUMENT_ID, schema,
                            symbols=[m.raw_symbol for m in mappings], mappings=list(mappings), version=version,
                            end=T0 + 86_400 * SECOND)
    raw = metadata.encode() + b"".join(bytes(r) for r in records)
    if path.name.endswith(".zst"):
        with path.open("wb") as file, dbn.Transcoder(file, dbn.Encoding.DBN, dbn.Compression.ZSTD,
                                                     upgrade_policy=dbn.VersionUpgradePolicy.AS_IS) as transcoder:
            transcoder.write(raw)
    else:
        path.write_bytes(raw)
    return path


def mbo(action, side, order_id: int, price: float | None, size: int, flags: int = dbn.F_LAST, sequence: int = 0,
        t: int = 0, instrument_id: int = ES) -> dbn.MBOMsg:
    return dbn.MBOMsg(1, instrument_id, T0 + t, order_id, px(price), size, action, side, T0 + t, flags=flags,
                      sequence=sequence)


def mbo_session() -> list[dbn.MBOMsg]:
    """A snapshot (clear, then five orders, F_LAST on the last) followed by live records, ESM4 ticks of 0.25."""
    return [
        mbo(R, NONE, 0, None, 0, SNAP),
        mbo(A, BID, 1, 5000.00, 5, SNAP), mbo(A, BID, 2, 5000.00, 3, SNAP), mbo(A, BID, 3, 4999.75, 7, SNAP),
        mbo(A, ASK, 4, 5000.25, 4, SNAP), mbo(A, ASK, 5, 5000.50, 6, SNAP | dbn.F_LAST),
        mbo(A, BID, 6, 5000.00, 2, sequence=10, t=1 * SECOND),
        # a buy aggressor lifts 3 of order 4: trade, fill, then the cancel that changes the book
        mbo(T, BID, 0, 5000.25, 3, 0, sequence=11, t=2 * SECOND),
        mbo(F, ASK, 4, 5000.25, 3, 0, sequence=11, t=2 * SECOND),
        mbo(C, ASK, 4, 5000.25, 3, sequence=11, t=2 * SECOND),
        mbo(M, BID, 1, 5000.00, 4, sequence=12, t=3 * SECOND),  # size down: keeps its place
        mbo(M, BID, 2, 5000.25 - 0.5, 3, sequence=13, t=4 * SECOND),  # new price: to 4999.75, behind order 3
        mbo(C, BID, 6, 5000.00, 1, sequence=14, t=5 * SECOND),  # partial cancel
    ]


def replay(feed) -> tuple[OrderBook, list[BookView], list]:
    """Apply a one-instrument feed to an OrderBook; the views at LAST boundaries and every event."""
    [definition] = feed.instruments()
    book = OrderBook(definition.instrument_id)
    events = list(feed.events())
    out = book.apply(events)
    assert book.check_invariants() == []
    return book, [v for v in out if isinstance(v, BookView)], events


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("name", ["session.dbn", "session.dbn.zst"])
def test_mbo_snapshot_then_deltas_give_the_hand_computed_book(tmp_path, version, name):
    """An MBO snapshot then adds, a fill, modifies and a partial cancel leave the hand-computed levels and queues."""
    path = write_dbn(tmp_path / name, dbn.Schema.MBO, mbo_session(), version=version)
    feed = DbnFeed(path, tick_size="0.25")
    assert feed.scan.version == version
    book, views, _ = replay(feed)
    assert book.levels(BUY) == [(20000, 5), (19999, 10)]
    assert book.levels(SELL) == [(20001, 1), (20002, 6)]
    assert book.queue(BUY, 20000) == [(1, 4), (6, 1)]
    assert book.queue(BUY, 19999) == [(3, 7), (2, 3)]
    assert book.queue(SELL, 20001) == [(4, 1)]
    assert views[0].bid_px == (20000, 19999) and views[0].bid_sz == (8, 7) and views[0].ask_sz == (4, 6)
    assert len(views) == 6 and all(v.state == 0 for v in views)
    assert book.counters.unknown_orders == book.counters.overdrawn == book.counters.gaps == 0


def test_mbo_actions_map_to_l3_events_with_databento_flags(tmp_path):
    """R is an empty complete snapshot, snapshot adds keep SNAPSHOT|BAD_TS, a fill and its cancel are one execution."""
    feed = DbnFeed(write_dbn(tmp_path / "s.dbn", dbn.Schema.MBO, mbo_session()), tick_size="0.25")
    events = list(feed.events())
    assert events[0] == BookSnapshot(ES, T0, T0, 0, SNAPSHOT | BAD_TS, (), (), 0, True)
    assert [type(e) for e in events[1:6]] == [OrderAdd] * 5
    assert [e.flags for e in events[1:6]] == [SNAPSHOT | BAD_TS] * 4 + [SNAPSHOT | BAD_TS | LAST]
    assert events[6] == OrderAdd(ES, T0 + SECOND, T0 + SECOND, 6, LAST, 6, BUY, 20000, 2)
    trade, execution = events[7:9]
    assert trade == Trade(ES, T0 + 2 * SECOND, T0 + 2 * SECOND, 7, 0, 20001, 3, BUY)
    assert execution == OrderExecute(ES, T0 + 2 * SECOND, T0 + 2 * SECOND, 8, LAST, 4, SELL, 20001, 3)
    assert [type(e) for e in events[9:]] == [OrderModify, OrderModify, OrderCancel]
    assert events[-1].size_cancelled == 1 and [e.seq for e in events] == list(range(12))
    stats = feed.stats()
    assert stats["records"] == 13 and stats["events"] == 12 and stats["executions"] == 1 and stats["gaps"] == 0


def test_a_cancel_larger_than_the_fill_executes_the_fill_and_cancels_the_rest(tmp_path):
    """C for 5 after F for 2 of one order gives OrderExecute(2) then OrderCancel(3), LAST on the cancel."""
    records = [mbo(A, ASK, 9, 10.00, 8, sequence=1), mbo(F, ASK, 9, 10.00, 2, 0, sequence=2),
               mbo(C, ASK, 9, 10.00, 5, sequence=2)]
    events = list(DbnFeed(write_dbn(tmp_path / "f.dbn", dbn.Schema.MBO, records)).events())
    assert [(type(e), e.flags) for e in events[1:]] == [(OrderExecute, 0), (OrderCancel, LAST)]
    assert events[1].size == 2 and events[2].size_cancelled == 3


def test_a_sequence_gap_marks_the_book_stale_until_the_next_snapshot(tmp_path):
    """Venue sequence 11 -> 13 is counted as a gap; the book is STALE until the next clear-and-snapshot."""
    records = [
        mbo(R, NONE, 0, None, 0, SNAP), mbo(A, BID, 1, 100.00, 5, SNAP | dbn.F_LAST),
        mbo(A, ASK, 2, 100.25, 5, sequence=11, t=SECOND),
        mbo(A, ASK, 3, 100.50, 5, sequence=13, t=2 * SECOND),  # 12 is missing
        mbo(C, ASK, 3, 100.50, 5, sequence=14, t=3 * SECOND),
        mbo(R, NONE, 0, None, 0, SNAP, t=4 * SECOND), mbo(A, BID, 1, 100.00, 4, SNAP, t=4 * SECOND),
        mbo(A, ASK, 7, 100.75, 1, SNAP | dbn.F_LAST, t=4 * SECOND),
        mbo(A, ASK, 8, 101.00, 1, sequence=40, t=5 * SECOND),  # numbering restarts after a snapshot
    ]
    feed = DbnFeed(write_dbn(tmp_path / "gap.dbn", dbn.Schema.MBO, records), tick_size="0.25")
    book, views, _ = replay(feed)
    assert [bool(v.state & STALE) for v in views] == [False, False, True, True, False, False]
    assert book.counters.gaps == 1 and book.counters.snapshots == 2
    assert book.levels(BUY) == [(400, 4)] and book.levels(SELL) == [(403, 1), (404, 1)]
    assert feed.stats()["sequence_gaps"] == feed.stats()["gaps"] == 1


def test_maybe_bad_book_is_a_gap_and_sequence_checks_can_be_turned_off(tmp_path):
    """Without sequence checks skipped numbers pass, but a record flagged F_MAYBE_BAD_BOOK still makes a gap."""
    records = [mbo(A, BID, 1, 100.00, 5, sequence=10), mbo(A, BID, 2, 100.00, 5, sequence=30, t=1),
               mbo(A, BID, 3, 100.00, 5, dbn.F_LAST | dbn.F_MAYBE_BAD_BOOK, sequence=31, t=2)]
    path = write_dbn(tmp_path / "flag.dbn", dbn.Schema.MBO, records)
    unchecked = DbnFeed(path, check_sequence=False)
    _, views, events = replay(unchecked)
    assert [e.seq for e in events] == [0, 1, 3] and [bool(v.state & STALE) for v in views] == [False, False, True]
    stats = unchecked.stats()
    assert (stats["gaps"], stats["sequence_gaps"], stats["bad_book_flags"]) == (1, 0, 1)
    checked = DbnFeed(path)
    assert [e.seq for e in checked.events()] == [0, 2, 4]
    assert (checked.stats()["gaps"], checked.stats()["sequence_gaps"]) == (2, 1)


def test_last_moves_back_when_the_closing_record_yields_no_event(tmp_path):
    """A trade without F_LAST followed by an N record with F_LAST: the trade carries LAST."""
    records = [mbo(A, BID, 1, 100.00, 5), mbo(T, ASK, 0, 100.00, 2, 0, t=1), mbo(N, NONE, 0, None, 0, t=1)]
    events = list(DbnFeed(write_dbn(tmp_path / "n.dbn", dbn.Schema.MBO, records)).events())
    assert [(type(e), e.flags) for e in events] == [(OrderAdd, LAST), (Trade, LAST)]
    assert events[1].aggressor == SELL


def test_a_snapshot_without_a_clear_gets_an_empty_snapshot_in_front(tmp_path):
    """F_SNAPSHOT adds not preceded by R (files before 2024) first empty the book, dropping stale orders."""
    records = [mbo(A, BID, 1, 100.00, 5, sequence=1), mbo(A, BID, 2, 99.00, 5, SNAP, t=SECOND),
               mbo(A, ASK, 3, 101.00, 5, SNAP | dbn.F_LAST, t=SECOND)]
    feed = DbnFeed(write_dbn(tmp_path / "old.dbn", dbn.Schema.MBO, records))
    book, _, events = replay(feed)
    assert type(events[1]) is BookSnapshot and events[1].flags == SNAPSHOT | BAD_TS
    assert book.levels(BUY) == [(9900, 5)] and book.levels(SELL) == [(10100, 5)]


def mbp(bids: list[tuple[float, int]], asks: list[tuple[float, int]], action=M, side=BID, price: float = 0.0,
        size: int = 0, flags: int = dbn.F_LAST, sequence: int = 0, t: int = 0, instrument_id: int = ES) -> dbn.MBP10Msg:
    """An MBP-10 record whose book is ``bids`` and ``asks`` (price, size), best first, empty levels after."""
    pairs = []
    for level in range(10):
        bid = bids[level] if level < len(bids) else (None, 0)
        ask = asks[level] if level < len(asks) else (None, 0)
        pairs.append(dbn.BidAskPair(px(bid[0]), px(ask[0]), bid[1], ask[1], int(bid[1] > 0), int(ask[1] > 0)))
    return dbn.MBP10Msg(1, instrument_id, T0 + t, px(price), size, action, side, 0, T0 + t, flags=flags,
                        sequence=sequence, levels=pairs)


def quarters(levels: list[tuple[int, int]]) -> list[tuple[float, int]]:
    """(ticks of 0.25, size) -> (price, size)."""
    return [(ticks / 4, size) for ticks, size in levels]


@pytest.mark.parametrize("name", ["book.dbn", "book.dbn.zst"])
def test_mbp10_book_equals_each_records_ten_levels(tmp_path, name):
    """MBP-10 records become a snapshot then level deltas; after each record the book holds exactly its levels."""
    bids = [(400 - 2 * i, 10 + i) for i in range(10)]  # 100.00, 99.50, ... 95.50
    asks = [(401 + 2 * i, 20 + i) for i in range(10)]  # 100.25, 100.75, ...
    bigger = [*bids[:2], (396, 17), *bids[3:]]
    pushed = [bigger[0], (399, 1), *bigger[1:9]]  # a new bid at 99.75 pushes 95.50 out of the ten
    lifted = [(401, 18), *asks[1:]]
    books = [(bids, asks), (bigger, asks), (pushed, asks), (pushed, asks), (pushed, lifted)]
    records = [
        mbp(quarters(bids), quarters(asks), A, flags=SNAP | dbn.F_LAST),
        mbp(quarters(bigger), quarters(asks), A, BID, 99.0, 5, sequence=2, t=SECOND),
        mbp(quarters(pushed), quarters(asks), A, BID, 99.75, 1, sequence=3, t=2 * SECOND),
        mbp(quarters(pushed), quarters(asks), T, BID, 100.25, 2, 0, sequence=4, t=3 * SECOND),
        mbp(quarters(pushed), quarters(lifted), C, ASK, 100.25, 2, sequence=4, t=3 * SECOND),
    ]
    feed = DbnFeed(write_dbn(tmp_path / name, dbn.Schema.MBP_10, records), tick_size="0.25")
    book, seen, events = OrderBook(ES), [], list(feed.events())
    for event in events:
        book.update(event)
        if event.flags & LAST:
            seen.append((book.levels(BUY), book.levels(SELL)))
    assert seen == [books[0], books[1], books[2], books[4]]
    assert isinstance(events[0], BookSnapshot) and events[0].flags == SNAPSHOT | BAD_TS | LAST
    changes = [(e.side, e.price, e.size, e.action, e.flags) for e in events[1:] if isinstance(e, BookDelta)]
    assert changes == [(BUY, 396, 17, UPDATE, LAST), (BUY, 382, 0, DELETE, 0), (BUY, 399, 1, ADD, LAST),
                       (SELL, 401, 18, UPDATE, LAST)]
    [trade] = [e for e in events if isinstance(e, Trade)]
    assert (trade.price, trade.size, trade.aggressor, trade.flags) == (401, 2, BUY, 0)
    assert feed.stats()["snapshots"] == 1 and feed.stats()["gaps"] == 0


def test_mbp10_resyncs_from_the_record_after_a_gap(tmp_path):
    """A skipped sequence number in MBP-10 is counted and the next record is a full snapshot (the book is whole)."""
    bids, asks = [(100.0, 10), (99.75, 11), (99.5, 12)], [(100.25, 20), (100.5, 21)]
    records = [mbp(bids, asks, sequence=1), mbp(bids[:2], asks, C, sequence=5, t=SECOND)]
    feed = DbnFeed(write_dbn(tmp_path / "g.dbn", dbn.Schema.MBP_10, records), tick_size="0.25")
    book, views, events = replay(feed)
    assert [type(e) for e in events] == [BookSnapshot, BookSnapshot] and [e.seq for e in events] == [0, 2]
    assert feed.stats()["gaps"] == 1 and views[-1].state == 0
    assert book.levels(BUY) == [(400, 10), (399, 11)] and book.levels(SELL) == [(401, 20), (402, 21)]


def test_trades_file_gives_trades_of_two_instruments_with_their_symbols(tmp_path):
    """A trades file with two symbols: one Trade per record, ticks per instrument, aggressor from the side."""
    records = [dbn.TradeMsg(1, ES, T0, px(5000.25), 2, T, BID, 0, T0, flags=dbn.F_LAST, sequence=1),
               dbn.TradeMsg(1, NQ, T0 + 5, px(18000.5), 1, T, NONE, 0, T0 + 5, flags=dbn.F_LAST, sequence=1),
               dbn.TradeMsg(1, ES, T0 + 9, px(5000.0), 4, T, ASK, 0, T0 + 9, flags=dbn.F_LAST, sequence=2)]
    path = write_dbn(tmp_path / "t.dbn.zst", dbn.Schema.TRADES, records, version=2,
                     mappings=(mapping("ESM4", ES), mapping("NQM4", NQ)))
    ticks = {"ESM4": "0.25", "NQM4": "0.5"}
    feed = DbnFeed(path, tick_size=ticks.__getitem__)
    assert [(d.instrument_id, d.symbol, d.tick_size, d.price_scale) for d in feed.instruments()] == [
        (ES, "ESM4", "0.25", 250_000_000), (NQ, "NQM4", "0.5", 500_000_000)]
    assert [(e.instrument_id, e.price, e.size, e.aggressor, e.seq) for e in feed.events()] == [
        (ES, 20001, 2, BUY, 0), (NQ, 36001, 1, NO_SIDE, 0), (ES, 20000, 4, SELL, 1)]
    assert feed.stats()["trades"] == 3


@pytest.mark.parametrize("version", [1, 3])
def test_symbols_come_from_symbol_mapping_records_and_system_records_are_counted(tmp_path, version):
    """A live-style file (no metadata mappings): SymbolMappingMsg names the instrument, heartbeats are counted."""
    if version == 1:
        mapping_record = dbn.SymbolMappingMsgV1(1, ES, T0, "ES.FUT", "ESM4", T0, T0)
        heartbeat = dbn.SystemMsgV1(T0, "Heartbeat")
    else:
        mapping_record = dbn.SymbolMappingMsg(1, ES, T0, dbn.SType.RAW_SYMBOL, "ES.FUT", dbn.SType.RAW_SYMBOL, "ESM4",
                                              T0, T0)
        heartbeat = dbn.SystemMsg(T0, "Heartbeat")
    records = [mapping_record, heartbeat, mbo(A, BID, 1, 100.0, 1, sequence=1), heartbeat,
               mbo(A, BID, 2, 100.0, 1, sequence=2)]
    feed = DbnFeed(write_dbn(tmp_path / "live.dbn", dbn.Schema.MBO, records, mappings=(), version=version))
    assert [d.symbol for d in feed.instruments()] == ["ESM4"]
    assert [e.order_id for e in feed.events()] == [1, 2]
    stats = feed.stats()
    assert (stats["symbol_mappings"], stats["system_records"], stats["records"], stats["gaps"]) == (1, 2, 2, 0)


def test_a_price_off_the_tick_grid_names_the_record_and_field(tmp_path):
    """5000.10 with ticks of 0.25 is an error naming record 2 and 'price'; an MBP-10 level names its column."""
    path = write_dbn(tmp_path / "p.dbn", dbn.Schema.MBO, [mbo(A, BID, 1, 5000.0, 1), mbo(A, BID, 2, 5000.1, 1)])
    with pytest.raises(DbnError, match=r"p\.dbn: record 2: field 'price': price 5000\.1 is not a whole number of "
                                       r"ticks of 0\.25 \(ESM4, instrument 4916\); set \[instruments\.ESM4\] "
                                       r"tick_size or pass --tick-size$"):
        list(DbnFeed(path, tick_size="0.25").events())
    bids = [(100.0, 1), (99.75, 1), (99.5, 1), (99.1, 1)]
    path = write_dbn(tmp_path / "l.dbn", dbn.Schema.MBP_10, [mbp(bids, [(100.25, 1)])])
    with pytest.raises(DbnError, match=r"record 1: field 'bid_px_03'"):
        list(DbnFeed(path, tick_size="0.25").events())


def test_a_tick_size_off_dbns_grid_is_refused(tmp_path):
    """A tick size finer than 1e-9 or not a number is a UsageError naming the symbol."""
    path = write_dbn(tmp_path / "s.dbn", dbn.Schema.MBO, [mbo(A, BID, 1, 1.0, 1)])
    for bad in ("0.0000000001", "abc", "0", "-1"):
        with pytest.raises(UsageError, match=rf"tick size '{bad}' of ESM4"):
            DbnFeed(path, tick_size=bad)


@pytest.mark.parametrize("name", ["x.dbn", "x.dbn.zst"])
def test_unsupported_schema_is_one_error(tmp_path, name):
    """An OHLCV file is refused before any event, naming the file and the schema."""
    bar = dbn.OHLCVMsg(dbn.RType.OHLCV_1M, 1, ES, T0, px(1), px(2), px(0.5), px(1.5), 10)
    path = write_dbn(tmp_path / name, dbn.Schema.OHLCV_1M, [bar])
    with pytest.raises(DbnError, match=rf"{name}: schema 'ohlcv-1m' is not supported \(supported: mbo, mbp-10, "
                                       r"trades\)"):
        DbnFeed(path)


def test_a_file_cut_mid_record_is_one_error(tmp_path):
    """A plain file cut 10 bytes into its third record names that record."""
    path = write_dbn(tmp_path / "cut.dbn", dbn.Schema.MBO, [mbo(A, BID, i, 1.0, 1) for i in range(1, 4)])
    path.write_bytes(path.read_bytes()[:-46])
    with pytest.raises(DbnError, match=r"cut\.dbn: record 3: truncated: the file ends 10 bytes into it"):
        DbnFeed(path)


def test_a_zstd_file_cut_short_is_one_error(tmp_path):
    """A .dbn.zst cut inside its frame is refused, not replayed in part."""
    path = write_dbn(tmp_path / "cut.dbn.zst", dbn.Schema.MBO, [mbo(A, BID, i, 1.0, 1) for i in range(1, 400)])
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DbnError, match=r"cut\.dbn\.zst: .*truncated"):
        DbnFeed(path)


def test_wrong_version_garbage_and_empty_files_are_one_error_each(tmp_path):
    """Version 9, a file that is not DBN and an empty file: each refused with what is wrong."""
    path = write_dbn(tmp_path / "v.dbn", dbn.Schema.MBO, [mbo(A, BID, 1, 1.0, 1)])
    raw = bytearray(path.read_bytes())
    raw[3] = 9
    path.write_bytes(bytes(raw))
    with pytest.raises(DbnError, match=r"v\.dbn: unsupported DBN version 9 \(this reader decodes versions 1 to 3\)"):
        DbnFeed(path)
    garbage = tmp_path / "g.dbn"
    garbage.write_bytes(zlib.compress(b"not market data" * 40))
    with pytest.raises(DbnError, match=r"g\.dbn: not a DBN file"):
        DbnFeed(garbage)
    empty = tmp_path / "e.dbn"
    empty.write_bytes(b"")
    with pytest.raises(DbnError, match=r"e\.dbn: empty file"):
        DbnFeed(empty)


def test_flag_bits_are_databentos():
    """Chimera's LAST, SNAPSHOT and BAD_TS bits equal DBN's F_LAST, F_SNAPSHOT and F_BAD_TS_RECV."""
    assert (LAST, SNAPSHOT, BAD_TS) == (dbn.F_LAST, dbn.F_SNAPSHOT, dbn.F_BAD_TS_RECV)


def test_a_dbn_file_merges_with_a_tape(tmp_path):
    """open_feeds on a DBN file and a tape gives one merged feed in replay order, ids kept unique."""
    path = write_dbn(tmp_path / "m.dbn", dbn.Schema.MBO, mbo_session())
    tape = tmp_path / "t.jsonl"
    definition = DbnFeed(path).instruments()[0]
    with TapeWriter(tape, [definition], "test") as writer:
        writer.write(Trade(ES, T0 + 1, T0 + 1, 0, LAST, 500000, 1, BUY))
    feed = open_feeds([path, tape], dbn={"tick_size": "0.25"})
    assert isinstance(feed, MergedFeed)
    assert [d.symbol for d in feed.instruments()] == ["ESM4", "ESM4#2"]
    events = list(feed.events())
    assert len(events) == 13 and [e.ts_recv for e in events] == sorted(e.ts_recv for e in events)
    assert events[6].instrument_id == 1 and isinstance(events[6], Trade)


def test_import_dbn_writes_a_tape_with_the_same_events(tmp_path):
    """import_dbn records the feed to a tape that replays to the same events and instruments."""
    path = write_dbn(tmp_path / "s.dbn.zst", dbn.Schema.MBO, mbo_session())
    report = import_dbn(path, tmp_path / "s.jsonl.gz", tick_size="0.25")
    tape = TapeFeed(tmp_path / "s.jsonl.gz")
    direct = DbnFeed(path, tick_size="0.25")
    assert list(tape.events()) == list(direct.events())
    assert tape.instruments() == direct.instruments()
    assert (report["records"], report["events"], report["symbols"], report["schema"]) == (13, 12, ["ESM4"], "mbo")


def test_import_dbn_leaves_no_tape_when_the_file_is_malformed(tmp_path):
    """A price error part way through removes the partial tape."""
    path = write_dbn(tmp_path / "p.dbn", dbn.Schema.MBO, [mbo(A, BID, 1, 5000.0, 1), mbo(A, BID, 2, 5000.1, 1)])
    with pytest.raises(DbnError, match="record 2"):
        import_dbn(path, tmp_path / "p.jsonl", tick_size="0.25")
    assert not (tmp_path / "p.jsonl").exists()


def side_levels(prices: list[int], sizes: list[int], descending: bool) -> list[tuple[int, int]]:
    """(ticks, size) levels best first."""
    return sorted(zip(prices, sizes, strict=False), reverse=descending)


books = st.tuples(
    st.lists(st.integers(380, 399), max_size=10, unique=True), st.lists(st.integers(1, 4), min_size=10, max_size=10),
    st.lists(st.integers(400, 419), max_size=10, unique=True), st.lists(st.integers(1, 4), min_size=10, max_size=10))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ES, NQ]), books), min_size=1, max_size=25), st.integers(1, 6))
def test_mbp10_deltas_rebuild_every_records_levels_across_batches(records, chunk):
    """Random top-10 books of two instruments, mapped in batches of any size: each book equals its last record."""
    encoded, expected, sequence = [], [], {ES: 0, NQ: 0}
    for iid, (bid_px, bid_sz, ask_px, ask_sz) in records:
        bids = side_levels(bid_px, bid_sz, True)
        asks = side_levels(ask_px, ask_sz, False)
        sequence[iid] += 1
        encoded.append(bytes(mbp(quarters(bids), quarters(asks), sequence=sequence[iid], instrument_id=iid)))
        expected.append((iid, bids, asks))
    rows = np.frombuffer(b"".join(encoded), dtype=np.dtype(dbn.MBP10Msg._dtypes))
    mapper = RecordMapper("x.dbn", "mbp-10", {ES: 250_000_000, NQ: 250_000_000}, True)
    book = {ES: OrderBook(ES), NQ: OrderBook(NQ)}
    for start in range(0, len(rows), chunk):
        mapper.map(rows[start:start + chunk], start + 1)
        for event in mapper.take():
            book[event.instrument_id].update(event)
        latest = {iid: (bids, asks) for iid, bids, asks in expected[:start + chunk]}
        assert {iid: (book[iid].levels(BUY), book[iid].levels(SELL)) for iid in latest} == latest
    assert mapper.finish() == [] and mapper.stats["gaps"] == 0
