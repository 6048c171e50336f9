"""`chimera replay FILE.dbn[.zst]` and `chimera import-dbn`: DBN files written by databento-dbn, end to end."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import databento_dbn as dbn
import pytest

from engine.app.cli import main
from engine.events import LAST, Trade
from feeds.dbn import DbnFeed
from feeds.tape import TapeWriter
from tests.feeds.test_dbn import (
    ASK,
    BID,
    ES,
    SECOND,
    T0,
    A,
    C,
    mbo,
    mbo_session,
    mbp,
    quarters,
    write_dbn,
)

ROOT = Path(__file__).resolve().parents[3]


def run(capsys, *args: str) -> tuple[int, dict]:
    code = main([*args, "--json", "--no-progress"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def last_book(db: Path) -> tuple:
    """(best bid, best ask, bid prices, bid sizes, ask prices, ask sizes, state) of the last book sample."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT best_bid, best_ask, bid_px, bid_sz, ask_px, ask_sz, state FROM book_samples "
                           "ORDER BY ts_recv DESC, seq DESC LIMIT 1").fetchone()
    return (row[0], row[1], *(json.loads(column) for column in row[2:6]), row[6])


def test_replay_of_an_mbo_file_keeps_the_book(tmp_path, capsys):
    """replay of an MBO snapshot plus deltas ends with the hand-computed top of book, its trade and no gap."""
    path = write_dbn(tmp_path / "es.dbn", dbn.Schema.MBO, mbo_session(), version=2)
    db = tmp_path / "r.db"
    code, summary = run(capsys, "replay", str(path), "--db", str(db), "--tick-size", "0.25")
    assert code == 0 and summary["status"] == "completed" and summary["instruments"] == ["ESM4"]
    assert (summary["feed"]["records"], summary["feed"]["events"], summary["feed"]["gaps"]) == (13, 12, 0)
    assert last_book(db) == (20000, 20001, [20000, 19999], [5, 10], [20001, 20002], [1, 6], 0)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT price, size, aggressor FROM trades").fetchall() == [(20001, 3, 1)]
        assert conn.execute("SELECT symbol, tick_size, price_scale FROM instruments").fetchall() == [
            ("ESM4", "0.25", 250_000_000)]


def test_replay_takes_the_tick_size_from_the_config(tmp_path, capsys):
    """Without --tick-size the config's [instruments.ESM4] tick_size converts prices (default 0.01 otherwise)."""
    path = write_dbn(tmp_path / "es.dbn", dbn.Schema.MBO, mbo_session())
    code, _ = run(capsys, "replay", str(path), "--db", str(tmp_path / "a.db"), "--set",
                  'instruments.ESM4.tick_size="0.25"')
    assert code == 0 and last_book(tmp_path / "a.db")[:2] == (20000, 20001)
    code, _ = run(capsys, "replay", str(path), "--db", str(tmp_path / "b.db"))
    assert code == 0 and last_book(tmp_path / "b.db")[:2] == (500000, 500025)


def test_replay_of_an_mbp10_zst_file_keeps_the_ten_levels(tmp_path, capsys):
    """replay of a zstd MBP-10 file ends with the last record's levels (the samples keep the top five)."""
    bids = [(400 - 2 * i, 10 + i) for i in range(10)]
    asks = [(401 + 2 * i, 20 + i) for i in range(10)]
    records = [mbp(quarters(bids), quarters(asks), A, flags=dbn.F_SNAPSHOT | dbn.F_LAST, sequence=1),
               mbp(quarters([bids[0], (399, 1), *bids[1:9]]), quarters(asks), A, BID, 99.75, 1, sequence=2,
                   t=SECOND),
               mbp(quarters([bids[0], (399, 1), *bids[1:9]]), quarters([(401, 18), *asks[1:]]), C, ASK, 100.25, 2,
                   sequence=3, t=2 * SECOND)]
    path = write_dbn(tmp_path / "es.mbp10.dbn.zst", dbn.Schema.MBP_10, records)
    db = tmp_path / "m.db"
    code, summary = run(capsys, "replay", str(path), "--db", str(db), "--tick-size", "0.25")
    assert code == 0 and summary["feed"]["snapshots"] == 1 and summary["feed"]["gaps"] == 0
    assert last_book(db) == (400, 401, [400, 399, 398, 396, 394], [10, 1, 11, 12, 13], [401, 403, 405, 407, 409],
                             [18, 21, 22, 23, 24], 0)


def test_a_sequence_gap_is_reported_and_the_book_stays_stale(tmp_path, capsys):
    """A skipped venue sequence number shows in the feed stats and integrity counters; later samples are STALE."""
    records = [mbo(A, BID, 1, 100.0, 5, sequence=1), mbo(A, ASK, 2, 100.25, 5, sequence=3, t=SECOND),
               mbo(C, ASK, 2, 100.25, 1, sequence=4, t=2 * SECOND)]
    db = tmp_path / "g.db"
    code, summary = run(capsys, "replay", str(write_dbn(tmp_path / "g.dbn", dbn.Schema.MBO, records)), "--db", str(db))
    assert code == 0 and summary["feed"]["sequence_gaps"] == 1
    assert summary["errors"]["integrity"]["ESM4"]["book.gaps"] == 1
    assert last_book(db)[6] & 1  # STALE
    code, summary = run(capsys, "replay", str(tmp_path / "g.dbn"), "--db", str(db), "--no-sequence-check")
    assert code == 0 and summary["feed"]["gaps"] == 0 and "book.gaps" not in summary["errors"]["integrity"].get(
        "ESM4", {})


