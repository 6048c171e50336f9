"""``runs``: the runs of a database with their status, why they stopped, events and config hash.

Opening the database marks runs whose process died as ``interrupted`` (engine/store/runs.py).
"""

from __future__ import annotations

from pathlib import Path

import orjson
from rich.markup import escape
from rich.table import Table

from engine import store
from engine.app.commands.common import open_database
from engine.config import Config


def register(sub, common, reporting) -> dict:
    runs = sub.add_parser("runs", parents=[common, reporting], help="list the runs of a database")
    runs.add_argument("--db", metavar="PATH", help="SQLite file (default: [store] path)")
    return {"runs": cmd_runs}


def cmd_runs(args, config: Config) -> int:
    from engine.app.report import console

    path, conn = open_database(args, config)
    try:
        store.mark_interrupted(conn)
        rows = [row.as_dict() for row in store.list_runs(conn)]
    finally:
        conn.close()
    summary = {"command": "runs", "db": path, "runs": rows}
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if args.json:
        print(orjson.dumps(summary).decode())
        return 0
    console().print(runs_table(path, rows))
    return 0


def runs_table(path: str, rows: list[dict]) -> Table:
    table = Table(title=f"Runs in {escape(path)}")
    for column in ("run", "command", "status", "started", "events", "stop reason", "config"):
        table.add_column(column, justify="right" if column == "events" else "left",
                         no_wrap=column in ("run", "status", "config"), overflow="fold")
    for row in rows:
        events = "" if row["events"] is None else f"{row['events']:,}"
        table.add_row(escape(row["run_id"]), row["command"], row["status"], (row["started_at"] or "")[:19], events,
                      escape(row["stop_reason"] or ""), (row["config_hash"] or "")[:12])
    return table
