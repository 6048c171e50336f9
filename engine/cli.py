"""The ``chimera`` command line (also ``python main.py``).

Every command has ``--help``; every reporting command has ``--json`` (one JSON object on the last
line of stdout) and ``--summary-json PATH``. Errors print one line and exit non-zero: 2 for bad
arguments, configuration or input files, 1 for a failed run, 3 for unexplained reconciliation
mismatches; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from engine.config import Config, load_config
from engine.errors import ChimeraError, UsageError
from engine.logs import configure, get_logger

DEFAULT_DEMO_SYMBOLS = ["AAPL", "NVDA", "TSLA"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _positive_number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
    return value


def _speed(text: str) -> float | None:
    return None if text == "max" else _positive_number(text, "--speed must be 'max' or a positive number")


def _positive(text: str) -> float:
    return _positive_number(text, "expected a positive number")


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError("--symbol needs at least one symbol, e.g. AAPL,NVDA")
    return symbols


def _common() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--config", "-c", metavar="PATH", help="config.toml to read (default: built-in defaults)")
    group.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set pipeline.queue_size=1 (repeatable)")
    group.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    group.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    group.add_argument("--debug", action="store_true", help="show tracebacks")
    return common


def _reporting() -> argparse.ArgumentParser:
    reporting = _Parser(add_help=False)
    group = reporting.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    group.add_argument("--summary-json", metavar="PATH", help="write the summary JSON to PATH")
    group.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    return reporting


def _live_options(parser: argparse.ArgumentParser, duration_default: float | None) -> None:
    parser.add_argument("--symbol", type=_symbols, help="comma-separated symbols (default: [run] symbols)")
    parser.add_argument("--duration", type=_positive, default=duration_default,
                        help="seconds of market time to simulate (default: [run] duration_s)")
    parser.add_argument("--seed", type=int, help="master seed (default: [run] seed)")
    parser.add_argument("--feed", choices=["simulator", "zero_intelligence"], help="live feed (default: [run] feed)")
    parser.add_argument("--scenario", metavar="NAME|PATH",
                        help="plant a scenario: a preset name (e.g. vacuum, iceberg_defense) or a scenario TOML file; "
                             "its symbols and duration apply unless --symbol/--duration are given")


def build_parser() -> argparse.ArgumentParser:
    common, reporting = _common(), _reporting()
    parser = _Parser(prog="chimera", description="Event-driven order-flow trading engine.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", parents=[common, reporting], help="live simulation of several symbols")
    _live_options(run, None)
    run.add_argument("--speed", type=_speed, default=argparse.SUPPRESS,
                     help="'max' or a multiple of real time (default: [run] speed)")
    run.add_argument("--no-ml", action="store_true", help="score signals without models")
    run.add_argument("--db", metavar="PATH", help="SQLite file (default: [store] path)")
    run.add_argument("--record", metavar="TAPE", help="also record the feed to this tape")

    replay = sub.add_parser("replay", parents=[common, reporting], help="replay tapes or LOBSTER message files")
    replay.add_argument("files", nargs="+", metavar="FILE", help="tape (.jsonl[.gz|.zst]) or LOBSTER *_message_N.csv")
    replay.add_argument("--speed", type=_speed, default=None, help="'max' (default) or a multiple of recorded pace")
    replay.add_argument("--duration", type=_positive, help="stop after this much market time (seconds)")
    replay.add_argument("--no-ml", action="store_true")
    replay.add_argument("--strict", action="store_true", help="stop at the first malformed tape line")
    replay.add_argument("--db", metavar="PATH")

    record = sub.add_parser("record", parents=[common, reporting], help="record a live feed to a tape")
    _live_options(record, None)
    record.add_argument("--out", required=True, metavar="TAPE", help="output tape (.jsonl, .jsonl.gz, .jsonl.zst)")

    lobster = sub.add_parser("import-lobster", parents=[common, reporting],
                             help="import a LOBSTER day into a tape, reconciling every message")
    lobster.add_argument("message", metavar="MESSAGE_CSV")
    lobster.add_argument("orderbook", nargs="?", metavar="ORDERBOOK_CSV", help="default: found beside MESSAGE_CSV")
    lobster.add_argument("--out", required=True, metavar="TAPE")

    demo = sub.add_parser("demo", parents=[common, reporting], help="multi-symbol simulation on built-in defaults")
    demo.add_argument("--duration", type=_positive, default=300.0, help="seconds of market time (default 300)")
    demo.add_argument("--db", metavar="PATH", default="chimera-demo.db")

    test = sub.add_parser("test", help="run the test suite (pytest); extra arguments go to pytest")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)

    _add_simulator_commands(sub, common, reporting)
    return parser


def _add_simulator_commands(sub, common, reporting) -> None:
    check = sub.add_parser("sim-check", parents=[common, reporting],
                           help="stylized-facts table of the market simulator")
    check.add_argument("--minutes", type=_positive, default=120.0, help="simulated minutes (default 120)")
    check.add_argument("--profile", choices=["large_tick", "small_tick"], help="three instruments of one profile")
    check.add_argument("--seed", type=int)
    calibrate = sub.add_parser("calibrate", parents=[common, reporting],
                               help="the same statistics on the AMZN LOBSTER day beside the small_tick simulator")
    calibrate.add_argument("--level", type=int, choices=[1, 5], default=5)
    calibrate.add_argument("--minutes", type=_positive, default=120.0)
    calibrate.add_argument("--seed", type=int)


# ---- commands -------------------------------------------------------------------------------------------
def _scenario(name: str | None):
    """A scenario preset by name, or a scenario file by path (None when not asked for)."""
    if not name:
        return None
    from feeds.simulator.scenarios import list_presets, load_preset, load_scenario

    if name in list_presets():
        return load_preset(name)
    if not Path(name).is_file():
        raise UsageError(f"--scenario {name}: neither a preset ({', '.join(list_presets())}) nor a file")
    return load_scenario(name)


def _live_setup(args, config: Config) -> tuple[list[str], int, float, object]:
    """Symbols, seed, duration and feed of ``run``/``record`` (a scenario supplies defaults)."""
    scenario = _scenario(getattr(args, "scenario", None))
    symbols = args.symbol or (list(scenario.spec.symbols) if scenario and scenario.spec.symbols else None) \
        or config.run.symbols
    duration = args.duration or (scenario.spec.duration_s if scenario else None) or config.run.duration_s
    seed = config.run.seed if args.seed is None else args.seed
    feed_name = args.feed or config.run.feed
    if scenario is not None and feed_name != "simulator":
        raise UsageError("--scenario needs the simulator feed")
    return symbols, seed, duration, _live_feed(config, symbols, seed, duration, feed_name, scenario)


def _live_feed(config: Config, symbols: list[str], seed: int, duration: float, feed_name: str, scenario=None):
    if feed_name == "zero_intelligence":
        from feeds.zero_intelligence import ZeroIntelligenceFeed

        return ZeroIntelligenceFeed(symbols, config.instruments, seed, duration, config.simulator.latency_us)
    from feeds.simulator import MarketSimulator

    return MarketSimulator(symbols, config, seed, duration, scenario=scenario)


def _pipeline_command(args, config: Config, feed, source: str, seed: int | None, db: str,
                      speed: float | None, duration: float | None, expected: float | None) -> int:
    from engine.pipeline import RunOptions
    from engine.report import emit
    from engine.runner import RunRequest, execute

    options = RunOptions(no_ml=getattr(args, "no_ml", False), speed=speed, duration_s=duration)
    show = sys.stdout.isatty() and not args.json and not getattr(args, "no_progress", False)
    request = RunRequest(args.command, feed, config, db, source, seed, options, show, expected)
    summary = execute(request)
    emit(summary, as_json=args.json, summary_path=args.summary_json)
    return 0 if summary["status"] == "completed" else 1


def cmd_run(args, config: Config) -> int:
    symbols, seed, duration, feed = _live_setup(args, config)
    speed = args.speed if hasattr(args, "speed") else _speed(config.run.speed)
    if args.record:
        from feeds.tape import RecordingFeed

        feed = RecordingFeed(feed, args.record, source=f"chimera run ({type(feed).__name__})",
                             meta={"seed": seed, "config_hash": config.hash(), "symbols": symbols},
                             created_at=_session_start(feed))
    return _pipeline_command(args, config, feed, type(feed).__name__, seed, args.db or config.store.path,
                             speed, None, duration)


def cmd_demo(args, config: Config) -> int:
    seed = config.run.seed
    feed = _live_feed(config, DEFAULT_DEMO_SYMBOLS, seed, args.duration, config.run.feed)
    args.no_ml = False
    return _pipeline_command(args, config, feed, type(feed).__name__, seed, args.db, None, None, args.duration)


def cmd_replay(args, config: Config) -> int:
    from feeds.merge import open_feeds

    for path in args.files:
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file")
    feed = open_feeds(args.files, strict=args.strict)
    db = args.db or config.store.path
    return _pipeline_command(args, config, feed, ",".join(args.files), None, db, args.speed, args.duration, None)


def _session_start(feed) -> str:
    """A simulated session's start as ISO-8601 UTC: the tape header stamp that keeps seeded tapes identical."""
    from datetime import UTC, datetime

    start_ns = min(d.session_open for d in feed.instruments())
    return datetime.fromtimestamp(start_ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cmd_record(args, config: Config) -> int:
    from feeds.tape import record

    symbols, seed, duration, feed = _live_setup(args, config)
    count = record(feed, args.out, source=f"chimera record ({type(feed).__name__})",
                   meta={"seed": seed, "config_hash": config.hash(), "symbols": symbols},
                   created_at=_session_start(feed))
    summary = {"command": "record", "out": args.out, "events": count, "symbols": symbols, "seed": seed,
               "duration_s": duration}
    _report_simple(args, summary, f"recorded {count:,} events of {', '.join(symbols)} to {args.out}")
    return 0


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
    _report_simple(args, summary, "\n".join(lines))
    return 3 if report["unexplained_mismatches"] else 0


def cmd_sim_check(args, config: Config) -> int:
    from feeds.simulator.check import render_table, results_to_json, run_sim_check

    seed = config.run.seed if args.seed is None else args.seed
    results = run_sim_check(config, minutes=args.minutes, profile=args.profile, seed=seed)
    rows = results_to_json(results)
    summary = {"command": "sim-check", "seed": seed, "minutes": args.minutes, "profile": args.profile,
               "checks": rows, "all_passed": all(r["pass"] is not False for r in rows)}
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    from engine.report import console

    console().print(render_table(results))
    if args.json:
        print(orjson.dumps(summary).decode())
    return 0 if summary["all_passed"] else 1


def cmd_calibrate(args, config: Config) -> int:
    from feeds.simulator.check import calibrate, render_calibration

    seed = config.run.seed if args.seed is None else args.seed
    rows = calibrate(level=args.level, config=config, seed=seed, minutes=args.minutes)
    summary = {"command": "calibrate", "level": args.level, "seed": seed, "rows": [r.as_dict() for r in rows]}
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    from engine.report import console

    console().print(render_calibration(rows))
    if args.json:
        print(orjson.dumps(summary).decode())
    return 0


def cmd_test(args, config: Config | None) -> int:
    root = Path(__file__).resolve().parent.parent
    if not (root / "tests").is_dir():
        raise UsageError("chimera test needs a source checkout (tests/ not found beside the engine package)")
    extra = [a for a in args.pytest_args if a != "--"]
    return subprocess.call([sys.executable, "-m", "pytest", *extra], cwd=root)


def _report_simple(args, summary: dict, text: str) -> None:
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(text)
    if args.json:
        print(orjson.dumps(summary).decode())


COMMANDS = {
    "run": cmd_run,
    "demo": cmd_demo,
    "replay": cmd_replay,
    "record": cmd_record,
    "import-lobster": cmd_import_lobster,
    "sim-check": cmd_sim_check,
    "calibrate": cmd_calibrate,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "test":
        return cmd_test(args, None)
    configure(json_logs=args.log_json, level=args.log_level)
    try:
        config = load_config(args.config, args.overrides)
        return COMMANDS[args.command](args, config)
    except ChimeraError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"chimera: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("chimera: interrupted\n")
        return 130
    except (OSError, ValueError) as exc:
        if args.debug:
            raise
        get_logger().error("unexpected_error", error=str(exc), kind=type(exc).__name__)
        sys.stderr.write(f"chimera: error: {type(exc).__name__}: {exc}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
