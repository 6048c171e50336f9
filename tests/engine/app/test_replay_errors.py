"""`chimera replay`, `import-lobster` and `record` on bad input: damaged, cut, empty or misplaced files and
LOBSTER days that disagree with their orderbook file, each one line on stderr and its exit code."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from engine.app.cli import main
from feeds.lobster import lobster_available
from tests.feeds.test_lobster import NO_DATA, altered_sample_day, msg, write_day

DAMAGED = re.compile(r"chimera: error: (?P<path>\S+): corrupt compressed data at byte (?P<offset>[\d,]+) "
                     r"\((?P<problem>[^)]+)\); (?P<events>[\d,]+) events before it were replayed - the file is "
                     r"damaged, re-record it or restore it from a copy\n")


@pytest.fixture(scope="module", params=[".gz", ".zst"])
def recorded(request, tmp_path_factory) -> bytes:
    """The bytes of a 15-minute two-symbol simulator tape (several compressed members)."""
    path = tmp_path_factory.mktemp("tape") / f"day.jsonl{request.param}"
    assert main(["record", "--symbol", "AAPL,MSFT", "--duration", "900", "--out", str(path)]) == 0
    return path.read_bytes()


def _suffix(data: bytes) -> str:
    return ".gz" if data.startswith(b"\x1f\x8b") else ".zst"


def _runs(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, (SELECT COUNT(*) FROM trades), (SELECT COUNT(*) FROM book_samples) "
                            "FROM runs").fetchall()


def test_bytes_flipped_mid_tape_fail_the_run_after_saving_what_came_before(recorded, tmp_path, capsys):
    """A tape damaged mid-file exits 2 with one line naming the file and byte; the run is failed, its rows kept."""
    capsys.readouterr()
    data = bytearray(recorded)
    spot = len(data) * 4 // 5
    data[spot : spot + 16] = bytes(b ^ 0xFF for b in data[spot : spot + 16])
    path = tmp_path / f"damaged.jsonl{_suffix(recorded)}"
    path.write_bytes(bytes(data))
    db = tmp_path / "replay.db"
    assert main(["replay", str(path), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    found = DAMAGED.fullmatch(err)
    assert found is not None, err
    assert found["path"] == str(path) and spot <= int(found["offset"].replace(",", "")) < len(data)
    assert int(found["events"].replace(",", "")) > 0
    ((status, trades, book_samples),) = _runs(db)
    assert status == "failed" and trades > 0 and book_samples > 0


@pytest.mark.parametrize("strict", [False, True])
def test_a_cut_tape_replays_up_to_the_cut_with_a_warning(recorded, tmp_path, capsys, strict):
    """A tape cut short (a killed recorder) replays to the cut, warns and exits 0, with or without --strict."""
    path = tmp_path / f"cut.jsonl{_suffix(recorded)}"
    path.write_bytes(recorded[: len(recorded) * 7 // 10])
    db = tmp_path / "replay.db"
    capsys.readouterr()
    assert main(["replay", str(path), "--db", str(db), "--no-progress", *(["--strict"] if strict else [])]) == 0
    out, err = capsys.readouterr()
    assert "input ended in a truncated compressed tail" in out and err == ""
    ((status, trades, _),) = _runs(db)
    assert status == "completed" and trades > 0


def test_empty_files_and_directories_are_refused_before_anything_runs(tmp_path, capsys):
    """An empty FILE says "empty file" and a directory "is a directory", exit 2, for replay, import and record."""
    empty = tmp_path / "empty.jsonl.gz"
    empty.write_bytes(b"")
    message, _ = write_day(tmp_path, [msg(0, 1, 1, 5, 100, 1)], [([], [(100, 5)])])
    empty_message = tmp_path / "EMPTY_2012-06-21_34200000_57600000_message_1.csv"
    empty_message.write_bytes(b"")
    db = tmp_path / "never.db"
    feeds = ("give a chimera tape (.jsonl, .jsonl.gz, .jsonl.zst, .parquet), a LOBSTER message CSV or a Databento "
             ".dbn[.zst]")
    cases = [
        (["replay", str(empty), "--db", str(db)], f"{empty}: empty file (0 bytes); {feeds}"),
        (["replay", str(tmp_path), "--db", str(db)], f"{tmp_path}: is a directory; {feeds}"),
        (["import-lobster", str(message), "--out", str(tmp_path)],
         f"{tmp_path}: is a directory; give a tape file name such as {tmp_path / 'day.jsonl.gz'}"),
        (["import-lobster", str(empty_message), "--out", str(tmp_path / "t.jsonl")],
         f"{empty_message}: empty file (0 bytes); give a LOBSTER message file "
         "(TICKER_YYYY-MM-DD_start_end_message_N.csv)"),
        (["import-lobster", str(tmp_path), "--out", str(tmp_path / "t.jsonl")],
         f"{tmp_path}: is a directory; give a LOBSTER message file (TICKER_YYYY-MM-DD_start_end_message_N.csv)"),
        (["record", "--duration", "5", "--out", str(tmp_path)],
         f"{tmp_path}: is a directory; give a tape file name such as {tmp_path / 'day.jsonl.gz'}"),
        (["run", "--duration", "5", "--record", str(tmp_path), "--db", str(db)],
         f"{tmp_path}: is a directory; give a tape file name such as {tmp_path / 'day.jsonl.gz'}"),
    ]
    for argv, line in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == f"chimera: error: {line}\n"
    assert not db.exists()


def _disagreeing_day(folder: Path) -> tuple[Path, Path, str]:
    """A 3-message day whose orderbook row 2 shows 5 where the messages leave 6; and the mismatch's line."""
    lines = [msg(0, 1, 1, 10, 10010, -1), msg(1, 2, 1, 4, 10010, -1), msg(2, 1, 2, 3, 10000, 1)]
    rows = [([(10010, 10)], [(9990, 5)]), ([(10010, 5)], [(9990, 5)]), ([(10010, 5)], [(10000, 3)])]
    message, orderbook = write_day(folder, lines, rows, levels=1)
    return message, orderbook, "line 2 (message type 2): ask $100.10 has size 5 in the orderbook file, 6 in the " \
                               "rebuilt book"


