"""Tests for feeds/tape.py: round trips, header, compression, malformed lines and cut-off tails."""

from __future__ import annotations

import gzip
import sys
import zlib
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import CorruptInputError, InputError, UsageError
from engine.events import (
    ALL_EVENT_TYPES,
    BUY,
    LAST,
    SELL,
    BookDelta,
    BookSnapshot,
    Clock,
    Event,
    InstrumentDef,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    OrderModify,
    Status,
    Trade,
    TruthLabel,
)
from feeds.base import Feed
from feeds.members import MEMBER_BYTES
from feeds.tape import RecordingFeed, TapeFeed, TapeWriter, read_header, record

INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
LEVELS = st.lists(st.tuples(INT64, INT64, INT64), max_size=4).map(tuple)
PARAMS = st.dictionaries(st.text(max_size=8), st.one_of(FLOATS, INT64, st.text(max_size=8)), max_size=4)
BY_TYPE = {int: INT64, str: st.text(max_size=12), bool: st.booleans()}
TS = 1_700_000_000_000_000_000
AMZN = InstrumentDef(0, 0, 0, 0, 0, "AMZN", "NASDAQ", "0.01", 100)


def _field_strategy(field: msgspec.structs.FieldInfo) -> st.SearchStrategy:
    if field.name in ("bids", "asks"):
        return LEVELS
    if field.name == "params":
        return PARAMS
    return BY_TYPE[field.type]


