"""The writer's SQLite work in a child process: one message per batch, one transaction per message.

Invariants:
- the child owns the run's only write connection (``pragmas`` as every writer) and writes each
  message, a whole batch as the producers handed it over, in ONE transaction: ``group_rows`` (the run
  id is prepended here, off the parent's main thread), one ``executemany`` per table, the heartbeat,
  COMMIT; it replies ``("ok", rows, seconds)`` or ``("error", SQLite's text)`` after a rollback;
- the parent sends one MessagePack message per batch (msgspec: plain data only, nothing a
  decoder could execute) and awaits the reply on its event loop (a reader on
  the pipe), so rows stay pending in the parent until the child has said they are committed; if the
  child ends after a batch was sent and before its reply, the run's row count in the file (known at
  the child's start, plus every confirmed batch) says whether that batch was committed;
- the child is a fresh interpreter running ``main`` below (``python -c CHILD``) that inherits the two
  pipes' ends (never a fork of the parent, which has threads; and, unlike multiprocessing's spawn, it
  does not import the parent's main script again, so a script without an ``if __name__ ==
  "__main__"`` guard runs a pipeline as well), in a session of its own, so a terminal's Ctrl-C does
  not reach it; it ignores SIGINT and SIGTERM (a service manager's stop may signal every process of
  the service: the parent drains and commits through the child, then closes the pipe) and exits at
  EOF on its pipe, which is also what it sees when the parent dies, so no child outlives its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from itertools import chain
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec

from engine.errors import StoreError
from engine.store.queries import group_rows, table_counts
from engine.store.runs import HEARTBEAT_SQL
from engine.store.schema import INSERTS, connect, pragmas

_ENCODE = msgspec.msgpack.Encoder().encode  # rows are ints, floats, strings, bools and None
_DECODE = msgspec.msgpack.Decoder().decode  # tuples come back as lists, which SQLite binds alike
_CLOSE_WAIT_S = 10.0  # how long a closing parent waits for the child to exit before killing it
MODULE = "engine.store.writer_process"
CHILD = f"import sys; from {MODULE} import main; main(sys.argv[1:])"  # python -c CHILD INBOX REPLY PATH RUN BUSY
_ROOT = Path(__file__).resolve().parents[2]  # where ``engine`` is importable from (for the child's sys.path)


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
            batches, heartbeat = _DECODE(message)
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
        conn.send_bytes(_ENCODE(reply))
    except OSError:  # the parent is gone
        return False
    return True


class ProcessSink:
    """The parent's side: a child process that commits whole batches sent over a pipe."""

    def __init__(self, path: str, run_id: str, process: subprocess.Popen, outbox: Connection,
                 conn: Connection) -> None:
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
        inbox, outbox = os.pipe()
        replies, reply_end = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(inbox), str(reply_end), str(path), run_id, str(busy_timeout_ms)],
                pass_fds=(inbox, reply_end), stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        finally:
            os.close(inbox)  # the parent keeps only its ends: a dead child reads as EOF, a dead parent too
            os.close(reply_end)
        sink = cls(str(path), run_id, process, Connection(outbox, readable=False), Connection(replies, writable=False))
        try:
            sink.stored = (await sink.reply())[1]
        except BaseException:
            await asyncio.shield(sink.close())
            raise
        return sink

    async def write(self, batches: list, heartbeat: tuple | None) -> float:
        """Send one batch (the producers' lists as they are, encoded once) and await its commit.

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
        message = _ENCODE((batches, heartbeat))
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
        reply = _DECODE(data)
        if reply[0] == "error":
            raise sqlite3.OperationalError(reply[1])
        return reply

    def _gone(self) -> WriterGone:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(1.0)
        code = self.process.returncode
        state = "is not responding" if code is None else f"ended (exit code {code})"
        return WriterGone(f"the SQLite writer process {state} before confirming the batch")

    async def close(self) -> None:
        """Close the pipe (the child exits at EOF) and wait for the child without blocking the loop."""
        for end in (self.outbox, self.conn):
            if not end.closed:
                end.close()
        deadline = time.monotonic() + _CLOSE_WAIT_S
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def main(argv: list[str]) -> None:
    """The child's entry: ``INBOX_FD REPLY_FD PATH RUN_ID BUSY_TIMEOUT_MS``."""
    inbox, reply, path, run_id, busy = argv
    serve(Connection(int(inbox), writable=False), Connection(int(reply), readable=False), path, run_id, int(busy))

