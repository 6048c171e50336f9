"""SQLite persistence: schema with ``PRAGMA user_version`` migrations, one batching writer task,
read helpers for the CLI and tests.

Invariants:
- WAL mode and ``busy_timeout`` on every connection; one writer (the persistence task), readers
  open their own connections;
- rows arrive as ``(table, row)`` records without the run id (engine/records.py); the writer
  prepends it; a batch is closed by size or by age and written in ONE transaction with one
  ``executemany`` per table;
- nothing is dropped: the records queue is bounded, so a slow disk slows the producers; the last
  batch is committed at end of stream, and also when the run is cancelled or fails;
- parameterised SQL only; table and column names come from the fixed vocabulary, never from input.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import aiosqlite

from engine.errors import ChimeraError
from engine.records import TABLES
from engine.stages import END

SCHEMA_VERSION = 1

_COLUMN_TYPES = {
    "symbol": "TEXT", "venue": "TEXT", "tick_size": "TEXT", "multiplier": "TEXT", "currency": "TEXT",
    "profile": "TEXT", "bid_px": "TEXT", "bid_sz": "TEXT", "ask_px": "TEXT", "ask_sz": "TEXT",
    "features": "TEXT", "signal_id": "TEXT", "strategy": "TEXT", "score_mode": "TEXT", "decision": "TEXT",
    "reason": "TEXT", "client_id": "TEXT", "tif": "TEXT", "status": "TEXT", "params": "TEXT",
    "stage": "TEXT", "counter": "TEXT", "score": "REAL", "probability": "REAL", "fee": "REAL",
    "cash": "REAL", "realized": "REAL", "unrealized": "REAL", "equity": "REAL",
}

# Indexes for every query the CLI, reports and benchmarks make (all filter by run first).
_INDEXES = {
    "trades": ("run_id", "instrument_id", "ts_recv"),
    "book_samples": ("run_id", "instrument_id", "ts_recv"),
    "feature_samples": ("run_id", "instrument_id", "ts_recv"),
    "signals": ("run_id", "instrument_id", "ts_recv"),
    "orders": ("run_id", "instrument_id", "ts_local"),
    "fills": ("run_id", "instrument_id", "ts_exchange"),
    "equity": ("run_id", "ts"),
    "truth_labels": ("run_id", "instrument_id", "t_start"),
    "integrity": ("run_id", "instrument_id"),
    "instruments": ("run_id", "instrument_id"),
}

# Natural order of each table, used to compare runs row by row.
NATURAL_ORDER = {
    "instruments": "instrument_id",
    "trades": "instrument_id, seq",
    "book_samples": "instrument_id, seq",
    "feature_samples": "instrument_id, seq",
    "signals": "signal_id",
    "orders": "client_id",
    "fills": "client_id, fill_no",
    "equity": "ts, instrument_id, position, cash",
    "truth_labels": "instrument_id, seq",
    "integrity": "instrument_id, stage, counter",
}


def _create_table(table: str, columns: tuple[str, ...]) -> str:
    cols = ", ".join(f"{c} {_COLUMN_TYPES.get(c, 'INTEGER')}" for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (run_id TEXT NOT NULL, {cols})"


def _migration_1() -> list[str]:
    statements = [
        "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, command TEXT, started_at TEXT, "
        "finished_at TEXT, seed INTEGER, config_hash TEXT, source TEXT, status TEXT, summary TEXT)",
        "CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)",
    ]
    for table, columns in TABLES.items():
        statements.append(_create_table(table, columns))
        index_cols = _INDEXES[table]
        statements.append(f"CREATE INDEX IF NOT EXISTS {table}_by_time ON {table} ({', '.join(index_cols)})")
    return statements


MIGRATIONS: list[Callable[[], list[str]]] = [_migration_1]

INSERTS = {
    table: f"INSERT INTO {table} (run_id, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 1))})"
    for table, cols in TABLES.items()
}


def _pragmas(busy_timeout_ms: int) -> list[str]:
    return [
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
        "PRAGMA foreign_keys=ON",
    ]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; return the version found before."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise ChimeraError(
            f"database schema version {found} is newer than this Chimera ({SCHEMA_VERSION}); "
            "use a newer Chimera or another database file"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with conn:
            for statement in MIGRATIONS[version - 1]():
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
    return found


def connect(path: str | Path, busy_timeout_ms: int = 5000, readonly: bool = False) -> sqlite3.Connection:
    """Open a synchronous connection (WAL, busy timeout); writers also migrate the schema."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        return conn
    conn = sqlite3.connect(path)
    try:
        for pragma in _pragmas(busy_timeout_ms):
            conn.execute(pragma)
        migrate(conn)
    except ChimeraError as exc:
        conn.close()
        raise ChimeraError(f"{path}: {exc}") from None
    return conn


def group_rows(run_id: str, records: Iterable[tuple[str, tuple]]) -> dict[str, list[tuple]]:
    """Group records by table, prepending the run id to each row."""
    grouped: dict[str, list[tuple]] = {}
    for table, row in records:
        rows = grouped.get(table)
        if rows is None:
            rows = grouped[table] = []
        rows.append((run_id, *row))
    return grouped


