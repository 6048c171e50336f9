"""Tests for feeds/merge.py: merge order, instrument id and symbol remapping, stats, open_feed."""

from __future__ import annotations

import gzip
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ChimeraError, InputError, UsageError
from engine.events import LAST, Clock, Event, InstrumentDef, Trade, sort_key
from feeds.base import Feed
from feeds.merge import MergedFeed, open_feed, open_feeds
from feeds.tape import TapeFeed, TapeWriter, record


def definition(instrument_id: int, symbol: str) -> InstrumentDef:
    return InstrumentDef(instrument_id, 0, 0, 0, 0, symbol, "NASDAQ", "0.01", 100)


class ListFeed:
    """A feed over a list held in memory, with fixed stats."""

    def __init__(self, events: list[Event], defs: list[InstrumentDef], stats: dict | None = None) -> None:
        self._events, self._defs, self._stats = events, defs, stats or {}

    def instruments(self) -> list[InstrumentDef]:
        return self._defs

    def events(self):
        return iter(self._events)

    def stats(self) -> dict[str, int]:
        return dict(self._stats)


def clocks(instrument_id: int, times: list[int]) -> list[Event]:
    return [Clock(instrument_id, t, t, seq, LAST) for seq, t in enumerate(times)]


def test_colliding_ids_are_renumbered_in_feed_order():
    """Two feeds both using id 0 get ids 0 and 1, and the second feed's events are rewritten."""
    first = clocks(0, [1, 4, 6])
    second = clocks(0, [2, 4, 5])
    merged = MergedFeed([ListFeed(first, [definition(0, "AMZN")]), ListFeed(second, [definition(0, "AAPL")])])
    assert [(d.instrument_id, d.symbol) for d in merged.instruments()] == [(0, "AMZN"), (1, "AAPL")]
    out = list(merged.events())
    assert [(e.ts_recv, e.instrument_id, e.seq) for e in out] == [
        (1, 0, 0), (2, 1, 0), (4, 0, 1), (4, 1, 1), (5, 1, 2), (6, 0, 2)
    ]


def test_unchanged_events_are_not_copied():
    """Events whose instrument id does not change are passed through as the very same objects."""
    first, second = clocks(0, [1, 3]), clocks(0, [2])
    out = list(MergedFeed([ListFeed(first, [definition(0, "A")]), ListFeed(second, [definition(0, "B")])])
               .events())
    assert out[0] is first[0] and out[2] is first[1]
    assert out[1] is not second[0] and out[1].instrument_id == 1


def test_unique_ids_are_kept():
    """When ids are already unique across feeds they are kept, and nothing is copied."""
    first, second = clocks(7, [1, 3]), clocks(2, [2])
    merged = MergedFeed([ListFeed(first, [definition(7, "A")]), ListFeed(second, [definition(2, "B")])])
    assert [d.instrument_id for d in merged.instruments()] == [7, 2]
    out = list(merged.events())
    assert out == [first[0], second[0], first[1]]
    assert all(a is b for a, b in zip(out, [first[0], second[0], first[1]], strict=True))


def test_colliding_symbols_get_suffixes():
    """A symbol already taken gets #2, #3, ..., skipping names that are already in use."""
    feeds = [
        ListFeed([], [definition(0, "AMZN"), definition(1, "AMZN#2")]),
        ListFeed([], [definition(0, "AMZN")]),
        ListFeed([], [definition(0, "AMZN")]),
    ]
    merged = MergedFeed(feeds)
    assert [(d.instrument_id, d.symbol) for d in merged.instruments()] == [
        (0, "AMZN"), (1, "AMZN#2"), (2, "AMZN#3"), (3, "AMZN#4")
    ]


def test_instrument_def_events_follow_the_remap():
    """An InstrumentDef event in a child's stream carries the merged id and suffixed symbol."""
    second_def = definition(0, "AMZN")
    merged = MergedFeed([ListFeed([], [definition(0, "AMZN")]), ListFeed([second_def], [second_def])])
    assert list(merged.events()) == [definition(1, "AMZN#2")]


def test_single_feed_passes_through():
    """A merge of one feed yields that feed's events unchanged."""
    events = clocks(3, [5, 6])
    assert list(MergedFeed([ListFeed(events, [definition(3, "X")])]).events()) == events


def test_undeclared_instrument_is_an_error():
    """A child emitting an id missing from its instruments() stops the merge with a clear error."""
    merged = MergedFeed([ListFeed(clocks(9, [1]), [definition(0, "A")]), ListFeed([], [definition(1, "B")])])
    with pytest.raises(ChimeraError, match=r"feed #0 emitted instrument_id 9"):
        list(merged.events())


