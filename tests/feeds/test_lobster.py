"""LOBSTER feed: names, exact times, parse errors, mapping, reconciliation on hand-built and real days."""

from __future__ import annotations

import shutil
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.book import OrderBook
from engine.errors import InputError, ReconciliationError, UsageError
from engine.events import (
    BUY,
    DELETE,
    HIDDEN,
    LAST,
    SELL,
    SNAPSHOT,
    UPDATE,
    BookDelta,
    BookSnapshot,
    MarketState,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Status,
    Trade,
)
from feeds.base import Feed
from feeds.lobster import (
    DUMMY_PRICE,
    LobsterFeed,
    Mismatch,
    _Fallback,
    _messages_fast,
    _messages_slow,
    import_lobster,
    lobster_available,
    locate_sample,
    midnight_ns,
    orderbook_path_for,
    parse_file_name,
    parse_time_ns,
    read_messages,
    read_orderbook,
    reconcile_file,
)

NAME = "TEST_2012-06-21_34200000_57600000"
BASE = midnight_ns(date(2012, 6, 21))
NO_DATA = "LOBSTER sample data not found under $CHIMERA_DATA or ../shared/data"


# ---- helpers ----------------------------------------------------------------------------------------
def msg(i: int, kind: int, oid: int, size: int, ticks: int, side: int) -> str:
    """One message line at 34200 + i ms; ``ticks`` are cents (written as $ x 10000)."""
    price = ticks if kind == 7 else ticks * 100
    return f"{34200 + i // 1000}.{i % 1000:03d}000000,{kind},{oid},{size},{price},{side}"


def book_row(asks, bids, levels: int) -> str:
    """One orderbook line from best-first ``[(ticks, size)]`` per side, padded with dummy levels."""
    cells = []
    for i in range(levels):
        ask = (asks[i][0] * 100, asks[i][1]) if i < len(asks) else (DUMMY_PRICE, 0)
        bid = (bids[i][0] * 100, bids[i][1]) if i < len(bids) else (-DUMMY_PRICE, 0)
        cells += [*ask, *bid]
    return ",".join(map(str, cells))


def write_day(tmp_path, lines, rows, levels=2, name=NAME):
    """Write ``<name>_message_N.csv`` and, unless ``rows`` is None, its orderbook file."""
    message = tmp_path / f"{name}_message_{levels}.csv"
    message.write_text("".join(line + "\n" for line in lines))
    orderbook = tmp_path / f"{name}_orderbook_{levels}.csv"
    if rows is not None:
        orderbook.write_text("".join(book_row(a, b, levels) + "\n" for a, b in rows))
    return message, orderbook


def replay(message, orderbook=None, **options):
    feed = LobsterFeed(message, orderbook, **options)
    return feed, list(feed.events())


def window(book: OrderBook, levels: int):
    return book.top(SELL, levels), book.top(BUY, levels)


def views_at_last(events, levels: int):
    """The window a fresh OrderBook shows after every LAST event of ``events``."""
    book = OrderBook(0, view_levels=levels)
    views = []
    for ev in events:
        book.update(ev)
        if ev.flags & LAST:
            views.append(window(book, levels))
    assert book.check_invariants() == []
    return views


def assert_stream_matches(events, rows, levels):
    """Every message's LAST leaves a consumer book equal to its orderbook row (row 0 after the seed)."""
    views = views_at_last(events, levels)
    expected = [([tuple(x) for x in asks], [tuple(x) for x in bids]) for asks, bids in rows]
    assert views[0] == expected[0]
    assert views[len(views) - (len(rows) - 1):] == expected[1:]


def kinds(events):
    return [type(ev).__name__ for ev in events]


# ---- names, paths, sample data ------------------------------------------------------------------------
def test_file_names_parse_and_pair():
    """A message file name yields symbol, date, session and levels, and names its orderbook file."""
    name = parse_file_name("/x/AMZN_2012-06-21_34200000_57600000_message_5.csv")
    assert name == ("AMZN", date(2012, 6, 21), 34_200_000, 57_600_000, "message", 5)
    assert parse_file_name("notes.csv") is None
    assert orderbook_path_for("/x/AMZN_2012-06-21_34200000_57600000_message_5.csv").name == (
        "AMZN_2012-06-21_34200000_57600000_orderbook_5.csv")
    with pytest.raises(UsageError, match="not a LOBSTER message file name"):
        orderbook_path_for("/x/AMZN_2012-06-21_34200000_57600000_orderbook_5.csv")


