"""The ``runs`` table: one row per run, its status, why it stopped, and whether its process lives.

Statuses: ``running`` while a process owns the run; then ``completed`` (end of data or
``--duration``), ``stopped`` (SIGINT/SIGTERM: drained and committed), ``cancelled`` (a second
signal), ``failed`` (an error; ``stop_reason`` holds it) or ``interrupted`` (the process died: found
when the database is next opened, because the owning process — ``pid`` on ``host``, started at
``process_started`` — no longer exists, or, for a run owned by another host, because its heartbeat
is older than ``STALE_HEARTBEAT_S``).
"""

from __future__ import annotations

import socket
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil

FINAL_STATUSES = ("completed", "stopped", "cancelled", "failed", "interrupted")
RESUMABLE_STATUSES = ("stopped", "cancelled", "failed", "interrupted")
STALE_HEARTBEAT_S = 120.0


@dataclass(frozen=True)
class RunOwner:
    """The process that owns a running run."""

    pid: int
    host: str
    started: float  # the process's creation time (psutil), which tells a reused pid apart

    @classmethod
    def current(cls) -> RunOwner:
        return cls(psutil.Process().pid, socket.gethostname(), psutil.Process().create_time())

    def alive(self) -> bool:
        """Whether the owning process still runs (only answerable on its own host)."""
        try:
            process = psutil.Process(self.pid)
            return process.status() != psutil.STATUS_ZOMBIE and abs(process.create_time() - self.started) < 1.0
        except psutil.Error:
            return False


@dataclass(frozen=True)
class RunRow:
    run_id: str
    command: str
    status: str
    started_at: str
    finished_at: str | None
    stop_reason: str | None
    events: int | None
    seed: int | None
    config_hash: str
    source: str
    params: str | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def start_run(conn: sqlite3.Connection, run_id: str, command: str, seed: int | None, config_hash: str,
              source: str, started_at: str, params: str = "{}", owner: RunOwner | None = None) -> None:
    """Insert the run row as ``running``, owned by this process."""
    owner = owner or RunOwner.current()
    with conn:
        conn.execute(
            "INSERT INTO runs (run_id, command, started_at, seed, config_hash, source, status, pid, host, "
            "process_started, heartbeat_at, params, events) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, 0)",
            (run_id, command, started_at, seed, config_hash, source, owner.pid, owner.host, owner.started,
             started_at, params),
        )


def reclaim_run(conn: sqlite3.Connection, run_id: str, owner: RunOwner | None = None) -> None:
    """Make this process the owner of an earlier run again (``--resume``): status back to ``running``."""
    owner = owner or RunOwner.current()
    with conn:
        conn.execute(
            "UPDATE runs SET status = 'running', finished_at = NULL, stop_reason = NULL, pid = ?, host = ?, "
            "process_started = ?, heartbeat_at = ? WHERE run_id = ?",
            (owner.pid, owner.host, owner.started, now_iso(), run_id),
        )


HEARTBEAT_SQL = "UPDATE runs SET heartbeat_at = ?, events = ? WHERE run_id = ?"  # (now, events, run_id)


def finish_run(conn: sqlite3.Connection, run_id: str, status: str, finished_at: str, summary: str,
               stop_reason: str | None = None, events: int | None = None) -> None:
    with conn:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, summary = ?, stop_reason = ?, "
            "events = COALESCE(?, events) WHERE run_id = ?",
            (status, finished_at, summary, stop_reason, events, run_id),
        )


def find_interrupted(conn: sqlite3.Connection, host: str | None = None, now: datetime | None = None) -> list[str]:
    """Ids of ``running`` runs whose process is gone (or, on another host, whose heartbeat is stale)."""
    host = host or socket.gethostname()
    now = now or datetime.now(UTC)
    dead = []
    rows = conn.execute(
        "SELECT run_id, pid, host, process_started, heartbeat_at FROM runs WHERE status = 'running'"
    ).fetchall()
    for run_id, pid, run_host, started, beat in rows:
        if pid is None:  # written before liveness was recorded: nobody can own it any more
            dead.append(run_id)
        elif run_host == host:
            if not RunOwner(pid, run_host, started or 0.0).alive():
                dead.append(run_id)
        elif beat is None or (now - datetime.fromisoformat(beat)).total_seconds() > STALE_HEARTBEAT_S:
            dead.append(run_id)
    return dead


def mark_interrupted(conn: sqlite3.Connection) -> list[str]:
    """Mark every run whose process died as ``interrupted``; return their ids."""
    dead = find_interrupted(conn)
    if dead:
        with conn:
            conn.executemany(
                "UPDATE runs SET status = 'interrupted', stop_reason = 'the process ended without finishing the run' "
                "WHERE run_id = ? AND status = 'running'",
                [(run_id,) for run_id in dead],
            )
    return dead


_RUN_FIELDS = ("run_id", "command", "status", "started_at", "finished_at", "stop_reason", "events", "seed",
               "config_hash", "source", "params")


def list_runs(conn: sqlite3.Connection) -> list[RunRow]:
    """Every run, oldest first."""
    sql = f"SELECT {', '.join(_RUN_FIELDS)} FROM runs ORDER BY started_at, run_id"
    return [RunRow(*row) for row in conn.execute(sql)]


def get_run(conn: sqlite3.Connection, run_id: str) -> RunRow | None:
    row = conn.execute(f"SELECT {', '.join(_RUN_FIELDS)} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return RunRow(*row) if row is not None else None
