"""The writer's SQLite work in a child process: one message per batch, one transaction per message.

Invariants:
- the child owns the run's only write connection (``pragmas`` as every writer) and writes each
  message, a whole batch as the producers handed it over, in ONE transaction: ``group_rows`` (the run
  id is prepended here, off the parent's main thread), one ``executemany`` per table, the heartbeat,
  COMMIT; it replies ``("ok", rows, seconds)`` or ``("error", SQLite's text)`` after a rollback;
- the parent sends one pickled message per batch and awaits the reply on its event loop (a reader on
  the pipe), so rows stay pending in the parent until the child has said they are committed; if the
  child ends after a batch was sent and before its reply, the run's row count in the file (known at
  the child's start, plus every confirmed batch) says whether that batch was committed;
- the child is started with the ``spawn`` context (the parent has threads), ignores SIGINT and SIGTERM
  (a terminal's Ctrl-C or a service manager's stop reach the whole process group: the parent drains
  and commits through the child, then closes the pipe) and exits at EOF on its pipe, which is also
  what it sees when the parent dies, so no child outlives its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import signal
import sqlite3
import time
from itertools import chain
from multiprocessing.connection import Connection
from pathlib import Path

from engine.errors import StoreError
from engine.store.queries import group_rows, table_counts
from engine.store.runs import HEARTBEAT_SQL
from engine.store.schema import INSERTS, connect, pragmas

_CLOSE_WAIT_S = 10.0  # how long a closing parent waits for the child to exit before killing it


class WriterGone(Exception):
    """The writer process ended or its pipe broke before replying."""


def serve(inbox: Connection, conn: Connection, path: str, run_id: str, busy_timeout_ms: int) -> None:
    """The child's loop: connect, reply ready (or the error) on ``conn``, then one transaction per
    message read from ``inbox`` until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        db = sqlite3.connect(path)
    except sqlite3.Error as exc:
        _reply(conn, ("error", str(exc)))
        return
    try:
        for pragma in pragmas(busy_timeout_ms):
            db.execute(pragma)
        stored = sum(table_counts(db, run_id).values())
    except sqlite3.Error as exc:
        db.close()
        _reply(conn, ("error", str(exc)))
        return
    try:
        if not _reply(conn, ("ready", stored)):
            return
        while True:
            try:
                message = inbox.recv_bytes()
            except (EOFError, OSError):
                return
            batches, heartbeat = pickle.loads(message)
            if not _reply(conn, _transaction(db, run_id, batches, heartbeat)):
                return
    finally:
        db.close()


def _transaction(db: sqlite3.Connection, run_id: str, batches: list, heartbeat: tuple | None) -> tuple:
    started = time.perf_counter()
    try:
        grouped = group_rows(run_id, chain.from_iterable(batches))
        for table, rows in grouped.items():
            db.executemany(INSERTS[table], rows)
        if heartbeat is not None:
            db.execute(HEARTBEAT_SQL, heartbeat)
        db.commit()
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            db.rollback()
        return ("error", str(exc))
    return ("ok", sum(len(rows) for rows in grouped.values()), time.perf_counter() - started)


def _reply(conn: Connection, reply: tuple) -> bool:
    try:
        conn.send_bytes(pickle.dumps(reply))
    except OSError:  # the parent is gone
        return False
    return True


class ProcessSink:
    """The parent's side: a spawned child that commits whole batches sent over a pipe."""

    def __init__(self, path: str, run_id: str, process: multiprocessing.process.BaseProcess,
                 outbox: Connection, conn: Connection) -> None:
        """``outbox``: the batches' pipe, left blocking (the child is waiting for the next message when
        one is sent); ``conn``: the replies' pipe, which the event loop watches (and makes non-blocking)."""
        self.path = path
        self.run_id = run_id
        self.process = process
        self.outbox = outbox
        self.conn = conn
        self.stored = 0  # the run's rows in the file: when the child started, plus every confirmed batch

    @classmethod
    async def open(cls, path: str | Path, run_id: str, busy_timeout_ms: int) -> ProcessSink:
        """Start the child and wait until it has connected.

        Raises:
            sqlite3.OperationalError: the child could not open or configure the file (SQLite's text).
            WriterGone: the child ended before replying.
        """
        context = multiprocessing.get_context("spawn")
        inbox, outbox = context.Pipe(duplex=False)
        replies, reply_end = context.Pipe(duplex=False)
        process = context.Process(target=serve, args=(inbox, reply_end, str(path), run_id, busy_timeout_ms),
                                  name="chimera-sqlite-writer", daemon=True)
        process.start()
        inbox.close()  # the parent keeps only its ends: a dead child reads as EOF, a dead parent too
        reply_end.close()
        sink = cls(str(path), run_id, process, outbox, replies)
        try:
            sink.stored = (await sink.reply())[1]
        except BaseException:
            await asyncio.shield(sink.close())
            raise
        return sink

    async def write(self, batches: list, heartbeat: tuple | None) -> float:
        """Send one batch (the producers' lists as they are, pickled once) and await its commit.

        Returns the child's seconds inside the transaction. When the child ends after the batch was sent
        and before its reply, the file says whether the batch was committed (the run's row count).

        Raises:
            sqlite3.OperationalError: SQLite refused the batch (rolled back in the child).
            WriterGone: the child ended and the batch is not in the file.
        """
        rows = sum(len(batch) for batch in batches)
        self._send(batches, heartbeat)
        try:
            reply = await self.reply()
        except WriterGone:
            if rows and self.committed_before_ending(rows):
                self.stored += rows
                return 0.0  # the next batch finds the pipe closed
            raise
        self.stored += rows
        return float(reply[2])

    def committed_before_ending(self, rows: int) -> bool:
        """Whether the batch of ``rows`` rows in flight when the child ended is in the file: the run's row
        count is then the confirmed count plus ``rows`` (one writer per run, so nothing else adds rows)."""
        try:
            db = connect(self.path, readonly=True)
        except StoreError:
            return False
        try:
            return sum(table_counts(db, self.run_id).values()) == self.stored + rows
        except sqlite3.Error:
            return False
        finally:
            db.close()

    def _send(self, batches: list, heartbeat: tuple | None) -> None:
        message = pickle.dumps((batches, heartbeat), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.outbox.send_bytes(message)
        except OSError:
            raise self._gone() from None

    async def reply(self) -> tuple:
        """The child's next reply, awaited on the event loop (a reader on the pipe)."""
        loop = asyncio.get_running_loop()
        arrived: asyncio.Future[bytes] = loop.create_future()
        fd = self.conn.fileno()

        def readable() -> None:
            loop.remove_reader(fd)
            if arrived.done():
                return
            try:  # replies are a few bytes written at once: the whole message is there
                arrived.set_result(self.conn.recv_bytes())
            except (EOFError, OSError):
                arrived.set_exception(self._gone())

        loop.add_reader(fd, readable)
        try:
            data = await arrived
        finally:
            loop.remove_reader(fd)
        reply = pickle.loads(data)
        if reply[0] == "error":
            raise sqlite3.OperationalError(reply[1])
        return reply

    def _gone(self) -> WriterGone:
        self.process.join(1.0)
        code = self.process.exitcode
        state = "is not responding" if code is None else f"ended (exit code {code})"
        return WriterGone(f"the SQLite writer process {state} before confirming the batch")

    async def close(self) -> None:
        """Close the pipe (the child exits at EOF) and wait for the child without blocking the loop."""
        for end in (self.outbox, self.conn):
            if not end.closed:
                end.close()
        deadline = time.monotonic() + _CLOSE_WAIT_S
        while self.process.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