def test_locate_sample_extracts_once(tmp_path, monkeypatch):
    """The sample zip is found under $CHIMERA_DATA/lobster, extracted into the cache once, then reused."""
    data = tmp_path / "data" / "lobster"
    data.mkdir(parents=True)
    with zipfile.ZipFile(data / "LOBSTER_SampleFile_AMZN_2012-06-21_2.zip", "w") as zf:
        zf.writestr("AMZN_2012-06-21_34200000_57600000_message_2.csv", "34200.1,1,1,1,1000000,1\n")
        zf.writestr("AMZN_2012-06-21_34200000_57600000_orderbook_2.csv", "1,2,3,4,5,6,7,8\n")
        zf.writestr("LOBSTER_SampleFiles_ReadMe.txt", "readme")
    monkeypatch.setenv("CHIMERA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CHIMERA_CACHE", str(tmp_path / "cache"))
    assert lobster_available(2)
    message, orderbook = locate_sample(2)
    assert message.parent == tmp_path / "cache" / "lobster"
    assert message.read_text() == "34200.1,1,1,1,1000000,1\n" and orderbook.name.endswith("_orderbook_2.csv")
    stamp = message.stat().st_mtime_ns
    assert locate_sample(2)[0].stat().st_mtime_ns == stamp
    assert not lobster_available(3)
    with pytest.raises(UsageError, match="LOBSTER sample for 3 level"):
        locate_sample(3)


# ---- time ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("day", [date(2012, 6, 21), date(2012, 1, 4)])
def test_times_are_exact_ns_in_new_york(day):
    """Seconds after New York midnight become exact epoch ns, in summer (UTC-4) and winter (UTC-5)."""
    hours = 4 if day.month == 6 else 5
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hours)
    expected = int(midnight.timestamp()) * 1_000_000_000 + 34_200_017_459_617
    assert parse_time_ns("34200.017459617", midnight_ns(day)) == expected
    assert parse_time_ns("34200.5", midnight_ns(day)) == expected - 17_459_617 + 500_000_000
    assert parse_time_ns("34200", midnight_ns(day)) == expected - 17_459_617


def test_summer_sample_time_and_extra_digits():
    """The sample's first time is 13:30:00.017459617 UTC; digits beyond the ns round half up."""
    assert parse_time_ns("34200.017459617", BASE) == 1_340_285_400_017_459_617
    assert parse_time_ns("43002.632812672004", BASE) - BASE == 43_002_632_812_672
    assert parse_time_ns("1.0000000015", BASE) - BASE == 1_000_000_002
    with pytest.raises(ValueError):
        parse_time_ns("1e5", BASE)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 86_399), st.text("0123456789", min_size=0, max_size=12),
                          st.sampled_from([1, 2, 3, 4, 5, 7]), st.integers(0, 10**12),
                          st.integers(1, 10**6), st.integers(-1, 10**9), st.sampled_from([-1, 1])),
                min_size=1, max_size=30))
def test_vectorised_parse_equals_line_parse(rows):
    """The numpy message reader returns exactly what the line-by-line reader returns."""
    lines = [f"{s}{'.' + f if f else ''},{k},{o},{n},{p},{d}" for s, f, k, o, n, p, d in rows]
    data = ("\n".join(lines) + "\n").encode()
    slow = _messages_slow("x.csv", data, BASE)
    try:
        fast = _messages_fast(data, BASE)
    except _Fallback:  # allowed: such files go to the line reader (e.g. times without decimals)
        return
    assert all((a == b).all() for a, b in zip(fast[:6], slow[:6], strict=True)) and fast[6] == slow[6]


# ---- malformed input ----------------------------------------------------------------------------------
GOOD = "34200.1,1,7,100,1000000,1"


@pytest.mark.parametrize(("line", "field", "problem"), [
    ("34200.2,1,7,100,1000000", "line", "expected 6 comma-separated fields, found 5"),
    ("34200.2,1,seven,100,1000000,1", "order_id", "not a 64-bit integer: 'seven'"),
    ("34200.2x,1,7,100,1000000,1", "time", "not a decimal number of seconds"),
    ("34200.2,6,7,100,1000000,1", "type", "unknown message type 6"),
    ("34200.2,1,7,100,1000000,0", "direction", "must be 1 or -1, got 0"),
    ("34200.2,1,7,100,1000050,1", "price", "1000050 is not a multiple of 100"),
    ("34200.2,1,7,0,1000000,1", "size", "must be positive"),
    ("34200.2,7,0,0,2,-1", "price", "needs price -1, 0 or 1"),
    ("34200.05,1,7,100,1000000,1", "time", "out of order: 34200.050000000 s is earlier than 34200.100000000"),
    ("", "line", "blank line"),
])
def test_malformed_message_lines_are_located(tmp_path, line, field, problem):
    """A malformed message line raises InputError naming file, line 2 and the field at fault."""
    message = tmp_path / f"{NAME}_message_1.csv"
    message.write_text(f"{GOOD}\n{line}\n{GOOD.replace('34200.1', '34200.3')}\n")
    with pytest.raises(InputError) as caught:
        read_messages(message, BASE)
    assert str(caught.value).startswith(f"{message}:2: field {field!r}: ")
    assert problem in caught.value.problem


