"""Where an optimiser study lives: optuna's journal (its append-only log of operations) in one SQLite file.

optuna's RDB storage writes every operation through SQLAlchemy's ORM: about 1 ms each, and a trial of
24 genes makes about 30 of them, so the main process spent 50 ms a trial asking and telling, serial work
that no number of workers shortens (measured in benchmarks/NOTES.md). ``JournalStorage`` keeps the study
in memory and appends each operation to its backend; the backend here is one SQLite table, so the study
is still one SQLite file, every operation is committed before optuna goes on (a crash loses nothing
already told), and readers replay the log. WAL mode with ``synchronous=NORMAL``: a commit survives the
process being killed; only a power loss may drop the last ones.

A file written by an earlier Chimera with optuna's RDB schema (a ``studies`` table) is opened with
``RDBStorage``, so its studies can still be resumed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable

import optuna
from optuna.storages.journal import BaseJournalBackend

TABLE = "optuna_journal"


class SQLiteJournal(BaseJournalBackend):
    """optuna's journal backend on one SQLite table: log number ``n`` is row ``n + 1``, appended in one
    transaction per call (rows are never deleted, so the numbers have no gaps)."""

    def __init__(self, path: str, timeout_s: float = 10.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (n INTEGER PRIMARY KEY, log TEXT NOT NULL)")

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, object]]:
        with self._lock:
            rows = self._db.execute(f"SELECT log FROM {TABLE} WHERE n > ? ORDER BY n", (log_number_from,)).fetchall()
        return [json.loads(text) for (text,) in rows]

    def append_logs(self, logs: list[dict[str, object]]) -> None:
        # stdlib json, not orjson: optuna's values may be inf or NaN, which orjson would write as null
        rows = [(json.dumps(log),) for log in logs]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(f"INSERT INTO {TABLE} (log) VALUES (?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _tables(path: str) -> set[str]:
    db = sqlite3.connect(path, timeout=10.0)
    try:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def storage(path: str) -> optuna.storages.BaseStorage:
    """The study file ``path``: a journal in SQLite (new files), or optuna's RDB schema for a file an
    earlier Chimera wrote."""
    if "studies" in _tables(path):
        return _rdb(path)
    return optuna.storages.JournalStorage(SQLiteJournal(path))


def _rdb(path: str) -> optuna.storages.RDBStorage:
    import sqlalchemy

    rdb = optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 10.0}})
    sqlalchemy.event.listen(rdb.engine, "connect", _pragmas)
    rdb.engine.dispose()  # connections opened before the listener are closed; new ones get the pragmas
    return rdb


def _pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
