"""``replay`` of tapes, LOBSTER and DBN files, and ``import-lobster``.

Both exit 3 (after the run or the import has completed and been saved) when a LOBSTER message file
disagrees with its orderbook file, naming the first unexplained mismatch on one line.
"""

from __future__ import annotations

import argparse
from datetime import date

from engine.app.arguments import positive, speed
from engine.app.commands.common import add_format_option, pipeline_command, report_simple, run_parameters
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
    _lobster_options(replay)

    lobster = sub.add_parser("import-lobster", parents=[common, reporting],
                             help="import a LOBSTER day into a tape, reconciling every message")
    lobster.add_argument("message", metavar="MESSAGE_CSV")
    lobster.add_argument("orderbook", nargs="?", metavar="ORDERBOOK_CSV", help="default: found beside MESSAGE_CSV")
    lobster.add_argument("--out", required=True, metavar="TAPE",
                         help="output tape (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)")
    add_format_option(lobster)
    _lobster_options(lobster)
    return {"replay": cmd_replay, "import-lobster": cmd_import_lobster}


def _lobster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("LOBSTER message files")
    group.add_argument("--no-reconcile", action="store_true",
                       help="read only the message file: no orderbook file, no reconciliation")
    group.add_argument("--symbol", metavar="TICKER",
                       help="ticker of a message file not named TICKER_YYYY-MM-DD_start_end_message_N.csv")
    group.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="trading day of such a file")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (expected YYYY-MM-DD)") from None


def _lobster_feed_options(args) -> dict:
    """The LobsterFeed keyword arguments the flags ask for (none when no flag is given)."""
    options: dict = {"reconcile": False} if args.no_reconcile else {}
    if args.symbol:
        options["symbol"] = args.symbol
    if args.date:
        options["day"] = args.date
    return options


def cmd_replay(args, config: Config) -> int:
    from feeds.merge import open_feeds

    feed = open_feeds(args.files, strict=args.strict, dbn=dbn_options(args, config), **_lobster_feed_options(args))
    db = args.db or config.store.path
    code = pipeline_command(args, config, feed, ",".join(args.files), None, db, args.speed, args.duration, None,
                            params=run_parameters(args, args.files), resume=args.resume)
    if code == 0:
        _raise_for_mismatches(feed)
    return code


def _raise_for_mismatches(feed) -> None:
    """Raise the reconciliation error of the first LOBSTER file whose replay met unexplained mismatches."""
    from feeds.lobster import LobsterFeed
    from feeds.merge import MergedFeed

    for child in feed.feeds if isinstance(feed, MergedFeed) else [feed]:
        if isinstance(child, LobsterFeed) and (error := child.reconciliation_error()) is not None:
            raise error


def cmd_import_lobster(args, config: Config) -> int:
    from feeds.lobster import LobsterFeed, record_lobster

    if args.orderbook and args.no_reconcile:
        raise UsageError(f"{args.orderbook}: ORDERBOOK_CSV and --no-reconcile exclude each other "
                         "(--no-reconcile reads only the message file)")
    feed = LobsterFeed(args.message, args.orderbook, **_lobster_feed_options(args))
    report = record_lobster(feed, args.out, format=args.format)
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
    _raise_for_mismatches(feed)
    return 0
