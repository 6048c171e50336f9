"""A run's stored status is the truth (completed, stopped, failed, interrupted), `chimera runs` lists it,
and `replay --resume` continues a killed replay to exactly the tables of an uninterrupted one."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine import store
from engine.app.cli import main
from engine.records import TABLES

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = ["--set", "store.batch_rows=300", "--set", "store.batch_age_ms=10"]


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def runs(db: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["runs", "--db", str(db), "--json"]) == 0
    return last_json(capsys)["runs"]


def tables(db: Path, run_id: str) -> dict[str, list[tuple]]:
    conn = store.connect(db, readonly=True)
    try:
        return {table: store.fetch_rows(conn, table, run_id) for table in TABLES}
    finally:
        conn.close()


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args, "--log-level", "debug", "--log-json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def kill_after(proc: subprocess.Popen, rows: int) -> bool:
    """SIGKILL ``proc`` once it has logged ``rows`` committed rows; False if it ended first."""
    seen = 0
    for line in proc.stderr:
        if '"batch_committed"' in line:
            seen += json.loads(line)["rows"]
            if seen >= rows:
                proc.send_signal(signal.SIGKILL)
                break
    proc.communicate(timeout=60)
    return proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def tape(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tape") / "day.jsonl.gz"
    assert main(["record", "--symbol", "AAPL,TSLA", "--duration", "240", "--seed", "11", "--out", str(path)]) == 0
    return path


def test_statuses_and_stop_reasons_of_finished_runs(tmp_path, capsys):
    """A replay cut by --duration is `completed` (`--duration reached`), one to the end `completed` (`end of data`)."""
    db = tmp_path / "s.db"
    tape = tmp_path / "t.jsonl"
    assert main(["record", "--symbol", "AAPL", "--duration", "5", "--feed", "zero_intelligence",
                 "--out", str(tape)]) == 0
    assert main(["replay", str(tape), "--db", str(db), "--duration", "2"]) == 0
    assert main(["replay", str(tape), "--db", str(db)]) == 0
    listed = runs(db, capsys)
    assert [(r["command"], r["status"], r["stop_reason"]) for r in listed] == [
        ("replay", "completed", "--duration reached"), ("replay", "completed", "end of data")]
    assert all(r["events"] > 0 and len(r["config_hash"]) == 64 for r in listed)


def test_runs_table_lists_status_reason_events_and_config(tmp_path, capsys, monkeypatch):
    """`chimera runs` prints one row per run with its status, stop reason, events and config hash prefix."""
    monkeypatch.setenv("COLUMNS", "200")
    db = tmp_path / "t.db"
    assert main(["run", "--symbol", "AAPL", "--duration", "3", "--feed", "zero_intelligence", "--db", str(db),
                 "--json"]) == 0
    summary = last_json(capsys)
    assert main(["runs", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and summary["config_hash"][:12] in out and f"{summary['events']:,}" in out


def test_runs_of_a_missing_database_is_one_line(tmp_path, capsys):
    """`chimera runs` on a path with no database: exit 2 naming the path."""
    assert main(["runs", "--db", str(tmp_path / "none.db")]) == 2
    assert "no such database file" in capsys.readouterr().err


def test_a_killed_run_is_marked_interrupted_when_the_database_is_next_opened(tmp_path, capsys):
    """After kill -9 the row says `running`; `chimera runs` finds the process gone and marks it `interrupted`."""
    db = tmp_path / "k.db"
    proc = spawn("run", "--symbol", "AAPL", "--duration", "3600", "--speed", "5", "--feed", "zero_intelligence",
                 "--db", str(db), "--set", "store.batch_age_ms=10")
    assert kill_after(proc, 100)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "running"
    conn.close()
    (row,) = runs(db, capsys)
    assert row["status"] == "interrupted" and "process ended" in row["stop_reason"] and row["events"] > 0


def test_resume_refuses_a_completed_run_and_other_files(tmp_path, tape, capsys):
    """--resume of a completed run, of an unknown id, or with other flags: exit 2 naming the run."""
    db = tmp_path / "r.db"
    assert main(["replay", str(tape), "--db", str(db), "--json"]) == 0
    run_id = last_json(capsys)["run_id"]
    assert main(["replay", str(tape), "--db", str(db), "--resume", run_id]) == 2
    assert "the run is completed" in capsys.readouterr().err
    assert main(["replay", str(tape), "--db", str(db), "--resume", "nope"]) == 2
    assert "no such run" in capsys.readouterr().err
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET status = 'interrupted'")
    conn.close()
    assert main(["replay", str(tape), "--db", str(db), "--resume", run_id, "--duration", "10"]) == 2
    assert "same files and options" in capsys.readouterr().err
    assert main(["replay", str(tape), "--db", str(db), "--resume", run_id, "--set", "store.batch_rows=7"]) == 2
    assert "configuration differs" in capsys.readouterr().err


def test_resumed_replays_equal_an_uninterrupted_run_after_kills_at_random_points(tmp_path, tape, capsys):
    """Kill a replay at five random points (by committed rows); each resumed run's tables equal the
    uninterrupted run's."""
    reference_db = tmp_path / "ref.db"
    assert main(["replay", str(tape), "--db", str(reference_db), "--json", *SETTINGS]) == 0
    reference = last_json(capsys)
    expected = tables(reference_db, reference["run_id"])
    total = sum(map(len, expected.values()))
    assert total > 1000
    rng = random.Random(20261202)
    trials = 0
    while trials < 5:
        db = tmp_path / f"trial{trials}.db"
        # paced so the kill lands mid-run; the pace changes no row
        proc = spawn("replay", str(tape), "--db", str(db), "--speed", "40", *SETTINGS)
        assert kill_after(proc, rng.randint(1, total * 9 // 10)), "the replay ended before the kill"
        (row,) = runs(db, capsys)
        assert row["status"] == "interrupted"
        committed = sum(map(len, tables(db, row["run_id"]).values()))
        assert main(["replay", str(tape), "--db", str(db), "--resume", row["run_id"], "--json", *SETTINGS]) == 0
        resumed = last_json(capsys)
        assert resumed["status"] == "completed" and resumed["resumed"] and resumed["run_id"] == row["run_id"]
        assert tables(db, row["run_id"]) == expected, f"trial {trials}: {committed} rows committed before the kill"
        trials += 1