@pytest.mark.parametrize(("line", "field", "problem"), [
    ("1000100,5,990000", "line", "expected 4 comma-separated fields (1 levels x 4), found 3"),
    ("1000100,5,990000,x", "bid_size_1", "not a 64-bit integer: 'x'"),
    ("1000150,5,990000,7", "ask_price_1", "price not a positive multiple of 100"),
    ("1000100,0,990000,7", "ask_size_1", "an occupied level must have a positive size"),
    (f"{DUMMY_PRICE},3,990000,7", "ask_size_1", "an empty (dummy) level must have size 0"),
])
def test_malformed_orderbook_lines_are_located(tmp_path, line, field, problem):
    """A malformed orderbook line raises InputError naming file, line 2 and the column at fault."""
    orderbook = tmp_path / f"{NAME}_orderbook_1.csv"
    orderbook.write_text(f"1000100,5,990000,7\n{line}\n")
    with pytest.raises(InputError) as caught:
        read_orderbook(orderbook, 1)
    assert str(caught.value).startswith(f"{orderbook}:2: field {field!r}: ")
    assert problem in caught.value.problem


def test_unsorted_levels_and_row_count_are_errors(tmp_path):
    """Levels out of price order, or an orderbook shorter than the message file, are InputErrors."""
    orderbook = tmp_path / f"{NAME}_orderbook_2.csv"
    orderbook.write_text("1000100,5,990000,7,1000000,5,980000,7\n")
    with pytest.raises(InputError, match=r":1: field 'ask_price_2': 1000000: ask prices must be strictly"):
        read_orderbook(orderbook, 2)
    message, orderbook = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1), msg(1, 1, 2, 5, 99, 1)],
                                   [([], [(100, 5)])])
    with pytest.raises(InputError, match=r"orderbook_2.csv:2: field 'line': 1 orderbook rows for 2 messages"):
        replay(message)


def test_missing_orderbook_needs_reconcile_off(tmp_path):
    """Without its orderbook file the feed refuses to reconcile, naming --no-reconcile, and replays when told."""
    message, orderbook = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1), msg(1, 1, 2, 7, 101, -1)], None)
    with pytest.raises(UsageError) as caught:
        LobsterFeed(message)
    assert str(caught.value) == (f"{orderbook}: LOBSTER orderbook file not found; reconciliation needs it: put it "
                                 "beside the message file, or use --no-reconcile to read the message file alone")

    feed, events = replay(message, reconcile=False)
    assert kinds(events) == ["OrderAdd", "OrderAdd"] and [ev.seq for ev in events] == [0, 1]
    assert feed.stats()["messages"] == 2 and feed.report().rows == 0
    orderbook.write_text(book_row([], [(100, 5)], 2) + "\n")
    with pytest.raises(UsageError, match="this is the orderbook file; pass the message file"):
        LobsterFeed(orderbook)


def test_without_reconciliation_only_the_message_file_is_read(tmp_path):
    """reconcile=False ignores the orderbook file beside the message file, even an unreadable one."""
    message, orderbook = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1)], None)
    orderbook.write_text("not,an,orderbook\n")
    feed, events = replay(message, reconcile=False)
    assert feed.orderbook_path is None and kinds(events) == ["OrderAdd"]


def test_overrides_for_foreign_file_names(tmp_path):
    """A file outside the naming scheme needs --symbol and --date; the orderbook path is then explicit."""
    message, orderbook = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1)], [([], [(100, 5)])], levels=1)
    plain = tmp_path / "day.csv"
    plain.write_text(message.read_text())
    scheme = "the file name does not follow LOBSTER's scheme (TICKER_YYYY-MM-DD_start_end_message_N.csv)"
    with pytest.raises(UsageError) as caught:
        LobsterFeed(plain, orderbook)
    assert str(caught.value) == f"{plain}: {scheme}; give --symbol TICKER and --date YYYY-MM-DD"
    with pytest.raises(UsageError) as caught:
        LobsterFeed(plain, orderbook, symbol="XYZ")
    assert str(caught.value) == f"{plain}: {scheme}; give --date YYYY-MM-DD"
    with pytest.raises(UsageError, match=r"day.csv: --date '21/06/2012' is not a date; give it as YYYY-MM-DD"):
        LobsterFeed(plain, orderbook, symbol="XYZ", day="21/06/2012")
    with pytest.raises(UsageError, match="its orderbook file cannot be found from this name and reconciliation "
                       "needs it: give it .*, or use --no-reconcile"):
        LobsterFeed(plain, symbol="XYZ", day="2012-06-21")
    feed, events = replay(plain, orderbook, symbol="XYZ", day="2012-06-21", instrument_id=3)
    (definition,) = feed.instruments()
    assert definition.symbol == "XYZ" and definition.instrument_id == 3 and events[0].instrument_id == 3
    assert definition.session_open == BASE + 34_200 * 1_000_000_000
    feed, events = replay(plain, symbol="XYZ", day="2012-06-21", reconcile=False)
    assert kinds(events) == ["OrderAdd"] and feed.orderbook_path is None


