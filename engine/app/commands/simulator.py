"""``sim-check`` and ``calibrate``: the simulator's stylized facts, alone or beside a LOBSTER day."""

from __future__ import annotations

from pathlib import Path

import orjson

from engine.app.arguments import positive
from engine.config import Config


def register(sub, common, reporting) -> dict:
    check = sub.add_parser("sim-check", parents=[common, reporting],
                           help="stylized-facts table of the market simulator")
    check.add_argument("--minutes", type=positive, default=120.0, help="simulated minutes (default 120)")
    check.add_argument("--profile", choices=["large_tick", "small_tick"], help="three instruments of one profile")
    check.add_argument("--seed", type=int)
    calibrate = sub.add_parser("calibrate", parents=[common, reporting],
                               help="the same statistics on the AMZN LOBSTER day beside the small_tick simulator")
    calibrate.add_argument("--level", type=int, choices=[1, 5], default=5)
    calibrate.add_argument("--minutes", type=positive, default=120.0)
    calibrate.add_argument("--seed", type=int)
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
    from feeds.simulator.check import calibrate, render_calibration

    seed = config.run.seed if args.seed is None else args.seed
    rows = calibrate(level=args.level, config=config, seed=seed, minutes=args.minutes)
    summary = {"command": "calibrate", "level": args.level, "seed": seed, "rows": [r.as_dict() for r in rows]}
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    from engine.app.report import console

    console().print(render_calibration(rows))
    if args.json:
        print(orjson.dumps(summary).decode())
    return 0
