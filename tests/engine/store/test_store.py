"""SQLite store: schema and migrations, run rows, batch writes, read helpers, and the async BatchWriter."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import Counter

import aiosqlite
import pytest

from engine import store
from engine.errors import ChimeraError
from engine.records import END, TABLES


def trade_row(iid: int, seq: int, ts: int | None = None) -> tuple:
    ts = seq * 10 if ts is None else ts
    return (iid, seq, ts, ts + 1, 100 + seq, 10, 1, seq, seq, 0)


def integrity_row(iid: int, counter: str, value: int) -> tuple:
    return (iid, "book", counter, value)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "chimera.db"
    conn = store.connect(path)
    yield path, conn
    conn.close()


# ---- schema -----------------------------------------------------------------------------------------
def test_connect_creates_every_table_and_index_and_sets_user_version(db):
    """A fresh file gets the runs table, one table per record table, their indexes and user_version."""
    path, conn = db
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"runs", "daemon_state", "models", *TABLES}
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {f"{t}_by_time" for t in TABLES} | {"runs_started"} <= indexes
    for table, columns in TABLES.items():
        names = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        assert names == ["run_id", *columns]
    again = sqlite3.connect(path)
    try:
        assert store.migrate(again) == store.SCHEMA_VERSION  # already migrated: nothing to do
    finally:
        again.close()


def test_migrate_reports_the_version_it_found(tmp_path):
    """migrate returns the version found before migrating (0 for a new file)."""
    conn = sqlite3.connect(tmp_path / "new.db")
    try:
        assert store.migrate(conn) == 0
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    finally:
        conn.close()


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path):
    """A database written by a newer Chimera is refused with an error naming the file and both versions."""
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={store.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ChimeraError) as info:
        store.connect(path)
    message = str(info.value)
    assert str(path) in message
    assert f"version {store.SCHEMA_VERSION + 1}" in message and f"({store.SCHEMA_VERSION})" in message


def test_connections_use_wal_and_a_busy_timeout(db, tmp_path):
    """Writers put the file in WAL mode with the busy timeout; read-only connections cannot write."""
    path, conn = db
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    other = store.connect(tmp_path / "other.db", busy_timeout_ms=1234)
    assert other.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    other.close()
    reader = store.connect(path, busy_timeout_ms=777, readonly=True)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert reader.execute("PRAGMA busy_timeout").fetchone()[0] == 777
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("INSERT INTO runs (run_id) VALUES ('x')")
    finally:
        reader.close()


# ---- runs and rows ----------------------------------------------------------------------------------
def test_start_and_finish_run_rows(db):
    """start_run inserts a 'running' row; finish_run sets status, finish time and summary."""
    _, conn = db
    store.start_run(conn, "r1", "demo", 7, "abc123", "zero_intelligence", "2024-01-01T00:00:00.000+00:00")
    row = conn.execute("SELECT run_id, command, started_at, finished_at, seed, config_hash, source, status, "
                       "summary FROM runs").fetchall()
    assert row == [("r1", "demo", "2024-01-01T00:00:00.000+00:00", None, 7, "abc123", "zero_intelligence",
                    "running", None)]
    store.finish_run(conn, "r1", "completed", "2024-01-01T00:01:00.000+00:00", '{"events": 3}')
    assert conn.execute("SELECT status, finished_at, summary FROM runs WHERE run_id = 'r1'").fetchone() == (
        "completed", "2024-01-01T00:01:00.000+00:00", '{"events": 3}')
    with pytest.raises(sqlite3.IntegrityError):
        store.start_run(conn, "r1", "demo", None, "", "", "")


def test_group_rows_groups_by_table_and_prepends_the_run_id():
    """group_rows keeps each table's rows in arrival order with the run id first."""
    grouped = store.group_rows("run", [("trades", (1, 2)), ("integrity", (3,)), ("trades", (4, 5))])
    assert grouped == {"trades": [("run", 1, 2), ("run", 4, 5)], "integrity": [("run", 3)]}


def test_write_records_and_read_back_in_natural_order(db):
    """write_records stores rows under the run id; fetch_rows returns them without it, in natural order."""
    _, conn = db
    rows = [trade_row(iid, seq) for iid in (1, 0) for seq in (3, 0, 2, 1)]
    records = [("trades", r) for r in rows] + [("integrity", integrity_row(0, "gaps", 0))]
    assert store.write_records(conn, "a", records) == 9
    assert store.write_records(conn, "b", [("trades", trade_row(5, 0))]) == 1
    assert conn.execute("SELECT DISTINCT run_id FROM trades ORDER BY run_id").fetchall() == [("a",), ("b",)]
    assert store.fetch_rows(conn, "trades", "a") == sorted(rows)
    assert store.fetch_rows(conn, "integrity", "a") == [integrity_row(0, "gaps", 0)]
    counts = store.table_counts(conn, "a")
    assert counts == {**dict.fromkeys(TABLES, 0), "trades": 8, "integrity": 1}
    assert store.table_counts(conn, "b")["trades"] == 1
    assert store.table_counts(conn, "nobody") == dict.fromkeys(TABLES, 0)


