"""``sim-check`` and ``calibrate``: the simulator's stylized facts, alone or beside a LOBSTER day."""

from __future__ import annotations

from pathlib import Path

import orjson

from engine.app.arguments import positive
from engine.config import Config
from engine.errors import UsageError


def register(sub, common, reporting) -> dict:
    check = sub.add_parser("sim-check", parents=[common, reporting],
                           help="stylized-facts table of the market simulator")
    check.add_argument("--minutes", type=positive, default=120.0, help="simulated minutes (default 120)")
    check.add_argument("--profile", choices=["large_tick", "small_tick"], help="three instruments of one profile")
    check.add_argument("--seed", type=int)
    calibrate = sub.add_parser("calibrate", parents=[common, reporting],
                               help="the same statistics on a LOBSTER day beside the simulator over several seeds")
    calibrate.add_argument("--lobster", metavar="MESSAGE_FILE",
                           help="a LOBSTER message file, its orderbook file beside it (default: the AMZN sample)")
    calibrate.add_argument("--level", type=int, choices=[1, 5], default=5,
                           help="levels of the bundled AMZN sample when --lobster is not given (default 5)")
    calibrate.add_argument("--profile", choices=["large_tick", "small_tick"], default="small_tick",
                           help="profile of the simulated instruments (default small_tick)")
    calibrate.add_argument("--seeds", type=int, default=5, help="simulator sessions, seeds 1..N (default 5)")
    calibrate.add_argument("--minutes", type=positive, help="simulated minutes (default: the real day's length)")
    return {"sim-check": cmd_sim_check, "calibrate": cmd_calibrate}


def cmd_sim_check(args, config: Config) -> int:
    from feeds.simulator.check import render_table, results_to_json, run_sim_check

    seed = config.run.seed if args.seed is None else args.seed
    results = run_sim_check(config, minutes=args.minutes, profile=args.profile, seed=seed)
    rows = results_to_json(results)
    summary = {"command": "sim-check", "seed": seed, "minutes": args.minutes, "profile": args.profile,
               "checks": rows, "all_passed": all(r["pass"] is not False for r in rows)}
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    from engine.app.report import console

    console().print(render_table(results))
    if args.json:
        print(orjson.dumps(summary).decode())
    return 0 if summary["all_passed"] else 1


def cmd_calibrate(args, config: Config) -> int:
    from feeds.simulator.calibration import calibrate, render_calibration

    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.lobster is not None and not Path(args.lobster).is_file():
        raise UsageError(f"--lobster {args.lobster}: no such file")
    seeds = list(range(1, args.seeds + 1))
    rows = calibrate(config, message_path=args.lobster, level=args.level, profile=args.profile, seeds=seeds,
                     minutes=args.minutes)
    summary = {"command": "calibrate", "lobster": args.lobster, "level": None if args.lobster else args.level,
               "profile": args.profile, "seeds": seeds, "minutes": args.minutes,
               "statistics": [r.as_dict() for r in rows]}
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    from engine.app.report import console

    name = Path(args.lobster).name if args.lobster else f"AMZN sample, {args.level} level(s)"
    console().print(render_calibration(rows, f"Calibration: {name} vs {args.profile} simulator, seeds 1-{args.seeds}"))
    if args.json:
        print(orjson.dumps(summary).decode())
    return 0
