"""``daemon``: the engine as a long-running service (HTTP API, dashboard, metrics; engine/app/daemon/)."""

from __future__ import annotations

import argparse
import asyncio
import os

from engine.app.arguments import symbols
from engine.config import Config, load_config
from engine.errors import UsageError


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be an integer in [0, 65535], got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be in [0, 65535], got {value}")
    return value


def register(sub, common, reporting) -> dict:
    daemon = sub.add_parser("daemon", parents=[common],
                            help="run the engine as a service: HTTP API, live dashboard, /metrics, until SIGTERM")
    daemon.add_argument("--host", help="bind address (default: [daemon] host, loopback)")
    daemon.add_argument("--port", type=_port, help="TCP port, 0 for a free one (default: [daemon] port)")
    daemon.add_argument("--db", metavar="PATH", help="SQLite file (default: [store] path)")
    daemon.add_argument("--symbol", type=symbols, help="simulated symbols (default: [run] symbols)")
    daemon.add_argument("--tape", nargs="+", metavar="FILE",
                        help="replay these tapes/LOBSTER/DBN files in a loop instead of the simulator")
    daemon.add_argument("--no-ml", action="store_true",
                        help="load no model: confidence is S_raw*C (default: the registry's champions)")
    daemon.add_argument("--champions", action="store_true",
                        help="load the registry's champions, not the model versions the daemon ran before a restart")
    return {"daemon": cmd_daemon}


def cmd_daemon(args, config: Config) -> int:
    from engine.app.daemon.service import Daemon
    from engine.app.runner import LOOP_FACTORY

    if args.symbol:
        config = load_config(args.config, [*args.overrides, f"run.symbols={_toml_list(args.symbol)}"])
    token = os.environ.get(config.daemon.token_env) or None
    reload = (lambda: load_config(args.config, args.overrides)) if args.config else None
    daemon = Daemon(config, args.db or config.store.path, _feeds(args, config), token, reload, args.host, args.port,
                    no_ml=args.no_ml, real_data=bool(args.tape), champions=args.champions)
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        try:
            return runner.run(daemon.serve())
        except asyncio.CancelledError:
            return 130


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _feeds(args, config: Config):
    """``session number -> (feed, source, seed)``: the simulator, or the tapes again each session."""
    if args.tape:
        from feeds.merge import open_feeds

        open_feeds(args.tape)  # refuse a missing or unreadable file before anything runs

        def tapes(_session: int):
            return open_feeds(args.tape), ",".join(args.tape), None

        return tapes
    if config.run.feed != "simulator":
        raise UsageError(f"[run] feed = {config.run.feed!r}: the daemon runs the simulator or --tape files")
    from feeds.simulator import MarketSimulator

    def simulator(session: int):
        seed = config.run.seed + session
        feed = MarketSimulator(list(config.run.symbols), config, seed, config.daemon.session_s)
        return feed, f"MarketSimulator(session {session})", seed

    return simulator
