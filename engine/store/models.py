"""The ``models`` table: the model registry (version, kind, file, SHA-256, training window, metrics).

A model version is ``candidate`` when registered; ``promote`` makes it the ``champion`` of its kind
(the one runs load) and retires the previous champion. ``mode`` is ``live`` (its output drives
decisions) or ``shadow`` (scored and recorded only: models trained on simulated data only, SPEC 12).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson

STATUSES = ("candidate", "champion", "retired")
MODES = ("live", "shadow")


@dataclass(frozen=True)
class ModelRow:
    version: str
    kind: str
    path: str
    sha256: str
    created_at: str
    training: dict
    metrics: dict
    status: str
    mode: str

    def as_dict(self) -> dict:
        return asdict(self)


_COLUMNS = "version, kind, path, sha256, created_at, training, metrics, status, mode"


def _row(values: tuple) -> ModelRow:
    version, kind, path, sha, created, training, metrics, status, mode = values
    return ModelRow(version, kind, path, sha, created, orjson.loads(training or "{}"), orjson.loads(metrics or "{}"),
                    status, mode)


def register_model(conn: sqlite3.Connection, *, version: str, kind: str, path: str, sha256: str,
                   training: dict, metrics: dict, mode: str = "live") -> ModelRow:
    """Record a new model version as a ``candidate``."""
    if mode not in MODES:
        raise ValueError(f"model mode {mode!r} is not one of {MODES}")
    created = datetime.now(UTC).isoformat()
    with conn:
        conn.execute(f"INSERT INTO models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (version, kind, path, sha256, created, orjson.dumps(training).decode(),
                      orjson.dumps(metrics).decode(), "candidate", mode))
    found = get_model(conn, version)
    assert found is not None
    return found


def list_models(conn: sqlite3.Connection, kind: str | None = None) -> list[ModelRow]:
    if kind is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM models ORDER BY created_at, version").fetchall()
    else:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM models WHERE kind = ? ORDER BY created_at, version",
                            (kind,)).fetchall()
    return [_row(r) for r in rows]


def get_model(conn: sqlite3.Connection, version: str) -> ModelRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM models WHERE version = ?", (version,)).fetchone()
    return None if row is None else _row(row)


def find_by_path(conn: sqlite3.Connection, path: str) -> ModelRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM models WHERE path = ? ORDER BY created_at DESC",
                       (path,)).fetchone()
    return None if row is None else _row(row)


def champion(conn: sqlite3.Connection, kind: str) -> ModelRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM models WHERE kind = ? AND status = 'champion'", (kind,)).fetchone()
    return None if row is None else _row(row)


def promote_model(conn: sqlite3.Connection, version: str) -> ModelRow:
    """Make ``version`` the champion of its kind; the previous champion becomes ``retired``."""
    found = get_model(conn, version)
    if found is None:
        raise KeyError(version)
    with conn:
        conn.execute("UPDATE models SET status = 'retired' WHERE kind = ? AND status = 'champion' AND version != ?",
                     (found.kind, version))
        conn.execute("UPDATE models SET status = 'champion' WHERE version = ?", (version,))
    promoted = get_model(conn, version)
    assert promoted is not None
    return promoted


def record_decision(conn: sqlite3.Connection, version: str, promoted: bool, metrics: dict) -> ModelRow:
    """A challenger judged: ``metrics`` merged into its row, then promoted (champion) or ``retired``."""
    found = get_model(conn, version)
    if found is None:
        raise KeyError(version)
    with conn:
        conn.execute("UPDATE models SET metrics = ? WHERE version = ?",
                     (orjson.dumps({**found.metrics, **metrics}).decode(), version))
        if not promoted:
            conn.execute("UPDATE models SET status = 'retired' WHERE version = ?", (version,))
    if promoted:
        return promote_model(conn, version)
    row = get_model(conn, version)
    assert row is not None
    return row