def test_empty_file_and_directory_are_refused_by_name(tmp_path):
    """An empty message or orderbook file says "empty file", a directory "is a directory"."""
    message, orderbook = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1)], [([], [(100, 5)])])
    orderbook.write_text("")
    with pytest.raises(UsageError, match=f"^{orderbook}: empty file \\(0 bytes\\); give a LOBSTER orderbook file"):
        LobsterFeed(message)
    message.write_text("")
    with pytest.raises(UsageError, match=f"^{message}: empty file \\(0 bytes\\); give a LOBSTER message file"):
        LobsterFeed(message)
    folder = tmp_path / f"{NAME}_message_1.csv"
    folder.mkdir()
    with pytest.raises(UsageError, match=f"^{folder}: is a directory; give a LOBSTER message file"):
        LobsterFeed(folder)


# ---- mapping and reconciliation on hand-built days ----------------------------------------------------
def test_instrument_definition_and_feed_protocol(tmp_path):
    """The feed is a Feed; its InstrumentDef carries symbol, venue, tick, scale and session times."""
    message, _ = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1)], [([], [(100, 5)])])
    feed = LobsterFeed(message, instrument_id=4)
    assert isinstance(feed, Feed)
    (definition,) = feed.instruments()
    assert (definition.symbol, definition.venue, definition.tick_size, definition.price_scale) == (
        "TEST", "NASDAQ", "0.01", 100)
    assert definition.session_open == BASE + 34_200_000_000_000
    assert definition.session_close == BASE + 57_600_000_000_000
    assert feed.stats() == {"messages": 0, "events": 0}


def test_adds_cancels_deletes_and_executions(tmp_path):
    """Each message type maps to its events, with one ts, consecutive seq and LAST on the group's end."""
    lines = [
        msg(0, 1, 7, 200, 10012, -1),  # message 0: already inside the seed
        msg(1, 1, 11, 50, 10001, 1),  # new best bid; 9998 leaves the 2-level window
        msg(2, 2, 11, 20, 10001, 1),  # partial cancel
        msg(3, 4, 11, 30, 10001, 1),  # visible execution empties 10001: 9998 re-enters, size known
        msg(4, 4, 99, 200, 10000, 1),  # execution of an order added before the file started
        msg(5, 3, 7, 200, 10012, -1),  # delete of the seeded order: 10015 enters from beyond the window
        msg(6, 5, 0, 10, 10005, -1),  # hidden execution: a trade, no book change
    ]
    rows = [
        ([(10010, 300), (10012, 200)], [(10000, 500), (9998, 100)]),
        ([(10010, 300), (10012, 200)], [(10001, 50), (10000, 500)]),
        ([(10010, 300), (10012, 200)], [(10001, 30), (10000, 500)]),
        ([(10010, 300), (10012, 200)], [(10000, 500), (9998, 100)]),
        ([(10010, 300), (10012, 200)], [(10000, 300), (9998, 100)]),
        ([(10010, 300), (10015, 400)], [(10000, 300), (9998, 100)]),
        ([(10010, 300), (10015, 400)], [(10000, 300), (9998, 100)]),
    ]
    feed, events = replay(*write_day(tmp_path, lines, rows))
    assert kinds(events) == ["BookSnapshot", "OrderAdd", "OrderCancel", "OrderExecute", "Trade",
                             "OrderExecute", "Trade", "OrderDelete", "BookDelta", "Trade"]
    t = [BASE + (34_200_000 + i) * 1_000_000 for i in range(7)]
    assert events[0] == BookSnapshot(0, t[0], t[0], 0, SNAPSHOT | LAST, ((10000, 500, 0), (9998, 100, 0)),
                                     ((10010, 300, 0), (10012, 200, 0)), 2, False)
    assert events[1] == OrderAdd(0, t[1], t[1], 1, LAST, 11, BUY, 10001, 50)
    assert events[2] == OrderCancel(0, t[2], t[2], 2, LAST, 11, BUY, 10001, 20, -1)
    assert events[3:5] == [OrderExecute(0, t[3], t[3], 3, 0, 11, BUY, 10001, 30, 0),
                           Trade(0, t[3], t[3], 4, LAST, 10001, 30, SELL)]
    assert events[6] == Trade(0, t[4], t[4], 6, LAST, 10000, 200, SELL)
    assert events[7:9] == [OrderDelete(0, t[5], t[5], 7, 0, 7, SELL, 10012, 200),
                           BookDelta(0, t[5], t[5], 8, LAST, SELL, 10015, 400, UPDATE, 0)]
    assert events[9] == Trade(0, t[6], t[6], 9, LAST | HIDDEN, 10005, 10, BUY, 0, 0, True)
    assert_stream_matches(events, rows, 2)
    report = feed.report()
    assert (report.rows, report.levels_checked, report.unexplained_mismatches) == (7, 28, 0)
    assert (report.window_entries, report.window_entries_adopted, report.entry_levels_reset) == (2, 1, 0)
    assert report.book.unknown_orders == 2  # order 99 and the seeded order 7