def test_write_records_is_one_transaction(db):
    """A failing row rolls back the whole batch, rows of other tables included."""
    _, conn = db
    records = [("trades", trade_row(0, 0)), ("integrity", (0, "book")), ("trades", trade_row(0, 1))]
    with pytest.raises(sqlite3.ProgrammingError):
        store.write_records(conn, "a", records)  # the integrity row lacks two columns
    assert store.table_counts(conn, "a") == dict.fromkeys(TABLES, 0)


def test_time_range_query_on_trades_uses_the_index(db):
    """The per-instrument time-range query on trades is an index search, not a table scan."""
    _, conn = db
    store.write_records(conn, "a", [("trades", trade_row(i % 3, i)) for i in range(300)])
    conn.execute("ANALYZE")
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT price, size FROM trades WHERE run_id = ? AND instrument_id = ? "
        "AND ts_recv BETWEEN ? AND ? ORDER BY ts_recv", ("a", 1, 100, 2000),
    ).fetchall()
    detail = " ".join(row[-1] for row in plan)
    assert "USING INDEX trades_by_time" in detail
    assert "ts_recv>? AND ts_recv<?" in detail
    assert "SCAN" not in detail and "TEMP B-TREE" not in detail


# ---- BatchWriter ------------------------------------------------------------------------------------
class Spy:
    """Records the writer's executemany/commit calls (patched onto aiosqlite.Connection)."""

    def __init__(self, monkeypatch, pause_in: str = "executemany") -> None:
        self.log: list[tuple] = []
        self.committed = asyncio.Event()
        self.entered = asyncio.Event()
        original_many, original_commit = aiosqlite.Connection.executemany, aiosqlite.Connection.commit
        spy = self

        async def executemany(conn, sql, rows):
            rows = list(rows)
            spy.log.append(("executemany", sql.split()[2], len(rows)))
            if pause_in == "executemany":
                spy.entered.set()
            return await original_many(conn, sql, rows)

        async def commit(conn):
            if pause_in == "commit":
                spy.entered.set()
            await original_commit(conn)
            spy.log.append(("commit",))
            spy.committed.set()

        monkeypatch.setattr(aiosqlite.Connection, "executemany", executemany)
        monkeypatch.setattr(aiosqlite.Connection, "commit", commit)

    def batches(self) -> list[dict[str, int]]:
        """Rows per table of each committed transaction, checking one executemany per table."""
        out, current = [], {}
        for entry in self.log:
            if entry[0] == "commit":
                out.append(current)
                current = {}
            else:
                assert entry[1] not in current, "two executemany calls for one table in one batch"
                current[entry[1]] = entry[2]
        assert current == {}, "statements left outside a committed transaction"
        return out

    async def wait_commits(self, n: int) -> None:
        while sum(1 for e in self.log if e[0] == "commit") < n:
            self.committed.clear()
            await asyncio.wait_for(self.committed.wait(), 30)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def handed_over(q: asyncio.Queue) -> None:
    """Yield until the writer has taken everything from the queue and acted on it."""
    while not q.empty():
        await asyncio.sleep(0)
    for _ in range(10):  # the writer resumes from its queue wait a few loop iterations later
        await asyncio.sleep(0)


def rows_in(path, table: str = "trades", run_id: str = "run") -> list[tuple]:
    conn = store.connect(path, readonly=True)
    try:
        return store.fetch_rows(conn, table, run_id)
    finally:
        conn.close()


@pytest.fixture
def schema(tmp_path):
    path = tmp_path / "w.db"
    store.connect(path).close()
    return path


async def test_writer_closes_batches_by_size(schema, monkeypatch):
    """With rows arriving one at a time, each batch_rows rows are one transaction, the rest at END."""
    spy = Spy(monkeypatch)
    writer = store.BatchWriter(schema, "run", batch_rows=3, batch_age_ms=60_000, monotonic=FakeClock())
    q: asyncio.Queue = asyncio.Queue(100)
    for seq in range(7):
        q.put_nowait([("trades", trade_row(0, seq))])
    q.put_nowait(END)
    await writer.run(q)
    assert spy.batches() == [{"trades": 3}, {"trades": 3}, {"trades": 1}]
    assert (writer.stats.rows, writer.stats.batches, writer.stats.max_batch) == (7, 3, 3)
    assert rows_in(schema) == [trade_row(0, seq) for seq in range(7)]


