"""The persistence task: one batching writer per run.

Invariants:
- rows arrive as ``(table, row)`` records without the run id (engine/records.py); the writer
  prepends it; a batch is closed by size or by age and written in ONE transaction with one
  ``executemany`` per table;
- nothing is dropped: the records queue is bounded, so a slow disk slows the producers; the last
  batch is committed at end of stream, and also when the run is cancelled or fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from engine.records import END
from engine.store.queries import group_rows, write_records
from engine.store.schema import INSERTS, connect, pragmas


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
            for pragma in pragmas(self.busy_timeout_ms):
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