def test_first_message_trade_follows_the_seed(tmp_path):
    """Message 0's execution is inside the seed snapshot; its trade is still emitted after it."""
    lines = [msg(0, 4, 5, 40, 10010, -1), msg(1, 1, 6, 10, 10000, 1)]
    rows = [([(10010, 60)], [(9990, 10)]), ([(10010, 60)], [(10000, 10)])]
    _, events = replay(*write_day(tmp_path, lines, rows, levels=1))
    assert kinds(events) == ["BookSnapshot", "Trade", "OrderAdd"]
    assert events[1].aggressor == BUY and events[1].flags == LAST and events[1].seq == 1
    assert_stream_matches(events, rows, 1)


def test_halt_quote_and_resume_become_status_events(tmp_path):
    """Type 7 with price -1, 0, 1 maps to HALTED, QUOTE_ONLY and OPEN, and the book stays put."""
    lines = [msg(0, 1, 1, 5, 100, 1), msg(1, 7, 0, 0, -1, -1), msg(2, 7, 0, 0, 0, -1), msg(3, 7, 0, 0, 1, -1)]
    rows = [([], [(100, 5)])] * 4
    _, events = replay(*write_day(tmp_path, lines, rows))
    assert [(type(ev), getattr(ev, "state", None)) for ev in events[1:]] == [
        (Status, MarketState.HALTED), (Status, MarketState.QUOTE_ONLY), (Status, MarketState.OPEN)]
    assert all(ev.flags == LAST for ev in events[1:])
    assert_stream_matches(events, rows, 2)


def test_stale_level_beyond_the_window_is_removed(tmp_path):
    """A level that vanished while out of view is deleted when the window comes back over it."""
    lines = [
        msg(0, 1, 1, 10, 10010, -1),
        msg(1, 1, 2, 5, 10008, -1),  # pushes 10012 (held by the book) beyond a 2-level window
        msg(2, 3, 2, 5, 10008, -1),  # meanwhile 10012 left and 10020 arrived, out of view
    ]
    rows = [
        ([(10010, 10), (10012, 30)], [(10000, 5)]),
        ([(10008, 5), (10010, 10)], [(10000, 5)]),
        ([(10010, 10), (10020, 50)], [(10000, 5)]),
    ]
    feed, events = replay(*write_day(tmp_path, lines, rows))
    ts = events[-1].ts_event
    assert events[-3:] == [
        OrderDelete(0, ts, ts, 2, 0, 2, SELL, 10008, 5),
        BookDelta(0, ts, ts, 3, 0, SELL, 10012, 0, DELETE, 0),
        BookDelta(0, ts, ts, 4, LAST, SELL, 10020, 50, UPDATE, 0),
    ]
    assert_stream_matches(events, rows, 2)
    assert feed.report().window_entries_adopted == 2 and feed.report().unexplained_mismatches == 0


def test_reentering_level_forgets_orders_that_may_have_changed(tmp_path):
    """A level coming back into view drops its old L3 orders, so a replaced order cannot overdraw it."""
    lines = [
        msg(0, 1, 1, 10, 10010, -1),
        msg(1, 1, 13, 25, 10020, -1),  # the level at 10020 is order 13 only
        msg(2, 1, 14, 5, 10009, -1),  # 10020 leaves the window; out of view 13 is replaced by 77 (25)
        msg(3, 3, 14, 5, 10009, -1),  # 10020 re-enters with the same size
        msg(4, 3, 77, 25, 10020, -1),  # the replacement goes: the level must empty
    ]
    rows = [
        ([(10010, 10)], [(10000, 5)]),
        ([(10010, 10), (10020, 25)], [(10000, 5)]),
        ([(10009, 5), (10010, 10)], [(10000, 5)]),
        ([(10010, 10), (10020, 25)], [(10000, 5)]),
        ([(10010, 10)], [(10000, 5)]),
    ]
    feed, events = replay(*write_day(tmp_path, lines, rows))
    deltas = [(ev.price, ev.size, ev.action) for ev in events if isinstance(ev, BookDelta)]
    assert deltas == [(10020, 0, DELETE), (10020, 25, UPDATE)]
    assert_stream_matches(events, rows, 2)
    report = feed.report()
    assert (report.entry_levels_reset, report.unexplained_mismatches, report.book.overdrawn) == (1, 0, 0)


def test_disagreement_inside_the_window_is_unexplained(tmp_path):
    """A size that differs inside the known window is reported with its line, then repaired."""
    lines = [msg(0, 1, 1, 10, 10010, -1), msg(1, 2, 1, 4, 10010, -1), msg(2, 1, 2, 3, 10000, 1)]
    rows = [([(10010, 10)], [(9990, 5)]), ([(10010, 5)], [(9990, 5)]), ([(10010, 5)], [(10000, 3)])]
    feed, events = replay(*write_day(tmp_path, lines, rows, levels=1))
    report = feed.report()
    assert report.unexplained_mismatches == 1 and report.rows_compared == 1
    assert [(m.line, m.side, m.price, m.ours, m.file) for m in report.mismatches] == [(2, SELL, 10010, 6, 5)]
    ts = events[2].ts_event
    assert events[2] == BookDelta(0, ts, ts, 2, LAST, SELL, 10010, 5, UPDATE, 0)
    assert events[1].flags == 0
    assert_stream_matches(events, rows, 1)


