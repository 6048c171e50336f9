"""``run``, ``demo`` and ``record``: live feeds (the market simulator, or the zero-intelligence feed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.app import arguments
from engine.app.commands.common import add_format_option, pipeline_command, progress_bar, report_simple
from engine.config import Config
from engine.errors import UsageError

DEFAULT_DEMO_SYMBOLS = ["AAPL", "NVDA", "TSLA"]


def register(sub, common, reporting) -> dict:
    run = sub.add_parser("run", parents=[common, reporting], help="live simulation of several symbols")
    _live_options(run, None)
    run.add_argument("--speed", type=arguments.speed, default=argparse.SUPPRESS,
                     help="'max' or a multiple of real time (default: [run] speed)")
    run.add_argument("--no-ml", action="store_true", help="score signals without models")
    run.add_argument("--db", metavar="PATH", help="SQLite file (default: [store] path)")
    run.add_argument("--record", metavar="TAPE", help="also record the feed to this tape")

    record = sub.add_parser("record", parents=[common, reporting], help="record a live feed to a tape")
    _live_options(record, None)
    record.add_argument("--out", required=True, metavar="TAPE",
                        help="output tape (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)")
    add_format_option(record)

    demo = sub.add_parser("demo", parents=[common, reporting], help="multi-symbol simulation on built-in defaults")
    demo.add_argument("--duration", type=arguments.positive, default=300.0, help="seconds of market time (default 300)")
    demo.add_argument("--db", metavar="PATH", default="chimera-demo.db")
    demo.add_argument("--no-ml", action="store_true",
                      help="run without models (default: a small cached model set, trained on first use)")
    return {"run": cmd_run, "record": cmd_record, "demo": cmd_demo}


def _live_options(parser: argparse.ArgumentParser, duration_default: float | None) -> None:
    parser.add_argument("--symbol", type=arguments.symbols, help="comma-separated symbols (default: [run] symbols)")
    parser.add_argument("--duration", type=arguments.positive, default=duration_default,
                        help="seconds of market time to simulate (default: [run] duration_s)")
    parser.add_argument("--seed", type=int, help="master seed (default: [run] seed)")
    parser.add_argument("--feed", choices=["simulator", "zero_intelligence"], help="live feed (default: [run] feed)")
    parser.add_argument("--scenario", metavar="NAME|PATH",
                        help="plant a scenario: a preset name (e.g. vacuum, iceberg_defense) or a scenario TOML file; "
                             "its symbols and duration apply unless --symbol/--duration are given")


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

    if config.execution.venue == "simulator":  # our orders enter its matching engine: it waits for the pipeline
        return MarketSimulator(symbols, config, seed, duration, scenario=scenario, gated=True,
                               gate_step_ns=int(config.execution.simulator_gate_us * 1000))
    return MarketSimulator(symbols, config, seed, duration, scenario=scenario)


def cmd_run(args, config: Config) -> int:
    symbols, seed, duration, feed = _live_setup(args, config)
    speed = args.speed if hasattr(args, "speed") else arguments.speed(str(config.run.speed))
    if args.record:
        from feeds.tape import RecordingFeed

        feed = RecordingFeed(feed, args.record, source=f"chimera run ({type(feed).__name__})",
                             meta={"seed": seed, "config_hash": config.hash(), "symbols": symbols},
                             created_at=_session_start(feed))
    return pipeline_command(args, config, feed, type(feed).__name__, seed, args.db or config.store.path,
                             speed, None, duration)


def cmd_demo(args, config: Config) -> int:
    seed = config.run.seed
    feed = _live_feed(config, DEFAULT_DEMO_SYMBOLS, seed, args.duration, config.run.feed)
    if not args.no_ml:
        import structlog

        from engine.app.commands.demo_models import ensure_demo_models

        with progress_bar(args, remaining=False) as progress:
            demo = ensure_demo_models(config, args.db, progress)
        structlog.get_logger("chimera.demo").info("demo models", **demo)
    return pipeline_command(args, config, feed, type(feed).__name__, seed, args.db, None, None, args.duration)


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
                   created_at=_session_start(feed), format=args.format)
    summary = {"command": "record", "out": args.out, "events": count, "symbols": symbols, "seed": seed,
               "duration_s": duration}
    report_simple(args, summary, f"recorded {count:,} events of {', '.join(symbols)} to {args.out}")
    return 0
