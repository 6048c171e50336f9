"""``report``, ``heatmap`` and ``export``: what a run left in its database, for people and other tools.

- ``report --db PATH [--run ID] [--symbol S --from T --to T] --out report.html``: one self-contained
  HTML file (engine/app/html_report.py);
- ``heatmap --db PATH [--run ID] [--symbol S --from T --to T] --out file.png``: the heatmap alone
  (matplotlib, Agg);
- ``export --db PATH --table T --format csv|json|parquet [--run ID] [--out PATH]``: one table of one
  run (csv and json go to stdout without ``--out``; parquet needs ``--out``).

``--run`` defaults to the latest run; ``--from``/``--to`` take nanoseconds since the epoch or an
ISO 8601 time (UTC unless it names its zone).
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from engine import store
from engine.app.commands.common import open_database
from engine.config import Config
from engine.errors import UsageError
from engine.records import TABLES

FORMATS = ("csv", "json", "parquet")


def register(sub, common, reporting) -> dict:
    report = sub.add_parser("report", parents=[common], help="write a self-contained HTML report of a run")
    heatmap = sub.add_parser("heatmap", parents=[common], help="write the Bookmap-style heatmap of a run as PNG")
    for parser in (report, heatmap):
        _run_options(parser)
        parser.add_argument("--symbol", help="instrument of the heatmap (default: the one with the most fills)")
        parser.add_argument("--from", dest="t_from", metavar="T", type=timestamp, help="window start (ns or ISO)")
        parser.add_argument("--to", dest="t_to", metavar="T", type=timestamp, help="window end (ns or ISO)")
        parser.add_argument("--out", required=True, metavar="PATH", help="file to write")
    heatmap.add_argument("--width", type=int, default=1600, help="image width in pixels (default 1600)")
    heatmap.add_argument("--height", type=int, default=900, help="image height in pixels (default 900)")
    export = sub.add_parser("export", parents=[common], help="export one table of a run as csv, json or parquet")
    _run_options(export)
    export.add_argument("--table", required=True, choices=sorted(TABLES), help="table to export")
    export.add_argument("--format", required=True, choices=FORMATS, help="output format")
    export.add_argument("--out", metavar="PATH", help="file to write (csv and json: stdout by default)")
    return {"report": cmd_report, "heatmap": cmd_heatmap, "export": cmd_export}


def _run_options(parser) -> None:
    parser.add_argument("--db", metavar="PATH", help="SQLite file (default: [store] path)")
    parser.add_argument("--run", metavar="ID", help="run id (default: the latest run)")


def timestamp(text: str) -> int:
    """Nanoseconds since the epoch, from an integer or an ISO 8601 time."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"time {text!r}: give nanoseconds since the epoch or an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _open(args, config: Config):
    """Read-only connection and the run id (checked)."""
    from engine.app.heatmap import latest_run

    path, conn = open_database(args, config, readonly=True)
    run_id = args.run or latest_run(conn)
    if store.get_run(conn, run_id) is None:
        conn.close()
        raise UsageError(f"--run {run_id}: no such run in {path} (chimera runs --db {path} lists them)")
    return path, conn, run_id


def cmd_report(args, config: Config) -> int:
    from engine.app.html_report import build_report

    path, conn, run_id = _open(args, config)
    try:
        text = build_report(conn, path, run_id, args.symbol, args.t_from, args.t_to)
    finally:
        conn.close()
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"report of run {run_id} written to {Path(args.out).resolve()}")
    return 0


def cmd_heatmap(args, config: Config) -> int:
    from engine.app.heatmap import load_heatmap, render_png

    if not (100 <= args.width <= 10_000 and 100 <= args.height <= 10_000):
        raise UsageError("--width and --height: give pixels in [100, 10000]")
    path, conn, run_id = _open(args, config)
    try:
        heat = load_heatmap(conn, run_id, args.symbol, args.t_from, args.t_to)
    finally:
        conn.close()
    render_png(heat, args.out, args.width, args.height)
    print(f"heatmap of {heat.symbol} in run {run_id} written to {Path(args.out).resolve()}")
    return 0


def cmd_export(args, config: Config) -> int:
    if args.format == "parquet" and not args.out:
        raise UsageError("--format parquet needs --out PATH")
    path, conn, run_id = _open(args, config)
    try:
        rows = store.fetch_dicts(conn, args.table, run_id)
    finally:
        conn.close()
    columns = TABLES[args.table]
    if args.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in columns}), args.out)
    else:
        if args.format == "json":
            data = orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n"
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            data = buffer.getvalue().encode()
        if args.out:
            Path(args.out).write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    if args.out:
        print(f"{len(rows):,} rows of {args.table} (run {run_id}) written to {args.out}")
    return 0
