"""`record`, `import-dbn` and `import-lobster` with `--format parquet`, and `replay` of Parquet tapes."""

from __future__ import annotations

import json

import databento_dbn as dbn
import msgspec
import pytest

from engine import store
from engine.app.cli import main
from engine.records import TABLES
from feeds.lobster import lobster_available, locate_sample
from feeds.parquet_tape import ParquetTapeFeed
from feeds.tape import TapeFeed, open_tape
from tests.feeds.test_dbn import mbo_session, write_dbn


def _rows(db, run_id):
    conn = store.connect(db)
    try:
        return {table: store.fetch_rows(conn, table, run_id) for table in TABLES if table != "runs"}
    finally:
        conn.close()


def _replay(capsys, tape, db) -> dict:
    assert main(["replay", str(tape), "--db", str(db), "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_record_format_parquet_replays_to_the_same_rows_as_jsonl(tmp_path, capsys):
    """One seed recorded as JSON lines and with --format parquet: equal events, equal persisted rows."""
    jsonl, parquet = tmp_path / "s.jsonl.zst", tmp_path / "s.tape"
    for path, extra in ((jsonl, []), (parquet, ["--format", "parquet"])):
        assert main(["record", "--symbol", "AAPL,TSLA", "--duration", "30", "--seed", "5", "--out", str(path),
                     *extra]) == 0
    capsys.readouterr()
    assert isinstance(open_tape(parquet), ParquetTapeFeed)
    assert list(TapeFeed(jsonl).events()) == list(open_tape(parquet).events())
    a, b = _replay(capsys, jsonl, tmp_path / "a.db"), _replay(capsys, parquet, tmp_path / "b.db")
    assert a["messages"] == b["messages"] > 0
    rows_a, rows_b = _rows(tmp_path / "a.db", a["run_id"]), _rows(tmp_path / "b.db", b["run_id"])
    assert rows_a == rows_b and rows_a["book_samples"]


def test_a_format_contradicting_the_name_exits_2_before_recording(tmp_path, capsys):
    assert main(["record", "--duration", "5", "--out", str(tmp_path / "s.jsonl"), "--format", "parquet"]) == 2
    assert "the file name says JSON lines but the format asked for is parquet" in capsys.readouterr().err
    assert not (tmp_path / "s.jsonl").exists()


def test_import_dbn_to_parquet_replays_like_the_jsonl_import(tmp_path, capsys):
    path = write_dbn(tmp_path / "es.dbn.zst", dbn.Schema.MBO, mbo_session(), version=3)
    tapes = [tmp_path / "es.jsonl", tmp_path / "es.parquet"]
    for tape in tapes:
        assert main(["import-dbn", str(path), "--out", str(tape), "--tick-size", "0.25"]) == 0
    capsys.readouterr()
    assert isinstance(open_tape(tapes[1]), ParquetTapeFeed)
    assert list(open_tape(tapes[0]).events()) == list(open_tape(tapes[1]).events())
    headers = [msgspec.structs.replace(open_tape(tape).header, created_at="") for tape in tapes]
    assert headers[0] == headers[1] and headers[0].meta["schema"] == "mbo"


@pytest.mark.skipif(not lobster_available(1), reason="LOBSTER sample data not found")
def test_import_lobster_format_parquet(tmp_path, capsys):
    message, _ = locate_sample(1)
    tape = tmp_path / "day.parquet"
    assert main(["import-lobster", str(message), "--out", str(tape), "--format", "parquet"]) == 0
    capsys.readouterr()
    feed = ParquetTapeFeed(tape)
    assert sum(1 for _ in feed.events()) == feed.stats()["events"] > 50_000
    assert feed.header.source.startswith("lobster:")
