"""Batch writes and read helpers over the schema (reference path, importers, CLI, tests)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from engine.records import TABLES
from engine.store.schema import INSERTS, NATURAL_ORDER


def group_rows(run_id: str, records: Iterable[tuple[str, tuple]]) -> dict[str, list[tuple]]:
    """Group records by table, prepending the run id to each row."""
    grouped: dict[str, list[tuple]] = {}
    for table, row in records:
        rows = grouped.get(table)
        if rows is None:
            rows = grouped[table] = []
        rows.append((run_id, *row))
    return grouped


class CommittedPrefix:
    """What an interrupted run committed: rows per ``(table, instrument_id)``, skipped when produced again.

    Valid because each ``(table, instrument)`` sequence comes from one producer in a deterministic
    order and a committed batch holds a prefix of every sequence it touches (engine/records.py).
    """

    def __init__(self, committed: dict[tuple[str, int], int]) -> None:
        self.remaining = {key: n for key, n in committed.items() if n > 0}
        self.columns = {table: cols.index("instrument_id") for table, cols in TABLES.items()}

    @classmethod
    def of_run(cls, conn: sqlite3.Connection, run_id: str) -> CommittedPrefix:
        committed = {}
        for table in TABLES:
            sql = f"SELECT instrument_id, COUNT(*) FROM {table} WHERE run_id = ? GROUP BY instrument_id"
            for iid, count in conn.execute(sql, (run_id,)):
                committed[(table, iid)] = count
        return cls(committed)

    @property
    def total(self) -> int:
        return sum(self.remaining.values())

    def drop_committed(self, records: list[tuple[str, tuple]]) -> list[tuple[str, tuple]]:
        """``records`` without the rows the interrupted run already committed."""
        remaining = self.remaining
        if not remaining:
            return records
        kept = []
        for record in records:
            table, row = record
            key = (table, row[self.columns[table]])
            left = remaining.get(key)
            if left:
                if left == 1:
                    del remaining[key]
                else:
                    remaining[key] = left - 1
                continue
            kept.append(record)
        return kept


def write_records(conn: sqlite3.Connection, run_id: str, records: Iterable[tuple[str, tuple]]) -> int:
    """Synchronous batch write (reference path, importers): one transaction, executemany per table."""
    grouped = group_rows(run_id, records)
    with conn:
        for table, rows in grouped.items():
            conn.executemany(INSERTS[table], rows)
    return sum(len(rows) for rows in grouped.values())


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


def fetch_dicts(conn: sqlite3.Connection, table: str, run_id: str, where: str = "",
                params: tuple = ()) -> list[dict]:
    """One run's rows of ``table`` as dicts keyed by column, in natural order; ``where`` adds a condition
    on fixed column names with ``params`` bound."""
    cols = TABLES[table]
    condition = f" AND {where}" if where else ""
    sql = f"SELECT {', '.join(cols)} FROM {table} WHERE run_id = ?{condition} ORDER BY {NATURAL_ORDER[table]}"
    return [dict(zip(cols, row, strict=True)) for row in conn.execute(sql, (run_id, *params))]


def run_analytics_rows(conn: sqlite3.Connection, run_id: str) -> dict[str, list[dict]]:
    """The rows the analytics read: equity, round trips, orders, fills."""
    return {table: fetch_dicts(conn, table, run_id) for table in ("equity", "round_trips", "orders", "fills")}