async def test_writer_closes_batches_by_age_of_their_first_row(schema, monkeypatch):
    """A batch closes once its oldest row is batch_age old (injected clock), whatever its size."""
    spy = Spy(monkeypatch)
    clock = FakeClock()
    writer = store.BatchWriter(schema, "run", batch_rows=1000, batch_age_ms=1000, monotonic=clock)
    q: asyncio.Queue = asyncio.Queue(1)

    async def put_at(t: float, seq: int) -> None:
        clock.t = t
        await q.put([("trades", trade_row(0, seq)), ("integrity", integrity_row(0, f"c{seq}", seq))])
        await handed_over(q)

    async with asyncio.TaskGroup() as group:
        task = group.create_task(writer.run(q))
        await put_at(0.0, 0)
        await put_at(0.5, 1)
        assert spy.log == []
        await put_at(1.0, 2)  # the batch opened at 0.0 is now 1 s old: rows 0-2 commit
        await spy.wait_commits(1)
        await put_at(1.2, 3)  # opens the next batch
        await put_at(2.1, 4)  # 0.9 s after the batch opened: still open
        await put_at(2.1, 5)
        await q.put(END)
        await task
    assert spy.batches() == [{"trades": 3, "integrity": 3}, {"trades": 3, "integrity": 3}]
    assert rows_in(schema) == [trade_row(0, seq) for seq in range(6)]
    assert len(rows_in(schema, "integrity")) == 6


async def test_writer_commits_an_idle_batch_once_it_is_old(schema, monkeypatch):
    """Without further rows, a pending batch is committed when its age passes, before END."""
    spy = Spy(monkeypatch)
    clock = FakeClock()
    writer = store.BatchWriter(schema, "run", batch_rows=1000, batch_age_ms=1, monotonic=clock)
    q: asyncio.Queue = asyncio.Queue(1)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(writer.run(q))
        await q.put([("trades", trade_row(0, 0))])
        await handed_over(q)
        clock.t = 1.0
        await spy.wait_commits(1)
        assert rows_in(schema) == [trade_row(0, 0)]
        await q.put(END)
        await task
    assert spy.batches() == [{"trades": 1}]


async def test_writer_never_drops_rows_with_many_producers_and_a_tiny_queue(schema, monkeypatch):
    """Twenty producers through a records queue of size 1: every row arrives exactly once."""
    spy = Spy(monkeypatch)
    writer = store.BatchWriter(schema, "run", batch_rows=7, batch_age_ms=60_000, monotonic=FakeClock())
    q: asyncio.Queue = asyncio.Queue(1)
    rng = random.Random(3)
    plans = [[rng.randint(1, 3) for _ in range(30)] for _ in range(20)]

    async def producer(p: int, sizes: list[int]) -> None:
        seq = 0
        for size in sizes:
            batch = []
            for _ in range(size):
                batch.append(("trades", trade_row(p, seq)))
                batch.append(("integrity", integrity_row(p, f"c{seq}", seq)))
                seq += 1
            await q.put(batch)
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as group:
        task = group.create_task(writer.run(q))
        await asyncio.gather(*(producer(p, sizes) for p, sizes in enumerate(plans)))
        await q.put(END)
        await task
    expected = [trade_row(p, seq) for p, sizes in enumerate(plans) for seq in range(sum(sizes))]
    assert rows_in(schema) == sorted(expected)
    assert Counter(rows_in(schema, "integrity")) == Counter(
        integrity_row(p, f"c{seq}", seq) for p, sizes in enumerate(plans) for seq in range(sum(sizes)))
    assert writer.stats.rows == 2 * len(expected)
    batches = spy.batches()
    assert len(batches) == writer.stats.batches > 1
    assert sum(sum(b.values()) for b in batches) == writer.stats.rows


async def test_writer_commits_pending_and_queued_rows_when_cancelled(schema, monkeypatch):
    """Cancelling the writer keeps the rows it had taken and the rows still queued, each exactly once."""
    writer = store.BatchWriter(schema, "run", batch_rows=1000, batch_age_ms=60_000, monotonic=FakeClock())
    q: asyncio.Queue = asyncio.Queue(10)
    task = asyncio.ensure_future(writer.run(q))
    for seq in range(5):
        await q.put([("trades", trade_row(0, seq))])
    await handed_over(q)
    q.put_nowait([("trades", trade_row(0, 5)), ("trades", trade_row(0, 6))])  # handed over, not yet taken
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rows_in(schema) == [trade_row(0, seq) for seq in range(7)]
    assert writer.stats.rows == 7


@pytest.mark.parametrize("where", ["executemany", "commit"])
async def test_writer_cancelled_inside_a_batch_transaction_keeps_every_row_once(schema, monkeypatch, where):
    """A cancellation landing while a batch is written (statements or COMMIT) neither loses nor duplicates rows."""
    spy = Spy(monkeypatch, pause_in=where)
    writer = store.BatchWriter(schema, "run", batch_rows=2, batch_age_ms=60_000, monotonic=FakeClock())
    q: asyncio.Queue = asyncio.Queue(10)
    task = asyncio.ensure_future(writer.run(q))
    q.put_nowait([("trades", trade_row(0, 0)), ("integrity", integrity_row(0, "a", 1))])
    q.put_nowait([("trades", trade_row(0, 1))])
    await spy.entered.wait()  # the writer is inside its batch transaction
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rows_in(schema) == [trade_row(0, 0), trade_row(0, 1)]
    assert rows_in(schema, "integrity") == [integrity_row(0, "a", 1)]
    assert writer.stats.rows == 3
