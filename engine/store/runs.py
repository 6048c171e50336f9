"""The ``runs`` table: one row per run, its status and its summary."""

from __future__ import annotations

import sqlite3


def start_run(conn: sqlite3.Connection, run_id: str, command: str, seed: int | None, config_hash: str,
              source: str, started_at: str) -> None:
    with conn:
        conn.execute(
            "INSERT INTO runs (run_id, command, started_at, seed, config_hash, source, status) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running')",
            (run_id, command, started_at, seed, config_hash, source),
        )


def finish_run(conn: sqlite3.Connection, run_id: str, status: str, finished_at: str, summary: str) -> None:
    with conn:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE run_id = ?",
            (status, finished_at, summary, run_id),
        )