def test_a_mismatch_reads_as_one_line_and_is_an_exit_3_error(tmp_path):
    """The first unexplained mismatch is described with its line, side, price and both sizes in an exit-3 error."""
    lines = [msg(0, 1, 1, 10, 10010, -1), msg(1, 2, 1, 4, 10010, -1), msg(2, 1, 2, 3, 10000, 1)]
    rows = [([(10010, 10)], [(9990, 5)]), ([(10010, 5)], [(9990, 5)]), ([(10010, 5)], [(10000, 3)])]
    message, orderbook = write_day(tmp_path, lines, rows, levels=1)
    feed = LobsterFeed(message)
    assert feed.reconciliation_error() is None  # nothing replayed yet
    list(feed.events())
    (mismatch,) = feed.report().mismatches
    first = "line 2 (message type 2): ask $100.10 has size 5 in the orderbook file, 6 in the rebuilt book"
    assert mismatch.describe() == first
    assert Mismatch(7, 1, BUY, 999, 0, 3).describe() == (
        "line 7 (message type 1): bid $9.99 has size 3 in the orderbook file, 0 in the rebuilt book")
    error = feed.reconciliation_error()
    assert isinstance(error, ReconciliationError) and error.exit_code == 3
    assert str(error) == (f"{message}: 1 unexplained reconciliation mismatch with {orderbook.name}, the first at "
                          f"{first} - check that the two files belong together (same day, same levels)")
    clean, _ = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1)], [([], [(100, 5)])], levels=3)
    feed = LobsterFeed(clean)
    list(feed.events())
    assert feed.reconciliation_error() is None


def test_file_change_without_a_message_is_unexplained(tmp_path):
    """A side that changes in the file though no message touched it is an unexplained mismatch."""
    lines = [msg(0, 1, 1, 10, 10010, -1), msg(1, 1, 2, 4, 10011, -1), msg(2, 5, 0, 3, 10005, 1)]
    rows = [([(10010, 10)], [(10000, 5)]), ([(10010, 10), (10011, 4)], [(10000, 6)]),
            ([(10010, 10), (10011, 4)], [(10000, 7)])]
    feed, events = replay(*write_day(tmp_path, lines, rows, levels=2))
    report = feed.report()
    assert [(m.line, m.message_type, m.side, m.price, m.ours, m.file) for m in report.mismatches] == [
        (2, 1, BUY, 10000, 5, 6), (3, 5, BUY, 10000, 6, 7)]
    assert_stream_matches(events, rows, 2)


def test_changes_beside_the_message_are_unexplained(tmp_path):
    """Inside the known window, a file change at a price no message touched is unexplained."""
    lines = [
        msg(0, 1, 1, 10, 10010, -1),
        msg(1, 1, 2, 5, 10008, -1),  # the window shifts, and 10010 changes size as well
        msg(2, 2, 2, 2, 10008, -1),  # prices stay, and 10010 changes size as well
        msg(3, 2, 9, 1, 10000, 1),  # a bid level appears on a side the file shows in full
    ]
    rows = [
        ([(10010, 10), (10012, 30)], [(10000, 5)]),
        ([(10008, 5), (10010, 11)], [(10000, 5)]),
        ([(10008, 3), (10010, 12)], [(10000, 5)]),
        ([(10008, 3), (10010, 12)], [(10000, 4), (9995, 3)]),
    ]
    feed, events = replay(*write_day(tmp_path, lines, rows, levels=2))
    assert [(m.line, m.side, m.price, m.ours, m.file) for m in feed.report().mismatches] == [
        (2, SELL, 10010, 10, 11), (3, SELL, 10010, 11, 12), (4, BUY, 9995, 0, 3)]
    assert_stream_matches(events, rows, 2)


def test_reused_order_id_is_checked_level_by_level(tmp_path):
    """An order id added twice moves the book at two prices, so its row is compared level by level."""
    lines = [msg(0, 1, 1, 10, 10010, -1), msg(1, 1, 5, 3, 10012, -1), msg(2, 1, 5, 7, 10020, -1)]
    rows = [([(10010, 10)], [(10000, 5)]), ([(10010, 10), (10012, 3)], [(10000, 5)]),
            ([(10010, 10), (10012, 3), (10020, 7)], [(10000, 5)])]
    feed, events = replay(*write_day(tmp_path, lines, rows, levels=3))
    report = feed.report()
    assert [(m.line, m.price, m.ours, m.file) for m in report.mismatches] == [(3, 10012, 0, 3)]
    assert report.book.duplicate_orders == 1 and report.rows_compared == 2  # both lines of order 5
    assert_stream_matches(events, rows, 3)


