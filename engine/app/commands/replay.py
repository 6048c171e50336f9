"""``replay`` of tapes, LOBSTER and DBN files, and ``import-lobster``."""

from __future__ import annotations

from pathlib import Path

from engine.app.arguments import positive, speed
from engine.app.commands.common import pipeline_command, report_simple, run_parameters
from engine.app.commands.dbn import add_dbn_options, dbn_options
from engine.config import Config
from engine.errors import UsageError


def register(sub, common, reporting) -> dict:
    replay = sub.add_parser("replay", parents=[common, reporting],
                            help="replay tapes, LOBSTER message files or Databento DBN files")
    replay.add_argument("files", nargs="+", metavar="FILE",
                        help="tape (.jsonl[.gz|.zst]), LOBSTER *_message_N.csv or Databento .dbn[.zst]")
    replay.add_argument("--speed", type=speed, default=None, help="'max' (default) or a multiple of recorded pace")
    replay.add_argument("--duration", type=positive, help="stop after this much market time (seconds)")
    replay.add_argument("--no-ml", action="store_true")
    replay.add_argument("--strict", action="store_true", help="stop at the first malformed tape line")
    replay.add_argument("--db", metavar="PATH")
    replay.add_argument("--resume", metavar="RUN_ID",
                        help="continue an interrupted, failed or stopped replay of the same files into the same "
                             "--db: rows it committed are not written again (see `chimera runs`)")
    add_dbn_options(replay)

    lobster = sub.add_parser("import-lobster", parents=[common, reporting],
                             help="import a LOBSTER day into a tape, reconciling every message")
    lobster.add_argument("message", metavar="MESSAGE_CSV")
    lobster.add_argument("orderbook", nargs="?", metavar="ORDERBOOK_CSV", help="default: found beside MESSAGE_CSV")
    lobster.add_argument("--out", required=True, metavar="TAPE")
    return {"replay": cmd_replay, "import-lobster": cmd_import_lobster}


def cmd_replay(args, config: Config) -> int:
    from feeds.merge import open_feeds

    for path in args.files:
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file")
    feed = open_feeds(args.files, strict=args.strict, dbn=dbn_options(args, config))
    db = args.db or config.store.path
    return pipeline_command(args, config, feed, ",".join(args.files), None, db, args.speed, args.duration, None,
                            params=run_parameters(args, args.files), resume=args.resume)


def cmd_import_lobster(args, config: Config) -> int:
    from feeds.lobster import import_lobster

    for path in filter(None, [args.message, args.orderbook]):
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file")
    report = import_lobster(args.message, args.orderbook, args.out)
    summary = {"command": "import-lobster", "out": args.out, **report}
    lines = [
        f"rows                      {report['rows']:,}",
        f"events                    {report['events']:,}",
        f"levels checked            {report['levels_checked']:,}",
        f"window entries adopted    {report['window_entries_adopted']:,}",
        f"unexplained mismatches    {report['unexplained_mismatches']:,}",
    ]
    for mismatch in report.get("mismatch_examples", [])[:10]:
        lines.append(f"  mismatch: {mismatch}")
    report_simple(args, summary, "\n".join(lines))
    return 3 if report["unexplained_mismatches"] else 0
