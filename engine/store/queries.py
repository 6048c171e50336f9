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