def test_stats_are_summed():
    """stats() adds the children's counters key by key."""
    merged = MergedFeed([
        ListFeed([], [definition(0, "A")], {"events": 3, "malformed_lines": 1}),
        ListFeed([], [definition(1, "B")], {"events": 4, "gaps": 2}),
    ])
    assert isinstance(merged, Feed)
    assert merged.stats() == {"events": 7, "malformed_lines": 1, "gaps": 2}


TIMES = st.lists(st.integers(0, 20), max_size=12).map(sorted)


@settings(max_examples=80, deadline=None)
@given(st.lists(TIMES, min_size=1, max_size=4))
def test_merge_matches_sorted_reference(per_feed):
    """The merge equals a stable sort of all remapped events on (ts_recv, instrument_id, seq)."""
    feeds = [ListFeed(clocks(0, times), [definition(0, "S")]) for times in per_feed]
    reference = sorted(
        (Clock(index if len(per_feed) > 1 else 0, t, t, seq, LAST)
         for index, times in enumerate(per_feed) for seq, t in enumerate(times)),
        key=sort_key,
    )
    assert list(MergedFeed(feeds).events()) == reference


def test_merged_tapes_replay_in_order(tmp_path):
    """Two tapes of the same symbol merge into one ordered stream with distinct ids and summed stats."""
    a = ListFeed([Trade(0, t, t, i, LAST, 100 + i, 1, 1) for i, t in enumerate([1, 3, 5])], [definition(0, "AMZN")])
    b = ListFeed([Trade(0, t, t, i, LAST, 200 + i, 1, -1) for i, t in enumerate([2, 3, 4])], [definition(0, "AMZN")])
    record(a, tmp_path / "a.gz", source="a")
    record(b, tmp_path / "b.zst", source="b")
    merged = MergedFeed([open_feed(tmp_path / "a.gz"), open_feed(tmp_path / "b.zst")])
    out = list(merged.events())
    assert [(e.ts_recv, e.instrument_id, e.price) for e in out] == [
        (1, 0, 100), (2, 1, 200), (3, 0, 101), (3, 1, 201), (4, 1, 202), (5, 0, 102)
    ]
    assert [d.symbol for d in merged.instruments()] == ["AMZN", "AMZN#2"]
    assert merged.stats() == {"lines": 8, "events": 6, "malformed_lines": 0, "truncated_tail": 0}


def test_open_feed_sniffs_tapes_by_content(tmp_path):
    """open_feed recognises a tape from its content whatever its name, passing options through."""
    path = tmp_path / "session.bin"
    with TapeWriter(tmp_path / "t.jsonl", [definition(0, "A")], "x") as writer:
        writer.write_many(clocks(0, [1, 2]))
    path.write_bytes(gzip.compress((tmp_path / "t.jsonl").read_bytes()))
    feed = open_feed(path, strict=True)
    assert isinstance(feed, TapeFeed) and feed.strict
    assert list(feed.events()) == clocks(0, [1, 2])


def test_open_feed_rejects_other_files(tmp_path):
    """open_feed refuses a missing file or an unknown format, and a JSON look-alike fails on line 1."""
    with pytest.raises(UsageError, match="no such file"):
        open_feed(tmp_path / "missing.gz")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match="not a recognised feed file"):
        open_feed(tmp_path / "data.csv")
    (tmp_path / "obj.json").write_text('{"format": "other"}\n')
    with pytest.raises(InputError, match=r"obj.json:1: field 'format'"):
        open_feed(tmp_path / "obj.json")


def test_open_feed_hands_lobster_messages_to_the_lobster_feed(tmp_path, monkeypatch):
    """A *_message_<N>.csv file is opened with feeds.lobster.LobsterFeed(path, **options), strict aside."""
    opened = []
    fake = types.ModuleType("feeds.lobster")
    fake.LobsterFeed = lambda path, **kwargs: opened.append((path, kwargs)) or "lobster"
    monkeypatch.setitem(sys.modules, "feeds.lobster", fake)
    path = tmp_path / "AMZN_2012-06-21_34200000_57600000_message_5.csv"
    path.write_text("34200.5,1,1,100,1000000,1\n")
    assert open_feed(path, strict=True, reconcile=False) == "lobster"
    assert opened == [(path, {"reconcile": False})]


def test_open_feeds_merges_several_files(tmp_path):
    """open_feeds returns the lone feed for one path, a MergedFeed for several, and refuses none."""
    for name in ("a.jsonl", "b.jsonl"):
        record(ListFeed(clocks(0, [1, 2]), [definition(0, "A")]), tmp_path / name, source=name)
    single = open_feeds([tmp_path / "a.jsonl"], strict=True)
    assert isinstance(single, TapeFeed) and single.strict
    merged = open_feeds([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert isinstance(merged, MergedFeed)
    assert [(e.ts_recv, e.instrument_id) for e in merged.events()] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    with pytest.raises(UsageError, match="no feed files"):
        open_feeds([])
