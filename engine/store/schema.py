"""The SQLite schema: tables, indexes, ``PRAGMA user_version`` migrations and connections.

Invariants: WAL mode and ``busy_timeout`` on every writing connection; parameterised SQL only;
table and column names come from the fixed vocabulary (engine/records.py), never from input.

A Chimera database is recognised by ``PRAGMA application_id`` (``APPLICATION_ID``, set from schema
version 2) or, for files written before it, by the schema marker of version 1 (a ``runs`` table with
Chimera's columns). ``check_database`` refuses any other file before a connection changes it: no
journal-mode switch and no migration ever touch a file that is not ours.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine.errors import StoreError, UsageError
from engine.records import SIGNAL_DETAIL, TABLES

SCHEMA_VERSION = 7
APPLICATION_ID = 0x43484D52  # "CHMR"
SQLITE_HEADER = b"SQLite format 3\x00"
RUN_COLUMNS_V1 = ("run_id", "command", "started_at", "finished_at", "seed", "config_hash", "source", "status",
                  "summary")

_COLUMN_TYPES = {
    "symbol": "TEXT", "venue": "TEXT", "tick_size": "TEXT", "multiplier": "TEXT", "currency": "TEXT",
    "profile": "TEXT", "bid_px": "TEXT", "bid_sz": "TEXT", "ask_px": "TEXT", "ask_sz": "TEXT",
    "features": "TEXT", "signal_id": "TEXT", "strategy": "TEXT", "score_mode": "TEXT", "decision": "TEXT",
    "reason": "TEXT", "client_id": "TEXT", "tif": "TEXT", "status": "TEXT", "params": "TEXT",
    "stage": "TEXT", "counter": "TEXT", "detection_id": "TEXT", "detector": "TEXT", "evidence": "TEXT",
    "strength": "REAL", "score": "REAL", "probability": "REAL", "fee": "REAL",
    "cash": "REAL", "realized": "REAL", "unrealized": "REAL", "equity": "REAL",
    "targets": "TEXT", "confluence": "REAL", "regime": "TEXT", "confidence": "REAL", "confidence_mode": "TEXT",
    "invalidation": "TEXT", "detection_ids": "TEXT",
    "purpose": "TEXT", "avg_price": "REAL", "decision_mid": "REAL", "mid": "REAL", "mid_1s": "REAL",
    "mid_10s": "REAL", "mark": "REAL", "marked_value": "REAL", "fees": "REAL", "trip_id": "TEXT",
    "entry_price": "REAL", "exit_price": "REAL", "pnl": "REAL", "r_multiple": "REAL", "exit_reason": "TEXT",
    "event": "TEXT", "detail": "TEXT",
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
    "detections": ("run_id", "instrument_id", "ts_recv"),
    "round_trips": ("run_id", "instrument_id", "entry_ts"),
    "risk_events": ("run_id", "instrument_id", "ts"),
}

# Natural order of each table, used to compare runs row by row.
NATURAL_ORDER = {
    "instruments": "instrument_id",
    "trades": "instrument_id, seq",
    "book_samples": "instrument_id, ts_recv, seq",
    "feature_samples": "instrument_id, ts_recv, seq",
    "signals": "signal_id",
    "orders": "client_id",
    "fills": "client_id, fill_no",
    "equity": "ts, instrument_id, position, cash",
    "truth_labels": "instrument_id, seq",
    "integrity": "instrument_id, stage, counter",
    "detections": "instrument_id, ts_recv, seq, detection_id, evidence",
    "round_trips": "trip_id",
    "risk_events": "ts, instrument_id, event, detail",
}


# Columns added by later migrations (4: signal detail, 5: execution): the tables of the first
# migration are created without them, and each migration adds its own.
ADDED_BY_4 = {"signals": SIGNAL_DETAIL}
ADDED_BY_5 = {
    "orders": ("purpose", "filled", "avg_price", "decision_mid", "ts_done"),
    "fills": ("mid", "mid_1s", "mid_10s"),
    "equity": ("mark", "marked_value", "fees"),
}
ADDED_COLUMNS = {**ADDED_BY_4, **ADDED_BY_5}


def _create_table(table: str, columns: tuple[str, ...]) -> str:
    cols = ", ".join(f"{c} {_COLUMN_TYPES.get(c, 'INTEGER')}" for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (run_id TEXT NOT NULL, {cols})"


V1_TABLES = ("instruments", "trades", "book_samples", "feature_samples", "signals", "orders", "fills", "equity",
             "truth_labels", "integrity")


def _tables(names, without: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    statements = []
    for table in names:
        skip = (without or {}).get(table, ())
        statements.append(_create_table(table, tuple(c for c in TABLES[table] if c not in skip)))
        index_cols = _INDEXES[table]
        statements.append(f"CREATE INDEX IF NOT EXISTS {table}_by_time ON {table} ({', '.join(index_cols)})")
    return statements


def _migration_1() -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, command TEXT, started_at TEXT, "
        "finished_at TEXT, seed INTEGER, config_hash TEXT, source TEXT, status TEXT, summary TEXT)",
        "CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)",
        *_tables(V1_TABLES, without=ADDED_COLUMNS),
    ]


def _migration_2() -> list[str]:
    """Run liveness and status details: stop reason, events, the owning process, heartbeat, parameters."""
    columns = {"stop_reason": "TEXT", "events": "INTEGER", "pid": "INTEGER", "host": "TEXT",
               "process_started": "REAL", "heartbeat_at": "TEXT", "params": "TEXT"}
    return [f"ALTER TABLE runs ADD COLUMN {name} {kind}" for name, kind in columns.items()] + [
        f"PRAGMA application_id={APPLICATION_ID}",
    ]


def _migration_3() -> list[str]:
    """Detections (engine/detectors/) with their evidence."""
    return _tables(("detections",))


def _added(columns: dict[str, tuple[str, ...]]) -> list[str]:
    return [f"ALTER TABLE {table} ADD COLUMN {column} {_COLUMN_TYPES.get(column, 'INTEGER')}"
            for table, names in columns.items() for column in names]


def _migration_4() -> list[str]:
    """Signals carry every target, C, K, the regime, the confidence and its mode, invalidation, causes, evidence."""
    return _added(ADDED_BY_4)


def _migration_5() -> list[str]:
    """Honest execution: order outcomes, fills with the mids after them, equity marks, round trips and
    every risk event (kill switch, disabled strategy, stop moves, late rejections)."""
    return _added(ADDED_BY_5) + _tables(("round_trips", "risk_events"))


def _migration_6() -> list[str]:
    """The daemon's checkpoint: one JSON state per name (positions, kill switch, pauses, risk limits)."""
    return ["CREATE TABLE IF NOT EXISTS daemon_state (name TEXT PRIMARY KEY, state TEXT NOT NULL, "
            "saved_at TEXT NOT NULL)"]


