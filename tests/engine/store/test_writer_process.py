"""The writer in its own process (``[store] writer = "process"``) against the thread path: the same rows,
one transaction per batch, the heartbeat, cancellation mid-commit, a killed child (StoreError naming the
file, rows kept pending) and a killed parent (committed batches intact, no child left)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil
import pytest

from engine import store
from engine.app.cli import main
from engine.errors import StoreError
from engine.records import END, TABLES
from engine.store.writer_process import MODULE, ProcessSink
from tests.engine.store.test_store import rows_in

ROOT = Path(__file__).resolve().parents[3]
MODES = ["process", "thread"]


def trade_row(iid: int, seq: int) -> tuple:
    return (iid, seq, seq * 10, seq * 10 + 1, 100 + seq, 10, 1, seq, seq, 0)


def integrity_row(iid: int, counter: str, value: int) -> tuple:
    return (iid, "book", counter, value)


def tables(db: Path, run_id: str | None = None) -> dict[str, list[tuple]]:
    conn = store.connect(db, readonly=True)
    try:
        if run_id is None:
            (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()
        return {table: store.fetch_rows(conn, table, run_id) for table in TABLES}
    finally:
        conn.close()


class FakeClock:
    def __call__(self) -> float:
        return 0.0


@pytest.fixture
def schema(tmp_path):
    path = tmp_path / "w.db"
    store.connect(path).close()
    return path


def writer_children() -> list[psutil.Process]:
    """This process's living writer children."""
    found = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if any(MODULE in arg for arg in child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
    return found


@pytest.mark.parametrize("mode", MODES)
async def test_batches_by_size_each_in_one_transaction_and_no_child_left(schema, mode):
    """Seven items of two rows with batch_rows=3: a batch closes once it holds 3 rows or more (4, 4, 4),
    the last 2 rows at END; read back in order, and no writer process is left."""
    writer = store.BatchWriter(schema, "run", batch_rows=3, batch_age_ms=60_000, monotonic=FakeClock(), mode=mode)
    commits: list[int] = []
    writer.on_commit = lambda rows, seconds: commits.append(rows)
    q: asyncio.Queue = asyncio.Queue(100)
    for seq in range(7):
        q.put_nowait([("trades", trade_row(0, seq)), ("integrity", integrity_row(0, f"c{seq}", seq))])
    q.put_nowait(END)
    await writer.run(q)
    assert commits == [4, 4, 4, 2]
    assert (writer.stats.rows, writer.stats.batches, writer.stats.max_batch) == (14, 4, 4)
    assert rows_in(schema) == [trade_row(0, seq) for seq in range(7)]
    assert len(rows_in(schema, "integrity")) == 7
    assert writer_children() == []


async def test_process_and_thread_writers_store_identical_tables(tmp_path):
    """Many producers through a tiny queue: both modes store the same rows of every table."""
    results = {}
    for mode in MODES:
        db = tmp_path / f"{mode}.db"
        store.connect(db).close()
        writer = store.BatchWriter(db, "run", batch_rows=11, batch_age_ms=60_000, monotonic=FakeClock(), mode=mode)
        q: asyncio.Queue = asyncio.Queue(1)

        async def producer(p: int, q: asyncio.Queue = q) -> None:
            for seq in range(40):
                await q.put([("trades", trade_row(p, seq)), ("integrity", integrity_row(p, f"c{seq}", seq))])
                await asyncio.sleep(0)

        async with asyncio.TaskGroup() as group:
            task = group.create_task(writer.run(q))
            await asyncio.gather(*(producer(p) for p in range(5)))
            await q.put(END)
            await task
        results[mode] = tables(db, "run")
        assert writer.stats.rows == 400
    assert results["process"] == results["thread"]
    assert len(results["process"]["trades"]) == 200


def test_a_replay_stores_identical_tables_with_either_writer(tmp_path, capsys):
    """The same replay through the pipeline, [store] writer = "process" (the default) and "thread"."""
    tape = tmp_path / "day.jsonl.gz"
    assert main(["record", "--symbol", "AAPL,TSLA", "--duration", "60", "--seed", "3", "--out", str(tape)]) == 0
    stored = {}
    for mode in MODES:
        db = tmp_path / f"{mode}.db"
        assert main(["replay", str(tape), "--db", str(db), "--set", f"store.writer={mode}",
                     "--set", "store.batch_rows=97"]) == 0
        stored[mode] = tables(db)
    assert stored["process"] == stored["thread"]
    assert sum(map(len, stored["process"].values())) > 500


@pytest.mark.parametrize("mode", MODES)
async def test_the_heartbeat_is_written_when_idle_and_with_each_batch(schema, mode):
    conn = store.connect(schema)
    store.start_run(conn, "run", "replay", None, "h", "tape", "2026-01-01T00:00:00.000+00:00")
    events = [0]
    writer = store.BatchWriter(schema, "run", batch_rows=1, batch_age_ms=60_000, monotonic=FakeClock(),
                               progress=lambda: events[0], heartbeat_s=0.01, mode=mode)
    q: asyncio.Queue = asyncio.Queue(10)
    task = asyncio.ensure_future(writer.run(q))
    events[0] = 7
    while conn.execute("SELECT events FROM runs").fetchone()[0] != 7:  # idle: the heartbeat alone
        await asyncio.sleep(0.01)
    events[0] = 9
    await q.put([("trades", trade_row(0, 0))])  # a batch carries the heartbeat in its transaction
    await q.put(END)
    await task
    assert conn.execute("SELECT events FROM runs").fetchone()[0] == 9
    assert rows_in(schema) == [trade_row(0, 0)]
    conn.close()


async def test_cancelled_while_the_child_commits_keeps_every_row_once(schema, monkeypatch):
    """A cancellation landing while the child holds a batch (blocked on a lock another connection holds)
    waits for the child's answer; the batch counts once and the rows still queued are written after it."""
    sent = asyncio.Event()
    original = ProcessSink.write

    async def write(sink, batches, heartbeat):
        pending = original(sink, batches, heartbeat)
        if batches:
            sent.set()
        return await pending

    monkeypatch.setattr(ProcessSink, "write", write)
    locker = sqlite3.connect(schema, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    writer = store.BatchWriter(schema, "run", batch_rows=2, batch_age_ms=60_000, busy_timeout_ms=60_000,
                               monotonic=FakeClock(), mode="process")
    q: asyncio.Queue = asyncio.Queue(10)
    task = asyncio.ensure_future(writer.run(q))
    q.put_nowait([("trades", trade_row(0, 0)), ("integrity", integrity_row(0, "a", 1))])
    await sent.wait()  # the first batch is in the child, which waits for the lock
    q.put_nowait([("trades", trade_row(0, 1))])
    task.cancel()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()  # waiting for the child's answer, not abandoning the batch
    locker.execute("COMMIT")
    with pytest.raises(asyncio.CancelledError):
        await task
    locker.close()
    assert rows_in(schema) == [trade_row(0, 0), trade_row(0, 1)]
    assert rows_in(schema, "integrity") == [integrity_row(0, "a", 1)]
    assert writer.stats.rows == 3 and writer.pending_rows == 0
    assert writer_children() == []


async def test_a_killed_child_is_a_store_error_naming_the_file_and_the_rows_stay_pending(schema):
    writer = store.BatchWriter(schema, "run", batch_rows=2, batch_age_ms=60_000, monotonic=FakeClock(),
                               mode="process")
    q: asyncio.Queue = asyncio.Queue(10)
    task = asyncio.ensure_future(writer.run(q))
    await q.put([("trades", trade_row(0, 0)), ("trades", trade_row(0, 1))])
    while writer.stats.batches < 1:
        await asyncio.sleep(0.01)
    (child,) = writer_children()
    os.kill(child.pid, signal.SIGKILL)
    while child.status() != psutil.STATUS_ZOMBIE:  # dead, not reaped: the writer reads its exit code
        await asyncio.sleep(0.01)
    await q.put([("trades", trade_row(0, 2)), ("trades", trade_row(0, 3))])
    with pytest.raises(StoreError) as info:
        await task
    message = str(info.value)
    assert message.startswith(f"{schema}: ") and "writer process ended (exit code -9)" in message
    assert writer.error is info.value
    assert writer.pending_rows == 2
    assert rows_in(schema) == [trade_row(0, 0), trade_row(0, 1)]
    assert writer.flush_pending() == 2  # written in this process once the caller retries
    assert rows_in(schema) == [trade_row(0, seq) for seq in range(4)]
    assert writer.pending_rows == 0 and writer_children() == []


async def test_a_batch_committed_by_a_child_that_ended_before_replying_counts_once(schema):
    """The child can end between COMMIT and its reply: the run's row count in the file tells the parent
    whether the batch in flight was committed, so it is neither lost nor written twice."""
    conn = store.connect(schema)
    store.write_records(conn, "run", [("trades", trade_row(0, 0))])  # an interrupted run's rows
    sink = await ProcessSink.open(schema, "run", 5000)
    try:
        assert sink.stored == 1
        await sink.write([[("trades", trade_row(0, 1)), ("integrity", integrity_row(0, "a", 1))]], None)
        assert sink.stored == 3
        os.kill(sink.process.pid, signal.SIGKILL)
        sink.process.wait()
        assert not sink.committed_before_ending(2)  # nothing more is in the file
        store.write_records(conn, "run", [("trades", trade_row(0, 2)), ("trades", trade_row(0, 3))])
        assert sink.committed_before_ending(2)  # as if the child had committed them before ending
        assert not sink.committed_before_ending(1)
    finally:
        await sink.close()
        conn.close()


def test_the_open_error_of_the_child_is_a_store_error_naming_the_file(tmp_path):
    db = tmp_path / "missing" / "w.db"
    writer = store.BatchWriter(db, "run", batch_rows=2, batch_age_ms=60_000, mode="process")
    q: asyncio.Queue = asyncio.Queue(10)
    q.put_nowait([("trades", trade_row(0, 0))])
    q.put_nowait(END)
    with pytest.raises(StoreError) as info:
        asyncio.run(writer.run(q))
    assert str(info.value).startswith(f"{db}: ") and "unable to open database file" in str(info.value)
    assert writer.pending_rows == 1


# ---- kill -9 of the parent ----------------------------------------------------------------------------
def test_kill_9_of_the_parent_keeps_committed_batches_and_leaves_no_child(tmp_path, capsys):
    tape = tmp_path / "day.jsonl.gz"
    assert main(["record", "--symbol", "AAPL,TSLA", "--duration", "120", "--seed", "5", "--out", str(tape)]) == 0
    settings = ["--set", "store.batch_rows=200", "--set", "store.batch_age_ms=10"]
    reference_db = tmp_path / "ref.db"
    assert main(["replay", str(tape), "--db", str(reference_db), *settings]) == 0
    reference = tables(reference_db)
    db = tmp_path / "killed.db"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "replay", str(tape), "--db", str(db), "--speed", "20", *settings,
         "--log-level", "debug", "--log-json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stderr is not None
    logged = 0
    for line in proc.stderr:
        if '"batch_committed"' in line:
            logged += json.loads(line)["rows"]
            if logged >= 500:
                break
    children = psutil.Process(proc.pid).children()
    writers = [child for child in children if any(MODULE in arg for arg in child.cmdline())]
    assert len(writers) == 1 and writers[0].is_running()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    _, left = psutil.wait_procs(children, timeout=60)  # each exits at EOF on its pipe
    assert left == []
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    stored = tables(db)
    assert sum(map(len, stored.values())) >= logged
    assert stored["trades"], "no trade committed before the kill"
    for table, rows in stored.items():
        column = TABLES[table].index("instrument_id")
        for iid in {row[column] for row in rows}:
            mine = [row for row in rows if row[column] == iid]
            theirs = [row for row in reference[table] if row[column] == iid]
            if table in ("trades", "book_samples", "feature_samples"):  # natural order = production order
                assert mine == theirs[:len(mine)], (table, iid)
            else:
                assert Counter(mine) <= Counter(theirs), (table, iid)


def test_a_script_without_a_main_guard_runs_a_pipeline_with_the_process_writer(tmp_path):
    """The child is a fresh interpreter, not multiprocessing's spawn: it does not import the caller's
    main script again, so a plain script (no ``if __name__ == "__main__"``) runs and stores its rows."""
    db = tmp_path / "u.db"
    script = tmp_path / "plain.py"
    script.write_text("from engine.app.cli import main\n"
                      f"print('exit', main(['run', '--symbol', 'AAPL', '--duration', '30', '--speed', 'max', "
                      f"'--db', {str(db)!r}, '--no-ml', '--no-progress', '--set', 'store.writer=process']))\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "exit 0" in done.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM trades").fetchone()[0] > 0, "no trade stored"
    conn.close()