def _mismatch_line(message: Path, orderbook: Path, first: str, count: int = 1) -> str:
    plural = "es" if count > 1 else ""
    return (f"chimera: error: {message}: {count:,} unexplained reconciliation mismatch{plural} with {orderbook.name}, "
            f"the first at {first} - check that the two files belong together (same day, same levels)\n")


def test_a_disagreeing_orderbook_exits_3_on_replay_and_import(tmp_path, capsys):
    """Replay saves the completed run then exits 3, and import writes its tape then exits 3, on the same line."""
    message, orderbook, first = _disagreeing_day(tmp_path)
    db = tmp_path / "replay.db"
    assert main(["replay", str(message), "--db", str(db)]) == 3
    assert capsys.readouterr().err == _mismatch_line(message, orderbook, first)
    ((status, _, _),) = _runs(db)
    assert status == "completed"
    assert main(["import-lobster", str(message), "--out", str(tmp_path / "day.jsonl")]) == 3
    out, err = capsys.readouterr()
    assert err == _mismatch_line(message, orderbook, first) and f"  mismatch: {first}" in out
    assert (tmp_path / "day.jsonl").stat().st_size > 0


def test_no_reconcile_reads_only_the_message_file(tmp_path, capsys):
    """Without its orderbook file a day is refused naming --no-reconcile, and replays or imports with it."""
    message, orderbook, _ = _disagreeing_day(tmp_path)
    orderbook.unlink()
    db = tmp_path / "replay.db"
    assert main(["replay", str(message), "--db", str(db)]) == 2
    assert capsys.readouterr().err == (
        f"chimera: error: {orderbook}: LOBSTER orderbook file not found; reconciliation needs it: put it beside "
        "the message file, or use --no-reconcile to read the message file alone\n")
    assert main(["replay", str(message), "--db", str(db), "--no-reconcile"]) == 0
    assert main(["import-lobster", str(message), "--no-reconcile", "--out", str(tmp_path / "day.jsonl")]) == 0
    assert capsys.readouterr().err == ""
    ((status, _, _),) = _runs(db)
    assert status == "completed"
    out = tmp_path / "both.jsonl"
    assert main(["import-lobster", str(message), str(orderbook), "--no-reconcile", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"chimera: error: {orderbook}: ORDERBOOK_CSV and --no-reconcile exclude each "
                                       "other (--no-reconcile reads only the message file)\n")
    assert not out.exists()


def test_foreign_message_file_names_take_symbol_and_date(tmp_path, capsys):
    """A message file named outside LOBSTER's scheme needs --symbol and --date, and the errors name those flags."""
    message, orderbook, first = _disagreeing_day(tmp_path)
    renamed = tmp_path / "amzn-day.csv"
    message.rename(renamed)
    db = tmp_path / "replay.db"
    scheme = "the file name does not follow LOBSTER's scheme (TICKER_YYYY-MM-DD_start_end_message_N.csv)"
    cases = [
        (["replay", str(renamed)], f"{renamed}: not a recognised feed file (expected a chimera tape (JSON lines "
                                       "or Parquet), a Databento "
                                   ".dbn[.zst], or a LOBSTER message CSV named "
                                   "TICKER_YYYY-MM-DD_start_end_message_N.csv or given --symbol and --date)"),
        (["replay", str(renamed), "--symbol", "TEST"], f"{renamed}: {scheme}; give --date YYYY-MM-DD"),
        (["import-lobster", str(renamed), str(orderbook), "--out", str(tmp_path / "t.jsonl")],
         f"{renamed}: {scheme}; give --symbol TICKER and --date YYYY-MM-DD"),
        (["replay", str(renamed), "--symbol", "TEST", "--date", "2012-06-21"],
         f"{renamed}: its orderbook file cannot be found from this name and reconciliation needs it: give it "
         "(import-lobster MESSAGE ORDERBOOK), or use --no-reconcile to read the message file alone"),
    ]
    for argv, line in cases:
        assert main([*argv, "--db", str(db)] if argv[0] == "replay" else argv) == 2, argv
        assert capsys.readouterr().err == f"chimera: error: {line}\n"
    assert not db.exists()
    assert main(["replay", str(renamed), "--symbol", "TEST", "--date", "2012-06-21", "--no-reconcile",
                 "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT symbol FROM instruments").fetchall() == [("TEST",)]
    capsys.readouterr()
    assert main(["import-lobster", str(renamed), str(orderbook), "--symbol", "TEST", "--date", "2012-06-21",
                 "--out", str(tmp_path / "t.jsonl")]) == 3
    assert capsys.readouterr().err == _mismatch_line(renamed, orderbook, first)
    with pytest.raises(SystemExit) as caught:
        main(["replay", str(renamed), "--date", "21/06/2012"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == ("chimera replay: error: argument --date: not a date: '21/06/2012' "
                                       "(expected YYYY-MM-DD) (see --help)\n")


@pytest.mark.skipif(not lobster_available(1), reason=NO_DATA)
def test_the_real_day_with_one_altered_orderbook_row_exits_3(tmp_path, capsys):
    """The AMZN level-1 day with one orderbook size changed replays and imports with exit 3 naming that row."""
    message, expected = altered_sample_day(1, tmp_path)
    orderbook = message.with_name(message.name.replace("_message_", "_orderbook_"))
    assert main(["replay", str(message), "--db", str(tmp_path / "amzn.db"), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"chimera: error: {message}: ") and err.count("\n") == 1
    assert f"with {orderbook.name}, the first at {expected.describe()} - " in err
    assert main(["import-lobster", str(message), "--out", str(tmp_path / "amzn.jsonl.gz")]) == 3
    assert capsys.readouterr().err == err
