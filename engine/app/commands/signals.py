"""``signals``: the stored signals of a database, filtered by run, strategy and time.

``--since`` takes an ISO 8601 time (UTC unless it carries an offset) or integer nanoseconds since the
epoch. Without ``--run`` every run's signals are listed. The table shows the essentials; ``--json``
prints every column (targets, C, K, regime, confidence and its mode, detections, evidence).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
from rich.markup import escape
from rich.table import Table

from engine import store
from engine.app.commands.common import open_database
from engine.config import Config
from engine.errors import UsageError
from engine.store.signals import list_signals, strategy_summary

SIDES = {1: "buy", -1: "sell"}


def register(sub, common, reporting) -> dict:
    cmd = sub.add_parser("signals", parents=[common, reporting], help="list the stored signals of a database")
    cmd.add_argument("--db", metavar="PATH", help="SQLite file (default: [store] path)")
    cmd.add_argument("--run", metavar="ID", help="only this run's signals")
    cmd.add_argument("--strategy", metavar="S", help="only this strategy's signals")
    cmd.add_argument("--since", metavar="T", help="only signals at or after T (ISO 8601, UTC by default, or ns)")
    cmd.add_argument("--limit", metavar="N", type=int, help="at most N signals")
    return {"signals": cmd_signals}


def parse_since(text: str | None) -> int | None:
    """``--since``: ISO 8601 (naive = UTC) or integer nanoseconds since the epoch."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text}: expected an ISO 8601 time such as 2024-06-21T13:31:00 "
                         "or nanoseconds since the epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def cmd_signals(args, config: Config) -> int:
    from engine.app.report import console, strategy_table

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: expected a positive number")
    since = parse_since(args.since)
    path, conn = open_database(args, config, readonly=True)
    try:
        if args.run is not None and store.get_run(conn, args.run) is None:
            raise UsageError(f"--run {args.run}: no such run in {path} (see `chimera runs --db {path}`)")
        rows = list_signals(conn, args.run, args.strategy, since, args.limit)
        per_strategy = strategy_summary(conn, args.run) if args.run is not None else {}
    finally:
        conn.close()
    summary = {"command": "signals", "db": path, "run": args.run, "strategy": args.strategy, "since_ns": since,
               "count": len(rows), "strategies": per_strategy, "signals": rows}
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if args.json:
        print(orjson.dumps(summary).decode())
        return 0
    out = console()
    out.print(signals_table(path, rows))
    if per_strategy:
        out.print(strategy_table(per_strategy))
    return 0


def signals_table(path: str, rows: list[dict]) -> Table:
    table = Table(title=f"Signals in {escape(path)} ({len(rows):,})")
    for column in ("time (UTC)", "instrument", "strategy", "side", "entry", "stop", "targets", "S_raw", "C", "K",
                   "confidence", "decision"):
        table.add_column(column, justify="left" if column in ("time (UTC)", "strategy", "side", "decision")
                         else "right")
    for row in rows:
        ts = datetime.fromtimestamp(row["ts_recv"] / 1e9, tz=UTC).isoformat(timespec="microseconds")[:26]
        targets = ", ".join(str(t) for t in orjson.loads(row["targets"] or "[]"))
        confidence = "" if row["confidence"] is None else f"{row['confidence']:.3f}"
        symbol = escape(row["symbol"] or str(row["instrument_id"]))
        table.add_row(ts, symbol, escape(row["strategy"]), SIDES.get(row["side"], "?"),
                      str(row["entry_price"]), str(row["stop"]), targets, f"{row['score']:.2f}",
                      "" if row["confluence"] is None else f"{row['confluence']:.2f}",
                      "" if row["structural"] is None else str(row["structural"]), confidence,
                      escape(row["decision"] or ""))
    return table