def test_import_dbn_reports_counts_and_its_tape_replays_to_the_same_book(tmp_path, capsys):
    """import-dbn prints records, events, instruments and gaps; replaying its tape gives the same book samples."""
    path = write_dbn(tmp_path / "es.dbn.zst", dbn.Schema.MBO, mbo_session(), version=3)
    tape = tmp_path / "es.jsonl.zst"
    assert main(["import-dbn", str(path), "--out", str(tape), "--tick-size", "0.25"]) == 0
    out = capsys.readouterr().out
    for line in ("records                   13", "events                    12", "instruments               1 (ESM4)",
                 "gaps                      0 (0 in sequence numbers, 0 flagged F_MAYBE_BAD_BOOK)"):
        assert line in out
    samples = []
    for source, db in ((tape, tmp_path / "t.db"), (path, tmp_path / "d.db")):
        code, _ = run(capsys, "replay", str(source), "--db", str(db), "--tick-size", "0.25")
        assert code == 0
        with sqlite3.connect(db) as conn:
            samples.append(conn.execute("SELECT instrument_id, seq, ts_recv, state, bid_px, bid_sz, ask_px, ask_sz "
                                        "FROM book_samples ORDER BY ts_recv, seq").fetchall())
    assert samples[0] == samples[1] and len(samples[0]) == 6


def test_replay_merges_a_dbn_file_with_a_tape(tmp_path, capsys):
    """A DBN file and a tape replay together, the tape's colliding instrument renamed ESM4#2."""
    path = write_dbn(tmp_path / "es.dbn", dbn.Schema.MBO, mbo_session())
    tape = tmp_path / "t.jsonl"
    with TapeWriter(tape, DbnFeed(path).instruments(), "test") as writer:
        writer.write(Trade(ES, T0 + 1, T0 + 1, 0, LAST, 500000, 1, 1))
    code, summary = run(capsys, "replay", str(path), str(tape), "--db", str(tmp_path / "m.db"))
    assert code == 0 and summary["instruments"] == ["ESM4", "ESM4#2"] and summary["events"] == 13


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each malformed DBN file with the text its error must contain."""
    bar = dbn.OHLCVMsg(dbn.RType.OHLCV_1M, 1, ES, T0, 1, 2, 1, 2, 10)
    ohlcv = write_dbn(tmp_path / "bars.dbn", dbn.Schema.OHLCV_1M, [bar])
    cut = write_dbn(tmp_path / "cut.dbn", dbn.Schema.MBO, mbo_session())
    cut.write_bytes(cut.read_bytes()[:-30])
    version = write_dbn(tmp_path / "v9.dbn", dbn.Schema.MBO, mbo_session())
    version.write_bytes(b"DBN\x09" + version.read_bytes()[4:])
    garbage = tmp_path / "garbage.dbn"
    garbage.write_bytes(b"\x00\x01 this is not DBN " * 10)
    return {"schema": (ohlcv, "schema 'ohlcv-1m' is not supported"),
            "truncated": (cut, "record 13: truncated: the file ends 26 bytes into it"),
            "version": (version, "unsupported DBN version 9"),
            "garbage": (garbage, "not a DBN file")}


@pytest.mark.parametrize("command", ["replay", "import-dbn"])
def test_malformed_dbn_files_are_one_line_naming_the_file_and_exit_2(tmp_path, capsys, command):
    """Unsupported schema, a record cut short, a wrong version, garbage: exit 2, one line naming the file."""
    for path, problem in bad_files(tmp_path).values():
        args = [command, str(path), "--db", str(tmp_path / "x.db")] if command == "replay" else \
            [command, str(path), "--out", str(tmp_path / "x.jsonl")]
        assert main(args) == 2, path
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"chimera: error: {path}: {problem}"), lines
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.db").exists()


def test_a_truncated_dbn_file_fails_in_a_real_process_without_traceback(tmp_path):
    """python main.py import-dbn on a cut file: exit 2, one stderr line, no traceback."""
    path, problem = bad_files(tmp_path)["truncated"]
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "import-dbn", str(path), "--out",
                             str(tmp_path / "x.jsonl")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"chimera: error: {path}: {problem} (it was cut short)"]


def test_a_bad_tick_size_flag_is_refused(tmp_path, capsys):
    """--tick-size finer than 1e-9 stops at argument parsing with exit 2 and one line."""
    path = write_dbn(tmp_path / "es.dbn", dbn.Schema.MBO, mbo_session())
    with pytest.raises(SystemExit) as info:
        main(["import-dbn", str(path), "--out", str(tmp_path / "x.jsonl"), "--tick-size", "0.0000000001"])
    assert info.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--tick-size" in line and "multiple of 0.000000001" in line


def test_import_dbn_has_help():
    """import-dbn --help exits 0."""
    with pytest.raises(SystemExit) as info:
        main(["import-dbn", "--help"])
    assert info.value.code == 0