def _migration_7() -> list[str]:
    """The model registry: every model version with its file's SHA-256, training window, metrics and status."""
    return ["CREATE TABLE IF NOT EXISTS models (version TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL, "
            "sha256 TEXT NOT NULL, created_at TEXT NOT NULL, training TEXT, metrics TEXT, "
            "status TEXT NOT NULL, mode TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS models_by_kind ON models (kind, created_at)"]


MIGRATIONS: list[Callable[[], list[str]]] = [_migration_1, _migration_2, _migration_3, _migration_4, _migration_5,
                                             _migration_6, _migration_7]

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
    """Bring the schema to ``SCHEMA_VERSION``, each version in one transaction; return the version found."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise UsageError(
            f"database schema version {found} is newer than this Chimera ({SCHEMA_VERSION}); "
            "use a newer Chimera or another database file"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version - 1]():
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    return found


def connect(path: str | Path, busy_timeout_ms: int = 5000, readonly: bool = False) -> sqlite3.Connection:
    """Open a synchronous connection (WAL, busy timeout); writers also migrate the schema.

    Raises:
        UsageError: a schema newer than this Chimera.
        StoreError: SQLite could not open, configure or migrate the file (locked, disk, permissions).
    """
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            return conn
        conn = sqlite3.connect(path)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the database: {exc}") from None
    try:
        for pragma in pragmas(busy_timeout_ms):
            conn.execute(pragma)
        migrate(conn)
    except UsageError as exc:
        conn.close()
        raise UsageError(f"{path}: {exc}") from None
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"{path}: {exc}") from None
    return conn


def check_database(path: str | Path) -> None:
    """Refuse a ``--db`` that is not, and cannot become, a Chimera database, without changing it.

    Accepted: a missing file in a writable directory (created when missing), an empty file, an empty SQLite database, a
    Chimera database of this or an older schema. Everything else raises ``UsageError`` (exit 2)
    naming the file and what to do; the file is only read.
    """
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"--db {path}: is a directory; give a database file path")
    _check_writable_directory(file)
    if not file.exists() or file.stat().st_size == 0:
        return
    try:
        with file.open("rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        raise UsageError(f"--db {path}: cannot read: {exc.strerror}") from None
    if not header.startswith(SQLITE_HEADER):
        raise UsageError(f"--db {path}: not an SQLite database; give a new file or a Chimera database")
    _check_ours(path)


def _check_writable_directory(file: Path) -> None:
    directory = file.resolve().parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--db {file}: cannot create directory {directory} ({exc.strerror})") from None
    try:
        with tempfile.TemporaryFile(dir=directory):  # creating a file is the only test that holds for root too
            pass
    except OSError as exc:
        raise UsageError(f"--db {file}: directory {directory} is not writable ({exc.strerror}); "
                         "SQLite needs to create its journal files there") from None


def _check_ours(path: str | Path) -> None:
    """Read-only look at an SQLite file: ours by application id or by the version-1 schema marker."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UsageError(f"--db {path}: cannot open: {exc}") from None
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        runs = [r[1] for r in conn.execute("PRAGMA table_info(runs)")] if "runs" in tables else []
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"--db {path}: not a usable SQLite database ({exc}); give a new file") from None
    finally:
        conn.close()
    if app_id == APPLICATION_ID:
        return
    if app_id == 0 and not tables:
        return
    if app_id == 0 and version == 1 and tuple(runs) == RUN_COLUMNS_V1 and set(V1_TABLES) <= set(tables):
        return
    owner = f"application_id {app_id:#x}" if app_id else f"tables: {', '.join(tables[:6])}"
    raise UsageError(f"--db {path}: an SQLite database that is not Chimera's ({owner}); "
                     "give a new file or a Chimera database")