def event_strategy(cls: type[Event]) -> st.SearchStrategy:
    """Events of ``cls`` with every field drawn from its whole encodable range."""
    fields = {f.name: _field_strategy(f) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


ANY_EVENT = st.one_of(*[event_strategy(cls) for cls in ALL_EVENT_TYPES])


def one_of_each() -> list[Event]:
    """One hand-built event of every type, truth label with params included."""
    return [
        AMZN,
        BookSnapshot(0, TS, TS, 1, LAST, ((1000000, 100, 1),), ((1000100, 200, 2),), 1, True),
        BookDelta(0, TS, TS + 1, 2, LAST, BUY, 1000000, 300, 2, 3),
        OrderAdd(0, TS, TS + 2, 3, LAST, 11, SELL, 1000200, 50),
        OrderCancel(0, TS, TS + 3, 4, LAST, 11, SELL, 1000200, 20, 30),
        OrderModify(0, TS, TS + 4, 5, LAST, 11, SELL, 1000300, 30),
        OrderExecute(0, TS, TS + 5, 6, 0, 11, SELL, 1000300, 10, 7),
        Trade(0, TS, TS + 5, 7, LAST, 1000300, 10, BUY, 7, 1, False),
        OrderDelete(0, TS, TS + 6, 8, LAST, 11, SELL, 1000300, 20),
        Status(0, TS, TS + 7, 9, LAST, 2, "halt"),
        Clock(0, TS, TS + 8, 10, 0),
        TruthLabel(0, TS, TS + 9, 1, 0, 4, 2, BUY, 10, 12, TS, TS + 9, {"depth": 3, "p": 0.25, "n": "x"}, 1),
    ]


def many_events(count: int) -> list[Event]:
    """A long deterministic stream of small L3 events."""
    return [
        OrderAdd(0, TS + i, TS + i, i, LAST, i, BUY if i % 3 else SELL, 1000000 + i % 97, 1 + i % 500)
        for i in range(count)
    ]


def write_tape(path: Path, events: list[Event], **kwargs) -> Path:
    with TapeWriter(path, [AMZN], "test", **kwargs) as writer:
        writer.write_many(events)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    """A plain tape whose header is valid and whose event lines are given verbatim."""
    header = msgspec.json.encode(read_header(write_tape(path, [])))
    path.write_bytes(header + b"\n" + "".join(line + "\n" for line in lines).encode())
    return path


class ListFeed:
    """A feed over a list held in memory."""

    def __init__(self, events: list[Event], defs: list[InstrumentDef]) -> None:
        self._events, self._defs = events, defs

    def instruments(self) -> list[InstrumentDef]:
        return self._defs

    def events(self):
        return iter(self._events)

    def stats(self) -> dict[str, int]:
        return {}


@settings(max_examples=60, deadline=None)
@given(st.lists(ANY_EVENT, max_size=30))
def test_round_trip_any_events(tmp_path_factory, events):
    """Any list of events of any type, truth labels included, replays equal from a plain tape."""
    path = write_tape(tmp_path_factory.mktemp("rt") / "t.jsonl", events)
    feed = TapeFeed(path, strict=True)
    assert list(feed.events()) == events
    assert feed.stats() == {"lines": len(events) + 1, "events": len(events), "malformed_lines": 0,
                            "truncated_tail": 0}


@pytest.mark.parametrize(("suffix", "magic"), [(".jsonl", b'{"format"'), (".gz", b"\x1f\x8b"),
                                               (".zst", b"\x28\xb5\x2f\xfd")])
def test_round_trip_each_compression(tmp_path, suffix, magic):
    """Every event type survives each compression, and the file starts with that format's magic."""
    events = one_of_each() * 3
    path = write_tape(tmp_path / f"t{suffix}", events)
    assert path.read_bytes().startswith(magic)
    assert list(TapeFeed(path).events()) == events


def test_event_lines_are_msgspec_arrays(tmp_path):
    """Each event line is the msgspec tagged-array encoding of the event."""
    path = write_tape(tmp_path / "t.jsonl", one_of_each())
    lines = path.read_bytes().splitlines()
    assert lines[1:] == [msgspec.json.encode(event) for event in one_of_each()]
    assert lines[8] == b'["trd",0,1700000000000000000,1700000000000000005,7,128,1000300,10,1,7,1,false]'


def test_header_contents(tmp_path):
    """The header records format, version, instruments, source, the given time and meta."""
    path = tmp_path / "t.gz"
    with TapeWriter(path, [AMZN], "simulator:calm", {"seed": 7, "config_hash": "ab12"},
                    created_at="2024-05-01T12:00:00.000Z"):
        pass
    header = read_header(path)
    assert (header.format, header.version, header.source) == ("chimera-tape", 1, "simulator:calm")
    assert header.instruments == [AMZN]
    assert header.created_at == "2024-05-01T12:00:00.000Z"
    assert header.meta == {"seed": 7, "config_hash": "ab12"}
    first = msgspec.json.decode(gzip.decompress(path.read_bytes()).split(b"\n")[0])
    assert list(first) == ["format", "version", "instruments", "source", "created_at", "meta"]
    assert TapeFeed(path).instruments() == [AMZN]


def test_default_created_at_is_utc_iso(tmp_path):
    """Without an explicit time the header carries an ISO-8601 UTC timestamp ending in Z."""
    header = read_header(write_tape(tmp_path / "t.jsonl", []))
    assert header.created_at.endswith("Z")
    assert datetime.fromisoformat(header.created_at).utcoffset().total_seconds() == 0


def test_write_and_write_many_keep_order(tmp_path):
    """Single writes and bulk writes interleave in call order, across internal batch boundaries."""
    events = many_events(20_000)
    path = tmp_path / "t.gz"
    with TapeWriter(path, [AMZN], "test") as writer:
        writer.write(events[0])
        assert writer.write_many(events[1:9000]) == 8999
        for event in events[9000:9100]:
            writer.write(event)
        writer.write_many(iter(events[9100:]))
    assert writer.count == 20_000
    assert list(TapeFeed(path).events()) == events


def test_flush_after_close_is_an_error(tmp_path):
    """A closed writer refuses to flush instead of writing to a closed file."""
    writer = TapeWriter(tmp_path / "t.jsonl", [AMZN], "test")
    writer.close()
    writer.close()
    with pytest.raises(UsageError, match="closed"):
        writer.flush()


def test_record_copies_a_feed_with_limit(tmp_path):
    """record() writes a feed's instruments and its first ``limit`` events and returns the count."""
    events = many_events(50)
    assert record(ListFeed(events, [AMZN]), tmp_path / "a.zst", source="list") == 50
    assert record(ListFeed(events, [AMZN]), tmp_path / "b.zst", source="list", meta={"k": 1}, limit=7) == 7
    feed = TapeFeed(tmp_path / "b.zst")
    assert list(feed.events()) == events[:7]
    assert feed.instruments() == [AMZN]
    assert feed.header.meta == {"k": 1}
    assert list(TapeFeed(tmp_path / "a.zst").events()) == events


def test_recording_feed_tees_events_to_a_tape(tmp_path):
    """RecordingFeed yields the wrapped feed's events and leaves exactly them on its tape."""
    events = many_events(9000)
    feed = RecordingFeed(ListFeed(events, [AMZN]), tmp_path / "run.gz", source="run", meta={"seed": 3})
    assert isinstance(feed, Feed) and feed.instruments() == [AMZN]
    assert list(feed.events()) == events
    assert feed.stats() == {"recorded_events": 9000}
    tape = TapeFeed(tmp_path / "run.gz")
    assert list(tape.events()) == events and tape.header.meta == {"seed": 3}


def test_recording_feed_stopped_early_keeps_what_it_yielded(tmp_path):
    """Closing a recording pass early flushes a complete tape of every event already handed on."""
    events = many_events(100)
    stream = RecordingFeed(ListFeed(events, [AMZN]), tmp_path / "run.zst", source="run").events()
    taken = [next(stream) for _ in range(40)]
    stream.close()
    tape = TapeFeed(tmp_path / "run.zst")
    assert list(tape.events()) == taken == events[:40]
    assert tape.stats()["truncated_tail"] == 0


def test_tape_feed_is_a_feed_and_replays_twice(tmp_path):
    """TapeFeed satisfies the Feed protocol and each events() call is a fresh pass with fresh stats."""
    feed = TapeFeed(write_tape(tmp_path / "t.gz", many_events(10)))
    assert isinstance(feed, Feed)
    assert list(feed.events()) == list(feed.events())
    assert feed.stats()["events"] == 10


GOOD = '["clk",0,1,1,1,0]'
MALFORMED = [
    ('["trd",0,1,2,3,128,"x",5,1,0,0,false]', "trd.price", "Expected `int`, got `str`"),
    ('["snap",0,1,2,3,0,[[1,2,"a"]],[],1,true]', "snap.bids[0][2]", "Expected `int`, got `str`"),
    ('["trd",0,1,2,3]', "trd", "Expected `array` of at least length 9, got 5"),
    ('["zz",0,1,2,3,0]', "tag", "Invalid value 'zz'"),
    ('{"a": 1}', "tag", "Expected `array`, got `object`"),
    ('["trd",0,1,2,3,', "json", "Input data was truncated"),
    ("@ not json", "json", "JSON is malformed: invalid character (byte 0)"),
]


@pytest.mark.parametrize(("line", "field", "problem"), MALFORMED)
def test_strict_names_file_line_and_field(tmp_path, line, field, problem):
    """In strict mode a malformed line raises InputError with path:line, the field and the problem."""
    path = write_lines(tmp_path / "t.jsonl", [GOOD, line, GOOD])
    replayed = []
    with pytest.raises(InputError) as caught:
        replayed.extend(TapeFeed(path, strict=True).events())
    assert (caught.value.line, caught.value.field) == (3, field)
    assert caught.value.problem.startswith(problem)
    assert str(caught.value).startswith(f"{path}:3: field '{field}': {problem}")
    assert len(replayed) == 1


def test_strict_exact_message(tmp_path):
    """The strict error for a mistyped trade price reads exactly file:line, field and msgspec's problem."""
    path = write_lines(tmp_path / "t.jsonl", [GOOD, GOOD, '["trd",0,1,2,3,128,"x",5,1,0,0,false]'])
    with pytest.raises(InputError) as caught:
        list(TapeFeed(path, strict=True).events())
    assert str(caught.value) == f"{path}:4: field 'trd.price': Expected `int`, got `str`"


def test_skip_policy_counts_malformed_lines(tmp_path):
    """By default malformed lines are skipped and counted while every good line replays."""
    lines = [GOOD] + [line for line, _, _ in MALFORMED] + ["", GOOD]
    feed = TapeFeed(write_lines(tmp_path / "t.jsonl", lines))
    assert list(feed.events()) == [Clock(0, 1, 1, 1, 0)] * 2
    assert feed.stats() == {"lines": len(lines) + 1, "events": 2, "malformed_lines": len(MALFORMED),
                            "truncated_tail": 0}


BAD_HEADERS = [
    (b"\n" + GOOD.encode(), "header", "missing tape header"),
    (gzip.compress(b"", mtime=0), "header", "missing tape header"),
    (b"timestamp,type,id\n", "json", "not a chimera tape header: JSON is malformed"),
    (b'["clk",0,1,1,1,0]\n', "format", "not a chimera tape: expected 'chimera-tape', got 'list'"),
    (b'{"format": "other"}\n', "format", "not a chimera tape: expected 'chimera-tape', got 'other'"),
    (b'{"format": "chimera-tape", "version": 2}\n', "version", "unsupported tape version 2"),
    (b'{"format": "chimera-tape", "version": 1}\n', "header", "Object missing required field `instruments`"),
    (b'{"format": "chimera-tape", "version": 1, "instruments": [["def", 0]], "source": "s", '
     b'"created_at": "t"}\n', "instruments[0]", "Expected `array` of at least length 10, got 2"),
]


@pytest.mark.parametrize(("content", "field", "problem"), BAD_HEADERS)
@pytest.mark.parametrize("strict", [False, True])
def test_bad_header_is_an_error_on_line_1(tmp_path, content, field, problem, strict):
    """A missing or invalid header raises InputError naming line 1 whatever the policy."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        TapeFeed(path, strict=strict)
    assert (caught.value.line, caught.value.field) == (1, field)
    assert caught.value.problem.startswith(problem)
    assert str(caught.value).startswith(f"{path}:1: field '{field}': ")


def test_unreadable_or_unwritable_path_is_a_usage_error(tmp_path):
    """A missing tape, or a tape in a missing folder, raises UsageError naming the path."""
    with pytest.raises(UsageError, match="t.gz: no such file"):
        TapeFeed(tmp_path / "t.gz")
    with pytest.raises(UsageError, match="t.zst: cannot write tape: folder .*missing does not exist"):
        TapeWriter(tmp_path / "missing" / "t.zst", [AMZN], "test")


def test_empty_file_and_directory_are_refused_before_reading(tmp_path):
    """An empty file says "empty file" and a directory "is a directory", for reading and for writing."""
    (tmp_path / "empty.jsonl.gz").write_bytes(b"")
    with pytest.raises(UsageError) as caught:
        TapeFeed(tmp_path / "empty.jsonl.gz")
    assert str(caught.value) == (f"{tmp_path / 'empty.jsonl.gz'}: empty file (0 bytes); "
                                 "give a chimera tape (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)")
    with pytest.raises(UsageError, match=f"^{tmp_path}: is a directory; give a chimera tape"):
        TapeFeed(tmp_path)
    with pytest.raises(UsageError, match=f"^{tmp_path}: is a directory; give a tape file name"):
        TapeWriter(tmp_path, [AMZN], "test")
    with pytest.raises(UsageError, match=f"^{tmp_path}: is a directory; give a tape file name"):
        RecordingFeed(ListFeed([], [AMZN]), tmp_path, source="run")


def _members(data: bytes, new) -> list[tuple[int, int, bytes]]:
    """Reference: ``(start, end, content)`` of each member of an intact compressed file."""
    members, start = [], 0
    while start < len(data):
        decompressor = new()
        content = decompressor.decompress(data[start:])
        end = len(data) - len(decompressor.unused_data)
        members.append((start, end, content))
        start = end
    return members


def _intact_prefix(data: bytes, new) -> list[bytes]:
    """Reference: the complete lines that decompressing cut bytes member after member recovers."""
    text = b""
    while data:
        decompressor = new()
        text += decompressor.decompress(data)
        if not decompressor.eof:
            break
        data = decompressor.unused_data
    return text.split(b"\n")[:-1]


DECOMPRESSORS = {".gz": lambda: zlib.decompressobj(31), ".zst": lambda: zstandard.ZstdDecompressor().decompressobj()}


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_tapes_are_checksummed_members_of_whole_lines(tmp_path, suffix):
    """A compressed tape is a series of members of about MEMBER_BYTES, each ending on a line, zstd with checksums."""
    events = many_events(40_000)
    data = write_tape(tmp_path / f"t{suffix}", events).read_bytes()
    members = _members(data, DECOMPRESSORS[suffix])
    assert len(members) >= 2
    assert all(content.endswith(b"\n") for _, _, content in members)
    assert all(len(content) >= MEMBER_BYTES for _, _, content in members[:-1])
    assert len(b"".join(content for _, _, content in members).splitlines()) == len(events) + 1
    if suffix == ".zst":
        assert all(zstandard.get_frame_parameters(data[start:end]).has_checksum for start, end, _ in members)


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
@pytest.mark.parametrize("keep", [0.3, 0.75, 0.999])
def test_truncated_compressed_tail_replays_intact_prefix(tmp_path, suffix, keep):
    """A compressed tape cut mid-stream replays every intact event before the cut and flags the tail."""
    events = many_events(60_000)
    full = write_tape(tmp_path / f"full{suffix}", events).read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full[: int(len(full) * keep)])
    expected_lines = _intact_prefix(cut.read_bytes(), DECOMPRESSORS[suffix])
    feed = TapeFeed(cut, strict=True)
    replayed = list(feed.events())
    assert len(replayed) == len(expected_lines) - 1 > 0
    assert replayed == events[: len(replayed)]
    assert feed.stats()["truncated_tail"] == 1
    assert feed.stats()["malformed_lines"] == 0


def test_missing_gzip_trailer_keeps_every_event(tmp_path):
    """A gzip tape missing only its CRC trailer replays all events and still flags the tail."""
    events = many_events(1000)
    path = write_tape(tmp_path / "t.gz", events)
    path.write_bytes(path.read_bytes()[:-4])
    feed = TapeFeed(path)
    assert list(feed.events()) == events
    assert feed.stats()["truncated_tail"] == 1


def _replay_until_error(feed: TapeFeed) -> tuple[list[Event], CorruptInputError]:
    replayed: list[Event] = []
    with pytest.raises(CorruptInputError) as caught:
        replayed.extend(feed.events())
    return replayed, caught.value


def _corrupt_message(path: Path, offset: int, problem: str, events: int) -> str:
    return (f"{path}: corrupt compressed data at byte {offset:,} ({problem}); {events:,} events before it were "
            "replayed - the file is damaged, re-record it or restore it from a copy")


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_bytes_flipped_mid_file_are_an_error_after_the_verified_members(tmp_path, suffix, strict):
    """Flipped bytes inside a member stop the replay after every event of the members before it, at that member."""
    events = many_events(60_000)
    data = bytearray(write_tape(tmp_path / f"t{suffix}", events).read_bytes())
    members = _members(bytes(data), DECOMPRESSORS[suffix])
    start, end, _ = members[2]
    data[(start + end) // 2 : (start + end) // 2 + 16] = bytes(b ^ 0xFF for b in data[(start + end) // 2:][:16])
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    before = sum(content.count(b"\n") for _, _, content in members[:2]) - 1  # the header is not an event
    replayed, error = _replay_until_error(TapeFeed(path, strict=strict))
    assert replayed == events[:before] and before > 0
    assert (start + end) // 2 <= error.offset < end
    assert str(error) == _corrupt_message(path, error.offset, error.problem, before)


@pytest.mark.parametrize(("suffix", "problem", "at_end"), [(".gz", "CRC check failed", 5),
                                                           (".zst", "checksum check failed", 1)])
def test_a_failed_checksum_names_the_byte_where_it_is_read(tmp_path, suffix, problem, at_end):
    """A member whose checksum fails is reported at the checksum's last byte, and nothing of it is replayed."""
    events = many_events(30_000)
    data = bytearray(write_tape(tmp_path / f"t{suffix}", events).read_bytes())
    members = _members(bytes(data), DECOMPRESSORS[suffix])
    _, end, _ = members[1]
    data[end - at_end - 1] ^= 0x01  # a bit of the member's checksum: every byte of content decodes
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    replayed, error = _replay_until_error(TapeFeed(path))
    before = members[0][2].count(b"\n") - 1
    assert replayed == events[:before]
    assert str(error) == _corrupt_message(path, end - at_end, problem, before)


@pytest.mark.parametrize(("suffix", "problem"), [(".gz", "bytes that start no gzip member"),
                                                 (".zst", "bytes that start no zstd frame")])
def test_bytes_after_the_last_member_are_damage_not_a_tail(tmp_path, suffix, problem):
    """Bytes after a complete member that start no member are damage at their offset, after every event."""
    events = many_events(2000)
    path = write_tape(tmp_path / f"t{suffix}", events)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"garbage!")
    replayed, error = _replay_until_error(TapeFeed(path))
    assert replayed == events
    assert error.problem == problem and size <= error.offset <= size + 4


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_damage_in_the_first_member_fails_before_replay(tmp_path, suffix):
    """Damage in the member holding the header is a CorruptInputError when the tape is opened."""
    path = write_tape(tmp_path / f"t{suffix}", many_events(100))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError, match=f"^{path}: corrupt compressed data at byte [0-9,]+ .*; nothing "
                       "before it could be read - the file is damaged"):
        TapeFeed(path)


