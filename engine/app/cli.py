"""The ``chimera`` command line (also ``python main.py``).

Every command has ``--help``; every reporting command has ``--json`` (one JSON object on the last
line of stdout) and ``--summary-json PATH``. Errors print one line and exit non-zero: 2 for bad
arguments, configuration or input files, 1 for a failed run, 3 for unexplained reconciliation
mismatches; ``--debug`` shows the traceback. The commands live in ``engine/app/commands/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.app.arguments import Parser, common_options, reporting_options
from engine.app.commands import (
    daemon,
    dbn,
    detectors,
    live,
    microprice,
    models,
    optimize,
    replay,
    report,
    runs,
    signals,
    simulator,
    train,
)
from engine.config import load_config
from engine.errors import ChimeraError, UsageError
from engine.logs import configure, get_logger

Handler = Callable[..., int]


def build_parser() -> tuple[Parser, dict[str, Handler]]:
    """The parser of every command and the handler of each."""
    common, reporting = common_options(), reporting_options()
    parser = Parser(prog="chimera", description="Event-driven order-flow trading engine.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    handlers: dict[str, Handler] = {}
    for module in (live, replay, dbn, simulator, runs, models, signals, detectors, microprice, report, daemon,
                   optimize, train):
        handlers.update(module.register(sub, common, reporting))
    sub.add_parser("test", help="run the test suite (pytest); every further argument goes to pytest",
                   add_help=False)
    return parser, handlers


def cmd_test(pytest_args: list[str]) -> int:
    """``chimera test [PYTEST ARGS...]``: pytest in the source checkout, arguments passed through."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests").is_dir():
        raise UsageError("chimera test needs a source checkout (tests/ not found beside the engine package)")
    return subprocess.call([sys.executable, "-m", "pytest", *[a for a in pytest_args if a != "--"]], cwd=root)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["demo"]  # `python main.py` with no command runs the demo, as ./start.sh does
    if argv[0] == "test":
        return cmd_test(argv[1:])
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    configure(json_logs=args.log_json, level=args.log_level)
    try:
        config = load_config(args.config, args.overrides)
        return handlers[args.command](args, config)
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
