"""The persistence task: one batching writer per run.

Invariants:
- rows arrive as ``(table, row)`` records without the run id (engine/records.py); the writer
  prepends it; a batch is closed by size or by age and written in ONE transaction with one
  ``executemany`` per table, together with the run's heartbeat;
- nothing is dropped: the records queue is bounded, so a slow disk slows the producers; the last
  batch is committed at end of stream, and also when the run is cancelled or fails;
- when SQLite refuses a write (locked longer than ``busy_timeout``, disk full, I/O error) the writer
  raises ``StoreError`` and keeps every row it had accepted: ``flush_pending`` writes them once the
  database accepts writes again;
- on ``--resume`` the writer skips, per ``(table, instrument)``, the rows the interrupted run had
  already committed (``CommittedPrefix``): the cores are deterministic, so what they produce again
  is the same sequence, and a committed batch is always a prefix of it;
- where the SQLite work runs is the ``writer`` mode: ``"process"`` (the pipeline's default,
  ``[store] writer``) sends each whole batch to a child process that owns the write connection
  (engine/store/writer_process.py), so rows are bound and inserted outside this process (the event
  loop's thread encodes each batch once); ``"thread"`` writes through aiosqlite, a thread of this
  process. The batching, the
  resume skip and the pending rows stay on the event loop's side in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Literal

import aiosqlite

from engine.errors import StoreError
from engine.logs import get_logger
from engine.records import END
from engine.store.queries import CommittedPrefix, group_rows, write_records
from engine.store.runs import HEARTBEAT_SQL, now_iso
from engine.store.schema import INSERTS, connect, pragmas
from engine.store.writer_process import ProcessSink, WriterGone

WriterMode = Literal["process", "thread"]


class WriterStats:
    __slots__ = ("rows", "batches", "max_batch")

    def __init__(self) -> None:
        self.rows = 0
        self.batches = 0
        self.max_batch = 0


class ThreadSink:
    """aiosqlite: the writes run in a thread of this process (the ``"thread"`` writer mode)."""

    def __init__(self, conn: aiosqlite.Connection, run_id: str) -> None:
        self.conn = conn
        self.run_id = run_id

    @classmethod
    async def open(cls, path: str, run_id: str, busy_timeout_ms: int) -> ThreadSink:
        conn = await aiosqlite.connect(path)
        try:
            for pragma in pragmas(busy_timeout_ms):
                await conn.execute(pragma)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, run_id)

    async def write(self, batches: list, heartbeat: tuple | None) -> float:
        started = time.perf_counter()
        grouped = group_rows(self.run_id, chain.from_iterable(batches))
        for table, rows in grouped.items():
            await self.conn.executemany(INSERTS[table], rows)
        if heartbeat is not None:
            await self.conn.execute(HEARTBEAT_SQL, heartbeat)
        await self.conn.commit()
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.conn.close()  # rolls back a batch interrupted mid-commit


Sink = ThreadSink | ProcessSink


class BatchWriter:
    """The persistence task: drains the records queue into SQLite in size- or age-closed batches."""

    def __init__(self, path: str | Path, run_id: str, batch_rows: int, batch_age_ms: int,
                 busy_timeout_ms: int = 5000, monotonic: Callable[[], float] = time.monotonic,
                 progress: Callable[[], int] | None = None, heartbeat_s: float = 5.0,
                 skip: CommittedPrefix | None = None, mode: WriterMode = "thread") -> None:
        """``progress`` (events so far) turns on the run heartbeat, also written every ``heartbeat_s``
        when idle; ``skip`` holds what an interrupted run already committed; ``mode`` is where the
        SQLite work runs (the pipeline passes ``[store] writer``, whose default is ``"process"``)."""
        self.path = str(path)
        self.run_id = run_id
        self.batch_rows = batch_rows
        self.batch_age = batch_age_ms / 1000.0
        self.busy_timeout_ms = busy_timeout_ms
        self.monotonic = monotonic
        self.mode = mode
        self.stats = WriterStats()
        self._pending: list[list[tuple[str, tuple]]] = []
        self._count = 0
        self._committing: asyncio.Future | None = None
        self.progress = progress
        self.heartbeat_s = heartbeat_s
        self.skip = skip
        self.error: StoreError | None = None
        self.on_commit: Callable[[int, float], None] | None = None  # (rows, wall seconds) after each commit

    @property
    def pending_rows(self) -> int:
        """Rows accepted but not committed (non-zero only after a store failure)."""
        return self._count

    async def run(self, records_q: asyncio.Queue) -> None:
        """Consume until END and commit the last batch.

        When the run is cancelled or fails (at any point, even while connecting), every row already
        handed over, queued or pending, is written synchronously before the task ends; if SQLite
        refuses that too, the rows stay pending for ``flush_pending``.

        Raises:
            StoreError: SQLite refused a write, or the writer process ended before confirming a batch
                (its rows stay pending); the message names the file and the reason.
        """
        sink = None
        try:
            sink = await self._open()
            await self._loop(sink, records_q)
            if self._count:
                await self._commit(sink)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        except WriterGone as exc:
            self.error = StoreError(f"{self.path}: {exc}")
            raise self.error from None
        finally:
            if self._committing is not None:  # cancelled while a transaction was on its way
                await asyncio.wait([self._committing])
                if not self._committing.cancelled() and self._committing.exception() is None:
                    self._committed()
            if sink is not None:
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(sink.close())
            self._drain(records_q)
            if self._count and self.error is None:
                with contextlib.suppress(StoreError):
                    self.flush_pending()

    async def _open(self) -> Sink:
        """Connect and configure; a cancellation waits for the connection (thread or process) and
        closes it, so nothing reports to a closed event loop and no child is left behind."""
        opening = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                sink = await opening
                await sink.close()
            raise

    async def _connect(self) -> Sink:
        if self.mode == "process":
            return await ProcessSink.open(self.path, self.run_id, self.busy_timeout_ms)
        return await ThreadSink.open(self.path, self.run_id, self.busy_timeout_ms)

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        hint = f" (another process held a write lock longer than busy_timeout {self.busy_timeout_ms} ms)" \
            if "locked" in str(exc) else ""
        self.error = StoreError(f"{self.path}: {exc}{hint}")
        return self.error

    def flush_pending(self) -> int:
        """Write every accepted, uncommitted row in one transaction; return how many.

        Raises:
            StoreError: SQLite still refuses the write (the rows stay pending).
        """
        if not self._count:
            return 0
        count = self._count
        conn = connect(self.path, self.busy_timeout_ms)
        try:
            write_records(conn, self.run_id, (rec for batch in self._pending for rec in batch))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        finally:
            conn.close()
        self._account(count)
        self._pending, self._count = [], 0
        return count

    def _drain(self, records_q: asyncio.Queue) -> None:
        """Take every row producers already handed over (used on cancellation and failure)."""
        while True:
            try:
                item = records_q.get_nowait()
            except asyncio.QueueEmpty:
                return
            if item is not END:
                self._accept(item)

    def _accept(self, item: list) -> None:
        if self.skip is not None:
            item = self.skip.drop_committed(item)
        self._pending.append(item)
        self._count += len(item)

    def _account(self, count: int) -> None:
        self.stats.rows += count
        self.stats.batches += 1
        self.stats.max_batch = max(self.stats.max_batch, count)

    async def _loop(self, sink: Sink, records_q: asyncio.Queue) -> None:
        opened = 0.0
        while True:
            if self._count and (self._count >= self.batch_rows or self.monotonic() - opened >= self.batch_age):
                await self._commit(sink)
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
                    item = await self._idle_get(sink, records_q)
            if item is END:
                return
            if not self._count:
                opened = self.monotonic()
            self._accept(item)

    async def _idle_get(self, sink: Sink, records_q: asyncio.Queue):
        """Wait for rows; with a heartbeat, record it every ``heartbeat_s`` while nothing arrives."""
        if self.progress is None:
            return await records_q.get()
        while True:
            try:
                async with asyncio.timeout(self.heartbeat_s):
                    return await records_q.get()
            except TimeoutError:
                await sink.write([], (now_iso(), self.progress(), self.run_id))

    async def _commit(self, sink: Sink) -> None:
        """One transaction for everything pending; pending rows are released only once committed.

        The whole transaction (inserts and COMMIT, or the round trip to the writer process) runs as one
        shielded task: a cancellation that arrives meanwhile waits for it in ``run`` instead of
        abandoning a half-sent transaction whose statements would keep the file's write lock after the
        connection is closed.
        """
        started = time.perf_counter()
        heartbeat = (now_iso(), self.progress(), self.run_id) if self.progress is not None else None
        self._committing = asyncio.ensure_future(sink.write(self._pending, heartbeat))
        await asyncio.shield(self._committing)
        if self.on_commit is not None:
            self.on_commit(self._count, time.perf_counter() - started)
        self._committed()

    def _committed(self) -> None:
        self._committing = None
        self._account(self._count)
        get_logger().debug("batch_committed", batch=self.stats.batches, rows=self._count)
        self._pending, self._count = [], 0
