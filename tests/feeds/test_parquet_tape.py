"""Parquet tapes: exact round trips against the JSON-lines tape, the header, and errors naming where."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import load_config
from engine.errors import ParquetInputError, UsageError
from engine.events import ALL_EVENT_TYPES, LAST, BookSnapshot, Event, Trade, TruthLabel
from engine.pipeline import RunOptions, run_reference
from feeds.merge import open_feed
from feeds.parquet_tape import KIND_CODES, ParquetTapeFeed, ParquetTapeWriter, read_parquet_header
from feeds.tape import (
    FORMAT,
    VERSION,
    RecordingFeed,
    TapeFeed,
    TapeHeader,
    open_tape,
    open_writer,
    read_header,
    record,
    tape_format,
)
from tests.feeds.test_tape import AMZN, ANY_EVENT, INT64, TS, ListFeed, many_events, one_of_each

ROOT = Path(__file__).resolve().parents[2]


def write_parquet(path: Path, events: list[Event], row_group: int | None = None, **kwargs) -> Path:
    if row_group is None:
        writer = open_writer(path, [AMZN], "test", **kwargs)
    else:
        writer = ParquetTapeWriter(path, TapeHeader(FORMAT, VERSION, [AMZN], "test", "now"), row_group=row_group)
    with writer:
        writer.write_many(events)
    return path


def replay(path: Path) -> list[Event]:
    return list(ParquetTapeFeed(path).events())


# ---- round trips ----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(ANY_EVENT, max_size=30))
def test_round_trip_any_events(tmp_path_factory, events):
    """Any events of any kind, every field over its whole range, replay equal from a Parquet tape."""
    path = write_parquet(tmp_path_factory.mktemp("pq") / "t.parquet", events)
    assert replay(path) == events


EXTREME = st.sampled_from([-(2**63), -1, 0, 1, 2**63 - 1])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(
    st.builds(Trade, EXTREME, EXTREME, EXTREME, EXTREME, EXTREME, EXTREME, EXTREME, EXTREME, EXTREME, EXTREME,
              st.booleans()),
    st.builds(BookSnapshot, INT64, INT64, INT64, INT64, INT64, st.just(()), st.lists(
        st.tuples(EXTREME, EXTREME, EXTREME), max_size=3).map(tuple), INT64, st.booleans()),
    ANY_EVENT), min_size=1, max_size=40), st.integers(1, 7))
def test_round_trip_extreme_values_over_many_row_groups(tmp_path_factory, events, group):
    """int64 limits, empty and full snapshot sides, and row groups of a few events each round-trip exactly."""
    path = write_parquet(tmp_path_factory.mktemp("pq") / "t.parquet", events, row_group=group)
    feed = ParquetTapeFeed(path)
    assert list(feed.events()) == events
    assert feed.stats() == {"row_groups": -(-len(events) // group), "events": len(events)}
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-len(events) // group)


def test_one_of_each_kind_is_one_typed_row_with_nulls_elsewhere(tmp_path):
    """Each kind fills its own columns; the others are null; kind codes are the documented ones."""
    events = one_of_each()
    table = pq.read_table(write_parquet(tmp_path / "t.parquet", events))
    assert table.column("kind").to_pylist() == [KIND_CODES[type(e)] for e in events]
    assert sorted(table.column("kind").to_pylist()) == list(range(1, 13))
    assert table.schema.field("price").type == pa.int64() and table.schema.field("ts_recv").type == pa.int64()
    trade = table.slice(7, 1).to_pylist()[0]
    assert (trade["price"], trade["size"], trade["side"], trade["trade_id"], trade["hidden"]) == (1000300, 10, 1, 7,
                                                                                               False)
    assert trade["order_id"] is None and trade["symbol"] is None and trade["truth_kind"] is None
    cancel = table.slice(4, 1).to_pylist()[0]
    assert (cancel["size"], cancel["size_remaining"]) == (20, 30)  # size_cancelled is the size column
    assert replay(tmp_path / "t.parquet") == events


def test_column_batches_are_the_events_fields_as_numpy_arrays(tmp_path):
    """column_batches() gives int64 arrays per row group, equal to the fields of the replayed events."""
    events = [*one_of_each(), *many_events(40)]
    feed = ParquetTapeFeed(write_parquet(tmp_path / "t.parquet", events, row_group=16))
    batches = list(feed.column_batches(["kind", "ts_recv", "price", "side", "order_id"]))
    assert [len(b["kind"]) for b in batches] == [16, 16, 16, 4]
    columns = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    assert columns["price"].dtype == np.int64 and columns["kind"].dtype == np.int8
    assert columns["ts_recv"].tolist() == [e.ts_recv for e in events]
    assert columns["price"].tolist() == [getattr(e, "price", 0) for e in events]
    assert columns["side"].tolist() == [getattr(e, "side", getattr(e, "aggressor", 0)) for e in events]
    assert columns["order_id"].tolist() == [getattr(e, "order_id", 0) for e in events]
    assert set(next(feed.column_batches())) >= {"kind", "price", "size", "hidden", "ts_event"}
    with pytest.raises(UsageError, match="column 'symbol' is not a numeric column"):
        next(feed.column_batches(["symbol"]))


def test_header_round_trips_in_the_file_metadata(tmp_path):
    """source, meta, created_at and instruments come back equal; the key is readable without Chimera."""
    path = tmp_path / "t.parquet"
    with open_writer(path, [AMZN], "unit", {"seed": 5, "symbols": ["AMZN"]}, created_at="2024-01-02T03:04:05.000Z"):
        pass
    header = read_parquet_header(path)
    assert (header.source, header.meta, header.created_at, header.instruments) == (
        "unit", {"seed": 5, "symbols": ["AMZN"]}, "2024-01-02T03:04:05.000Z", [AMZN])
    assert b'"format":"chimera-tape"' in pq.ParquetFile(path).schema_arrow.metadata[b"chimera-tape"]
    assert replay(path) == [] and ParquetTapeFeed(path).instruments() == [AMZN]


def test_simulator_session_replays_to_the_same_events_and_rows_as_its_jsonl_tape(tmp_path):
    """One simulator session recorded both ways: equal events, headers and every persisted row."""
    from feeds.simulator import MarketSimulator

    config = load_config()
    tapes = {}
    for suffix in ("jsonl.gz", "parquet"):
        feed = MarketSimulator(["AAPL", "TSLA"], config, seed=5, duration_s=60.0)
        tapes[suffix] = tmp_path / f"s.{suffix}"
        record(feed, tapes[suffix], source="sim", meta={"seed": 5}, created_at="2024-01-02T14:30:00.000Z")
    jsonl, parquet = TapeFeed(tapes["jsonl.gz"]), open_tape(tapes["parquet"])
    assert isinstance(parquet, ParquetTapeFeed) and parquet.header == jsonl.header
    events = list(jsonl.events())
    assert list(parquet.events()) == events and any(isinstance(e, TruthLabel) for e in events)
    assert len({type(e) for e in events}) >= 5
    rows = [run_reference(feed, config, RunOptions())[1] for feed in (jsonl, parquet)]
    assert rows[0] == rows[1] and len(rows[0]) > 100


def test_recording_feed_writes_parquet_by_name(tmp_path):
    """RecordingFeed into a .parquet name tees a Parquet tape that replays what it yielded."""
    events = many_events(300)
    feed = RecordingFeed(ListFeed(events, [AMZN]), tmp_path / "r.parquet", source="tee")
    assert list(feed.events()) == events and feed.stats()["recorded_events"] == 300
    assert replay(tmp_path / "r.parquet") == events
    assert open_feed(tmp_path / "r.parquet").instruments() == [AMZN]


def test_format_follows_the_name_unless_asked_and_a_contradiction_is_refused(tmp_path):
    """.parquet means Parquet; --format parquet into another name sniffs back as Parquet; conflicts fail."""
    assert tape_format("a.parquet") == "parquet" and tape_format("a.jsonl.zst") == "jsonl"
    assert tape_format("a.tape", "parquet") == "parquet"
    path = write_parquet(tmp_path / "day.tape", one_of_each(), format="parquet")
    assert list(open_tape(path).events()) == one_of_each() == list(open_feed(path).events())
    for name, format in (("a.jsonl", "parquet"), ("a.jsonl.gz", "parquet"), ("a.parquet", "jsonl")):
        with pytest.raises(UsageError, match="the file name says"):
            record(ListFeed([], [AMZN]), tmp_path / name, source="x", format=format)
        assert not (tmp_path / name).exists()
    with pytest.raises(UsageError, match="unknown tape format 'csv'"):
        tape_format("a", "csv")


def test_a_value_outside_int64_is_refused_naming_the_column(tmp_path):
    """An order id of 2**64 - 1 cannot go into int64: the error names the column."""
    from engine.events import OrderAdd

    with pytest.raises(UsageError, match="column 'order_id' holds int64, got 18446744073709551615"):
        write_parquet(tmp_path / "t.parquet", [OrderAdd(0, TS, TS, 1, LAST, 2**64 - 1, 1, 100, 1)])


# ---- bad input ------------------------------------------------------------------------------------
def _error(path: Path) -> str:
    with pytest.raises(ParquetInputError) as info:
        list(ParquetTapeFeed(path).events())
    assert str(path) in str(info.value)
    return str(info.value)


def _rewrite(path: Path, table: pa.Table, tmp_path: Path, name: str = "bad.parquet") -> Path:
    out = tmp_path / name
    metadata = pq.ParquetFile(path).schema_arrow.metadata
    pq.write_table(table.replace_schema_metadata(metadata), out)
    return out


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_text("price,size\n1,2\n")
    assert _error(path) == f"{path}: file: not a Parquet file (starts with b'pric', expected b'PAR1')"
    with pytest.raises(ParquetInputError, match="not a Parquet file"):
        open_feed(path)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_file_cut_short_says_it_has_no_footer(tmp_path, keep):
    path = write_parquet(tmp_path / "t.parquet", many_events(2000))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    assert "footer: file cut short at byte" in _error(path)


def test_missing_column_wrong_type_and_missing_header_are_named(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", one_of_each())
    table = pq.read_table(path)
    missing = _rewrite(path, table.drop_columns(["price"]), tmp_path, "missing.parquet")
    assert _error(missing) == f"{missing}: column 'price': missing column"
    index = table.schema.get_field_index("ts_recv")
    wrong = _rewrite(path, table.set_column(index, "ts_recv", table.column("ts_recv").cast(pa.float64(), safe=False)),
                     tmp_path, "wrong.parquet")
    assert _error(wrong) == f"{wrong}: column 'ts_recv': wrong type double (expected int64)"
    bare = tmp_path / "bare.parquet"
    pq.write_table(table.replace_schema_metadata({}), bare)
    assert "metadata: not a chimera tape: no 'chimera-tape' key" in _error(bare)


@pytest.mark.parametrize(("nulls", "first"), [((7,), 7), ((8, 5), 5)])
def test_a_null_where_a_kind_needs_a_value_names_row_group_row_and_column(tmp_path, nulls, first):
    """Rows are numbered 0-based over the file (pandas' index); the events of the rows before it are kept.

    With two bad rows (a delete at row 8, a modify at row 5) the first of them is named.
    """
    events = one_of_each()
    path = write_parquet(tmp_path / "t.parquet", events, row_group=5)
    table = pq.read_table(path)
    prices = table.column("price").to_pylist()
    for row in nulls:
        prices[row] = None
    index = table.schema.get_field_index("price")
    bad = tmp_path / "null.parquet"
    pq.write_table(table.set_column(index, pa.field("price", pa.int64()), pa.array(prices, pa.int64()))
                   .replace_schema_metadata(table.schema.metadata), bad, row_group_size=5)
    feed = ParquetTapeFeed(bad)
    seen = []
    with pytest.raises(ParquetInputError) as info:
        for event in feed.events():
            seen.append(event)
    assert str(info.value) == (f"{bad}: row group 1, row {first}, column 'price': null where the event's kind "
                               "needs a value")
    assert seen == events[:first]  # every row before the bad one was replayed


def test_an_unknown_kind_code_is_named(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", one_of_each())
    table = pq.read_table(path)
    kinds = table.column("kind").to_pylist()
    kinds[3] = 42
    bad = _rewrite(path, table.set_column(0, table.schema.field("kind"), pa.array(kinds, pa.int8())),
                   tmp_path)
    assert _error(bad) == f"{bad}: row group 0, row 3, column 'kind': unknown event kind code 42 (known: 1-12)"


def test_damage_in_a_row_group_is_raised_after_the_row_groups_before_it(tmp_path):
    """Bytes flipped inside the last row group fail its page checksum; earlier row groups were replayed."""
    events = many_events(3000)
    path = write_parquet(tmp_path / "t.parquet", events, row_group=1000)
    meta = pq.ParquetFile(path).metadata
    column = meta.row_group(2).column(meta.schema.to_arrow_schema().get_field_index("ts_recv"))
    data = bytearray(path.read_bytes())
    at = column.data_page_offset + column.total_compressed_size // 2
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    seen: list[Event] = []
    with pytest.raises(ParquetInputError) as info:
        for event in ParquetTapeFeed(path).events():
            seen.append(event)
    assert "row group 2 (rows 2,000+): damaged:" in str(info.value)
    assert "the 2,000 events before it were replayed" in str(info.value)
    assert seen == events[:2000]


# ---- readable without Chimera ---------------------------------------------------------------------
def test_the_documented_pyarrow_example_reads_a_tape_with_no_chimera_import(tmp_path):
    """docs/parquet-tapes.md's pyarrow.dataset example runs in a fresh interpreter on a recorded tape."""
    path = write_parquet(tmp_path / "t.parquet", [*one_of_each(), *many_events(50)])
    script = textwrap.dedent(f"""
        import json, sys
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq
        tape = ds.dataset({str(path)!r}, format="parquet")
        trades = tape.to_table(columns=["ts_recv", "price", "size", "side"], filter=ds.field("kind") == 9)
        header = json.loads(pq.read_schema({str(path)!r}).metadata[b"chimera-tape"])
        print(trades.num_rows, trades.column("price").to_pylist(), header["instruments"][0][6])
        assert not any(name.split(".")[0] in ("engine", "feeds") for name in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=tmp_path)
    assert result.stdout.split(maxsplit=1)[0] == "1" and "[1000300]" in result.stdout and "AMZN" in result.stdout


def test_pandas_reads_a_tape(tmp_path):
    pd = pytest.importorskip("pandas")
    path = write_parquet(tmp_path / "t.parquet", one_of_each())
    frame = pd.read_parquet(path)
    assert sorted(frame["kind"]) == list(range(1, 13)) and frame.loc[7, "price"] == 1000300


def test_every_event_type_has_a_kind_code():
    assert sorted(KIND_CODES.values()) == list(range(1, len(ALL_EVENT_TYPES) + 1))


def test_header_of_a_jsonl_tape_is_unchanged(tmp_path):
    """JSON-lines tapes are still written by default and read as before."""
    path = tmp_path / "t.jsonl"
    with open_writer(path, [AMZN], "unit"):
        pass
    assert read_header(path).source == "unit" and isinstance(open_tape(path), TapeFeed)
