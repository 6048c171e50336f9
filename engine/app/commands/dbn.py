"""``import-dbn``: a Databento DBN file into a tape; and the DBN options ``replay`` shares."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.app.commands.common import add_format_option, report_simple
from engine.config import Config
from engine.errors import UsageError


def register(sub, common, reporting) -> dict:
    dbn = sub.add_parser("import-dbn", parents=[common, reporting],
                         help="import a Databento DBN file (mbo, mbp-10 or trades; .dbn or .dbn.zst) into a tape")
    dbn.add_argument("file", metavar="FILE", help="the .dbn or .dbn.zst file")
    dbn.add_argument("--out", required=True, metavar="TAPE",
                     help="output tape (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)")
    add_format_option(dbn)
    add_dbn_options(dbn)
    return {"import-dbn": cmd_import_dbn}


def tick_size(text: str) -> str:
    """A ``--tick-size`` value: a positive decimal on DBN's 1e-9 price grid."""
    from feeds.dbn import units_per_tick

    try:
        units_per_tick(text, "--tick-size")
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_dbn_options(parser: argparse.ArgumentParser) -> None:
    """``--tick-size`` and ``--no-sequence-check``, for every command that reads DBN files."""
    group = parser.add_argument_group("Databento DBN files")
    group.add_argument("--tick-size", type=tick_size, metavar="X",
                       help="tick size of every instrument of the DBN files (default: [instruments.SYMBOL] "
                            "tick_size of the config)")
    group.add_argument("--no-sequence-check", action="store_true",
                       help="do not count skipped venue sequence numbers as gaps (for venues numbering a whole "
                            "channel); records flagged F_MAYBE_BAD_BOOK still count")


def dbn_options(args, config: Config) -> dict:
    """The keyword arguments of ``DbnFeed`` chosen by the DBN flags and the config."""
    chosen = args.tick_size or (lambda symbol: config.instrument(symbol).tick_size)
    return {"tick_size": chosen, "check_sequence": not args.no_sequence_check}


def cmd_import_dbn(args, config: Config) -> int:
    from feeds.dbn import import_dbn

    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    report = import_dbn(args.file, args.out, format=args.format, **dbn_options(args, config))
    summary = {"command": "import-dbn", "file": args.file, "out": args.out, **report}
    lines = [
        f"file                      {args.file} ({report['dataset']}, {report['schema']}, "
        f"DBN v{report['dbn_version']})",
        f"records                   {report['records']:,}",
        f"events                    {report['events']:,}",
        f"instruments               {report['instruments']:,} ({', '.join(report['symbols'])})",
        f"snapshots                 {report['snapshots']:,}",
        f"trades                    {report['trades']:,}",
        f"gaps                      {report['gaps']:,} ({report['sequence_gaps']:,} in sequence numbers, "
        f"{report['bad_book_flags']:,} flagged F_MAYBE_BAD_BOOK)",
        f"tape                      {args.out}",
    ]
    report_simple(args, summary, "\n".join(lines))
    return 0
