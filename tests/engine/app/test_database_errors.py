"""A bad ``--db`` ends in one line before anything runs, and a database that refuses writes mid-run ends
in a ``failed`` run with its reason and every accepted row, once the database accepts writes again."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine import store
from engine.app.cli import main
from engine.store.schema import _migration_1

ROOT = Path(__file__).resolve().parents[3]
RUN = ["run", "--symbol", "AAPL", "--duration", "2", "--feed", "zero_intelligence"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("chimera: error: ")
    return err[0]


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path, capsys):
    """--db naming a text file: exit 2, one line, and the file keeps its bytes."""
    db = tmp_path / "notes.db"
    db.write_text("not a database\n")
    assert main([*RUN, "--db", str(db)]) == 2
    assert "not an SQLite database" in one_error_line(capsys)
    assert db.read_text() == "not a database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_someone_elses_sqlite_database_is_refused_without_changing_its_journal_mode(tmp_path, capsys):
    """An SQLite file of another application with a `runs` table is refused before any pragma touches it."""
    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO runs (name) VALUES ('theirs')")
    conn.close()
    before = db.read_bytes()
    assert main([*RUN, "--db", str(db)]) == 2
    line = one_error_line(capsys)
    assert "not Chimera's" in line and "runs" in line and str(db) in line
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_another_applications_id_is_named(tmp_path, capsys):
    """An SQLite file with a foreign application_id is refused naming that id."""
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA application_id=1234")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    assert main([*RUN, "--db", str(db)]) == 2
    assert "application_id 0x4d2" in one_error_line(capsys)


def test_a_directory_is_refused(tmp_path, capsys):
    """--db naming a directory: exit 2 and the line says it is a directory."""
    assert main([*RUN, "--db", str(tmp_path)]) == 2
    assert "is a directory" in one_error_line(capsys)


def test_a_read_only_directory_is_refused_before_the_run(tmp_path, capsys):
    """--db in a directory where no file can be created: exit 2 naming the directory, nothing runs."""
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new files even to root
        if not Path("/sys").is_dir():
            pytest.skip("needs a directory that refuses new files even to root (/sys on Linux)")
        db = Path("/sys/chimera-test.db")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        db = locked / "r.db"
    assert main([*RUN, "--db", str(db)]) == 2
    line = one_error_line(capsys)
    assert "is not writable" in line and str(db.parent) in line


def test_a_newer_schema_is_refused_with_exit_2(tmp_path, capsys):
    """A Chimera database written by a newer Chimera is refused before anything runs."""
    db = tmp_path / "new.db"
    store.connect(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version={store.SCHEMA_VERSION + 1}")
    conn.close()
    assert main([*RUN, "--db", str(db)]) == 2
    assert "newer than this Chimera" in one_error_line(capsys)


def test_a_version_1_chimera_database_is_recognised_and_migrated(tmp_path, capsys):
    """A database written before the application id existed is ours by its schema marker and is migrated."""
    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db)
    for statement in _migration_1():
        conn.execute(statement)
    conn.execute("INSERT INTO runs (run_id, command, status) VALUES ('old', 'run', 'completed')")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    assert main([*RUN, "--db", str(db), "--json"]) == 0
    capsys.readouterr()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == store.APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY started_at")] == ["completed"] * 2
    conn.close()


def test_a_write_lock_held_past_busy_timeout_fails_the_run_once_writes_resume(tmp_path):
    """Another process holds the write lock mid-run: the run fails in one line (exit 1, no traceback), and
    once the lock is released its accepted rows and its `failed` status with the reason are written."""
    db = tmp_path / "locked.db"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "run", "--symbol", "AAPL,TSLA", "--duration", "3600",
         "--speed", "5", "--feed", "zero_intelligence", "--db", str(db), "--set", "store.busy_timeout_ms=200",
         "--set", "store.batch_age_ms=20", "--log-level", "debug", "--log-json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    locker = None
    seen: list[str] = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if locker is None and '"batch_committed"' in line:
                locker = sqlite3.connect(db, isolation_level=None, timeout=30)
                locker.execute("BEGIN IMMEDIATE")  # the write lock, held until the run asks to recover
            elif locker is not None and '"store_waiting"' in line:
                locker.execute("ROLLBACK")
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if locker is not None:
            locker.close()
    err = "".join(seen) + err
    assert proc.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("chimera: error:")]
    assert len(errors) == 1 and "database is locked" in errors[0] and "busy_timeout 200 ms" in errors[0]
    assert "Traceback" not in err and "Event loop is closed" not in err
    conn = store.connect(db, readonly=True)
    try:
        sql = "SELECT run_id, status, stop_reason, summary FROM runs"
        run_id, status, reason, summary = conn.execute(sql).fetchone()
        trades = conn.execute("SELECT COUNT(*) FROM trades WHERE run_id = ?", (run_id,)).fetchone()[0]
    finally:
        conn.close()
    assert status == "failed" and "database is locked" in reason
    assert trades > 0 and json.loads(summary)["db_rows"]["trades"] == trades


def test_a_lock_never_released_ends_after_recovery_timeout_and_the_run_is_later_interrupted(tmp_path, capsys):
    """With the lock held for good, the run gives up after [store] recovery_timeout_s in one line (exit 1);
    the row it could not update is marked `interrupted` when the database is next opened."""
    db = tmp_path / "held.db"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "run", "--symbol", "AAPL", "--duration", "3600", "--speed", "5",
         "--feed", "zero_intelligence", "--db", str(db), "--set", "store.busy_timeout_ms=100",
         "--set", "store.batch_age_ms=20", "--set", "store.recovery_timeout_s=0.5", "--log-level", "debug",
         "--log-json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    locker = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        for line in proc.stderr:
            if '"batch_committed"' in line:
                locker.execute("BEGIN IMMEDIATE")
                break
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        locker.execute("ROLLBACK")
        locker.close()
    assert proc.returncode == 1
    errors = [line for line in err.splitlines() if line.startswith("chimera: error:")]
    assert len(errors) == 1 and "still refusing writes after 0.5 s" in errors[0], err
    assert "Traceback" not in err
    assert main(["runs", "--db", str(db), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
    assert row["status"] == "interrupted"