def test_import_lobster_writes_a_tape(tmp_path):
    """import_lobster records the reconciled stream to a tape and returns the report as plain data."""
    from feeds.tape import TapeFeed

    message, orderbook = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1), msg(1, 1, 2, 7, 101, -1)],
                                   [([], [(100, 5)]), ([(101, 7)], [(100, 5)])])
    report = import_lobster(message, None, tmp_path / "day.jsonl")
    assert (report["rows"], report["unexplained_mismatches"], report["mismatch_examples"]) == (2, 0, [])
    assert kinds(TapeFeed(tmp_path / "day.jsonl").events()) == ["BookSnapshot", "OrderAdd"]


# ---- a simulated full-depth market, seen through a window ----------------------------------------------
class Truth:
    """A full-depth L3 market; ops touching the top ``levels`` of a side are written as LOBSTER lines."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self.orders: dict[int, list[int]] = {}  # id -> [side, price, size], insertion = time priority
        self.next_id = 1000
        self.lines: list[str] = []
        self.rows: list[tuple] = []

    def depth(self, side: int) -> list[tuple[int, int]]:
        totals: dict[int, int] = {}
        for s, price, size in self.orders.values():
            if s == side:
                totals[price] = totals.get(price, 0) + size
        return sorted(totals.items(), reverse=side == BUY)

    def visible(self, side: int, price: int) -> bool:
        top = self.depth(side)[: self.levels]
        return len(top) < self.levels or (price >= top[-1][0] if side == BUY else price <= top[-1][0])

    def apply(self, kind: int, oid: int, side: int, price: int, size: int) -> None:
        seen = self.visible(side, price)
        if kind == 1:
            self.orders[oid] = [side, price, size]
        elif kind in (2, 4) and size < self.orders[oid][2]:
            self.orders[oid][2] -= size
        elif kind != 5:
            del self.orders[oid]
        if kind == 5 or seen or self.visible(side, price):
            self.lines.append(msg(len(self.lines), kind, oid, size, price, side))
            self.rows.append((self.depth(SELL)[: self.levels], self.depth(BUY)[: self.levels]))

    def step(self, op: int, side: int, offset: int, size: int, pick: int) -> None:
        bids, asks = self.depth(BUY), self.depth(SELL)
        best_bid = bids[0][0] if bids else (asks[0][0] - 1 if asks else 1000)
        best_ask = asks[0][0] if asks else best_bid + 1
        mine = [oid for oid, (s, _, _) in self.orders.items() if s == side]
        if op == 0 or not mine:
            price = best_ask - 1 - offset if side == BUY else best_bid + 1 + offset
            self.next_id += 1
            self.apply(1, self.next_id, side, price, size)
        elif op == 5:
            self.apply(5, 0, side, best_bid if side == BUY else best_ask, size)
        elif op == 4:  # execution of the front order at the best price
            best = (bids if side == BUY else asks)[0][0]
            oid = next(o for o in mine if self.orders[o][1] == best)
            self.apply(4, oid, side, best, min(size, self.orders[oid][2]))
        else:
            oid = mine[pick % len(mine)]
            _, price, left = self.orders[oid]
            if op in (1, 2) and left > 1:
                self.apply(2, oid, side, price, 1 + size % (left - 1))
            else:
                self.apply(3, oid, side, price, left)
            if op == 6:  # cancel/replace: a new order of the same size at the back of the same level
                self.next_id += 1
                self.apply(1, self.next_id, side, price, left)


def check_market(folder, levels, steps) -> int:
    """Play ``steps`` on a full-depth market, reconcile its LOBSTER files; returns the entries seen."""
    truth = Truth(levels)
    for i in range(4):  # orders resting before the file starts: their ids never appear in an add
        truth.orders[i + 1] = [BUY, 1000 - 2 * i, 10 + i]
        truth.orders[i + 11] = [SELL, 1001 + 2 * i, 20 + i]
    for step in steps:
        truth.step(*step)
    if not truth.lines:
        return 0
    folder.mkdir()
    message = folder / f"{NAME}_message_{levels}.csv"
    message.write_text("".join(line + "\n" for line in truth.lines))
    message.with_name(f"{NAME}_orderbook_{levels}.csv").write_text(
        "".join(book_row(a, b, levels) + "\n" for a, b in truth.rows))
    feed, events = replay(message)
    report = feed.report()
    assert report.unexplained_mismatches == 0, report.mismatches
    assert [ev.seq for ev in events] == list(range(len(events)))
    assert_stream_matches(events, truth.rows, levels)
    return report.window_entries


STEP = st.tuples(st.integers(0, 6), st.sampled_from([BUY, SELL]), st.integers(0, 6),
                 st.sampled_from([5, 10, 20, 35]), st.integers(0, 50))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(levels=st.integers(1, 3), steps=st.lists(STEP, min_size=1, max_size=80))
def test_any_market_seen_through_a_window_reconciles(tmp_path, levels, steps):
    """Whatever happens out of view, the rebuilt window equals the file after every message, unexplained 0."""
    check_market(tmp_path / f"m{abs(hash((levels, tuple(steps))))}", levels, steps)


def test_many_random_markets_reconcile(tmp_path):
    """300 seeded random markets (cancel/replace out of view included) all reconcile without mismatch."""
    rng = np.random.default_rng(20120621)
    entries = 0
    for run in range(300):
        steps = [(int(rng.integers(0, 7)), int(rng.choice([BUY, SELL])), int(rng.integers(0, 7)),
                  int(rng.choice([5, 10, 20, 35])), int(rng.integers(0, 51)))
                 for _ in range(rng.integers(1, 80))]
        entries += check_market(tmp_path / f"run{run}", int(rng.integers(1, 4)), steps)
    assert entries > 500  # the window edge moved a lot: the property was exercised


# ---- the real AMZN sample days ---------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[1, 5])
def real_day(request, tmp_path_factory):
    """The reconciled AMZN 2012-06-21 day for 1 and 5 levels: (feed, events, orderbook rows)."""
    if not lobster_available(request.param):
        pytest.skip(NO_DATA)
    message, orderbook = locate_sample(request.param, tmp_path_factory.mktemp("lobster"))
    feed = LobsterFeed(message)
    return feed, list(feed.events()), read_orderbook(orderbook, request.param)


def seed_groups(feed) -> int:
    """LAST groups sharing row 0: the snapshot, plus message 0's trade or status if it has one."""
    with feed.message_path.open() as handle:
        return 2 if handle.readline().split(",")[1] in ("4", "5", "7") else 1