def write_records(conn: sqlite3.Connection, run_id: str, records: Iterable[tuple[str, tuple]]) -> int:
    """Synchronous batch write (reference path, importers): one transaction, executemany per table."""
    grouped = group_rows(run_id, records)
    with conn:
        for table, rows in grouped.items():
            conn.executemany(INSERTS[table], rows)
    return sum(len(rows) for rows in grouped.values())


def start_run(conn: sqlite3.Connection, run_id: str, command: str, seed: int | None, config_hash: str,
              source: str, started_at: str) -> None:
    with conn:
        conn.execute(
            "INSERT INTO runs (run_id, command, started_at, seed, config_hash, source, status) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running')",
            (run_id, command, started_at, seed, config_hash, source),
        )


def finish_run(conn: sqlite3.Connection, run_id: str, status: str, finished_at: str, summary: str) -> None:
    with conn:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE run_id = ?",
            (status, finished_at, summary, run_id),
        )


def table_counts(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """Rows per table for one run (uses the run-prefixed indexes)."""
    return {
        table: conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
        for table in TABLES
    }


def fetch_rows(conn: sqlite3.Connection, table: str, run_id: str) -> list[tuple]:
    """Every row of one run's table without the run id, in the table's natural order."""
    cols = ", ".join(TABLES[table])
    sql = f"SELECT {cols} FROM {table} WHERE run_id = ? ORDER BY {NATURAL_ORDER[table]}"
    return conn.execute(sql, (run_id,)).fetchall()


class WriterStats:
    __slots__ = ("rows", "batches", "max_batch")

    def __init__(self) -> None:
        self.rows = 0
        self.batches = 0
        self.max_batch = 0


class BatchWriter:
    """The persistence task: drains the records queue into SQLite in size- or age-closed batches."""

    def __init__(self, path: str | Path, run_id: str, batch_rows: int, batch_age_ms: int,
                 busy_timeout_ms: int = 5000, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = str(path)
        self.run_id = run_id
        self.batch_rows = batch_rows
        self.batch_age = batch_age_ms / 1000.0
        self.busy_timeout_ms = busy_timeout_ms
        self.monotonic = monotonic
        self.stats = WriterStats()
        self._pending: list[list[tuple[str, tuple]]] = []
        self._count = 0
        self._committing: asyncio.Future | None = None

    async def run(self, records_q: asyncio.Queue) -> None:
        """Consume until END and commit the last batch.

        When the run is cancelled or fails (at any point, even while connecting), every row already
        handed over, queued or pending, is written synchronously before the task ends.
        """
        conn = None
        try:
            conn = await aiosqlite.connect(self.path)
            for pragma in _pragmas(self.busy_timeout_ms):
                await conn.execute(pragma)
            await self._loop(conn, records_q)
            if self._count:
                await self._commit(conn)
        finally:
            if self._committing is not None:  # cancelled while a COMMIT was on its way
                await asyncio.wait([self._committing])
                if not self._committing.cancelled() and self._committing.exception() is None:
                    self._committed()
            if conn is not None:
                await asyncio.shield(conn.close())  # rolls back a batch interrupted mid-commit
            self._drain(records_q)
            if self._count:
                self._commit_sync()

    def _drain(self, records_q: asyncio.Queue) -> None:
        """Take every row producers already handed over (used on cancellation and failure)."""
        while True:
            try:
                item = records_q.get_nowait()
            except asyncio.QueueEmpty:
                return
            if item is not END:
                self._pending.append(item)
                self._count += len(item)

    def _commit_sync(self) -> None:
        conn = connect(self.path, self.busy_timeout_ms)
        try:
            write_records(conn, self.run_id, (rec for batch in self._pending for rec in batch))
        finally:
            conn.close()
        self._account(self._count)
        self._pending, self._count = [], 0

    def _account(self, count: int) -> None:
        self.stats.rows += count
        self.stats.batches += 1
        self.stats.max_batch = max(self.stats.max_batch, count)

    async def _loop(self, conn: aiosqlite.Connection, records_q: asyncio.Queue) -> None:
        opened = 0.0
        while True:
            if self._count and (self._count >= self.batch_rows or self.monotonic() - opened >= self.batch_age):
                await self._commit(conn)
            try:
                item = records_q.get_nowait()
            except asyncio.QueueEmpty:
                if self._count:
                    remaining = max(0.0, opened + self.batch_age - self.monotonic())
                    try:  # not wait_for: on 3.11 it can swallow a cancellation that races a put
                        async with asyncio.timeout(remaining):
                            item = await records_q.get()
                    except TimeoutError:
                        continue
                else:
                    item = await records_q.get()
            if item is END:
                return
            if not self._count:
                opened = self.monotonic()
            self._pending.append(item)
            self._count += len(item)

    async def _commit(self, conn: aiosqlite.Connection) -> None:
        """One transaction for everything pending; pending rows are released only once committed."""
        grouped = group_rows(self.run_id, (rec for batch in self._pending for rec in batch))
        for table, rows in grouped.items():
            await conn.executemany(INSERTS[table], rows)
        # A COMMIT once sent completes even if we are cancelled meanwhile; ``run`` awaits it before
        # writing what is still pending, so a batch is never written twice.
        self._committing = asyncio.ensure_future(conn.commit())
        await asyncio.shield(self._committing)
        self._committed()

    def _committed(self) -> None:
        self._committing = None
        self._account(self._count)
        self._pending, self._count = [], 0
