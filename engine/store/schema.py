"""The SQLite schema: tables, indexes, ``PRAGMA user_version`` migrations and connections.

Invariants: WAL mode and ``busy_timeout`` on every writing connection; parameterised SQL only;
table and column names come from the fixed vocabulary (engine/records.py), never from input.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from engine.errors import ChimeraError
from engine.records import TABLES

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


def pragmas(busy_timeout_ms: int) -> list[str]:
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
        for pragma in pragmas(busy_timeout_ms):
            conn.execute(pragma)
        migrate(conn)
    except ChimeraError as exc:
        conn.close()
        raise ChimeraError(f"{path}: {exc}") from None
    return conn