def test_real_day_has_no_unexplained_mismatch(real_day):
    """Every row of both sample days is verified, with zero unexplained mismatches."""
    feed, events, rows = real_day
    report = feed.report()
    assert report.unexplained_mismatches == 0, report.mismatches
    assert report.rows == len(rows.ask_n)
    assert report.book.crossed == 0 and report.book.overdrawn == 0 and report.book.gaps == 0
    if rows.levels == 5:
        assert feed.stats()["messages"] == 155_935


def altered_sample_day(level: int, folder: Path) -> tuple[Path, Mismatch]:
    """A copy of the AMZN sample day in ``folder`` whose orderbook file has one best-ask size raised by 1
    (mid-day); returns the message file and the mismatch it must cause."""
    message, orderbook = locate_sample(level)
    books = orderbook.read_bytes().split(b"\n")
    row = len(books) // 2
    while int(books[row].split(b",")[0]) == DUMMY_PRICE:
        row += 1
    cells = books[row].split(b",")
    size = int(cells[1])
    books[row] = b",".join([cells[0], str(size + 1).encode(), *cells[2:]])
    (folder / orderbook.name).write_bytes(b"\n".join(books))
    copy = Path(shutil.copy(message, folder / message.name))
    kind = int(copy.read_bytes().split(b"\n", row + 1)[row].split(b",")[1])
    return copy, Mismatch(row + 1, kind, SELL, int(cells[0]) // 100, size, size + 1)


def test_real_day_altered_orderbook_row_is_the_first_mismatch(real_day, tmp_path):
    """One best-ask size changed in a copy of the real day's orderbook file is reported at exactly its row."""
    feed, _, rows = real_day
    message, expected = altered_sample_day(rows.levels, tmp_path)
    altered = LobsterFeed(message)
    list(altered.batches())
    report = altered.report()
    assert report.mismatches[0] == expected and report.unexplained_mismatches >= 1
    assert feed.report().unexplained_mismatches == 0
    assert str(altered.reconciliation_error()).startswith(f"{message}: {report.unexplained_mismatches:,} unexplained "
                                                          f"reconciliation mismatch")


def test_real_day_stream_rebuilds_the_file_window(real_day):
    """A fresh OrderBook fed the event stream shows exactly the orderbook file's window after each message."""
    feed, events, rows = real_day
    w, book = rows.levels, OrderBook(0, view_levels=rows.levels)
    asks, bids = rows.ask_px.tolist(), rows.bid_px.tolist()
    ask_sz, bid_sz = rows.ask_sz.tolist(), rows.bid_sz.tolist()
    row, shared, bad = 0, seed_groups(feed), []
    for ev in events:
        book.update(ev)
        if not ev.flags & LAST:
            continue
        if shared > 1:  # the snapshot's LAST: message 0's own trade or status follows on row 0
            shared -= 1
            continue
        na, nb = int(rows.ask_n[row]), int(rows.bid_n[row])
        if (book.ask_prices[:w] != asks[row][:na] or book.ask_sizes[:w] != ask_sz[row][:na]
                or book.bid_prices[-w:] != bids[row][w - nb:] or book.bid_sizes[-w:] != bid_sz[row][w - nb:]):
            bad.append(row + 1)
        row += 1
    assert row == len(asks) and bad == []
    assert [ev.seq for ev in events[:1000]] == list(range(1000)) and events[-1].seq == len(events) - 1


def test_reconcile_file_reports_the_day(real_day):
    """reconcile_file on the sample day returns the same figures as the feed's own report."""
    feed, events, _ = real_day
    report = reconcile_file(feed.message_path, feed.orderbook_path)
    assert report == feed.report() and report.events == len(events)