def test_plain_unparsable_last_line_is_a_truncated_tail(tmp_path):
    """A plain tape whose last line lacks its newline and does not parse flags a cut tail, even strict."""
    path = write_tape(tmp_path / "t.jsonl", many_events(5))
    path.write_bytes(path.read_bytes()[:-7])
    feed = TapeFeed(path, strict=True)
    assert list(feed.events()) == many_events(4)
    assert feed.stats() == {"lines": 6, "events": 4, "malformed_lines": 0, "truncated_tail": 1}


def test_plain_parsable_last_line_without_newline_is_kept(tmp_path):
    """A last line without newline that parses is an ordinary event, not a cut tail."""
    path = write_tape(tmp_path / "t.jsonl", many_events(5))
    path.write_bytes(path.read_bytes()[:-1])
    feed = TapeFeed(path)
    assert list(feed.events()) == many_events(5)
    assert feed.stats()["truncated_tail"] == 0


def test_multi_member_gzip_and_renamed_file(tmp_path):
    """Reading sniffs gzip by its magic and follows concatenated members whatever the file name."""
    events = many_events(3000)
    plain = write_tape(tmp_path / "t.jsonl", events).read_bytes()
    middle = len(plain) // 2
    path = tmp_path / "renamed.tape"
    path.write_bytes(gzip.compress(plain[:middle]) + gzip.compress(plain[middle:]))
    feed = TapeFeed(path)
    assert list(feed.events()) == events
    assert feed.stats()["truncated_tail"] == 0


def test_header_cut_in_compressed_file(tmp_path):
    """A compressed tape cut inside its header is a header error on line 1 that says it was cut."""
    path = write_tape(tmp_path / "t.gz", [])
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(InputError, match=r":1: field 'json': .*cut short"):
        TapeFeed(path)


def test_blank_lines_are_ignored(tmp_path):
    """Blank lines between events are counted as lines but are neither events nor malformed."""
    feed = TapeFeed(write_lines(tmp_path / "t.jsonl", [GOOD, "", "  ", GOOD]))
    assert list(feed.events()) == [Clock(0, 1, 1, 1, 0)] * 2
    assert feed.stats() == {"lines": 5, "events": 2, "malformed_lines": 0, "truncated_tail": 0}


def test_zst_without_zstandard_is_a_clear_error(tmp_path, monkeypatch):
    """Writing a .zst tape without the zstandard package raises UsageError naming the package."""
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(UsageError, match="needs the 'zstandard' package"):
        TapeWriter(tmp_path / "t.zst", [AMZN], "test")
