"""``calibrate-microprice``: estimate F4's micro-price table offline from a tape or a LOBSTER day
(engine/features/microprice.py has the method) and write it where ``[features] microprice_table``
can load it."""

from __future__ import annotations

from pathlib import Path

import orjson

from engine.app.arguments import positive
from engine.config import Config
from engine.errors import UsageError
from engine.features.microprice import book_states, estimate


def register(sub, common, reporting) -> dict:
    calibrate = sub.add_parser("calibrate-microprice", parents=[common, reporting],
                               help="estimate the F4 micro-price table from a tape or a LOBSTER message file")
    calibrate.add_argument("source", metavar="TAPE|LOBSTER",
                           help="tape (.jsonl[.gz|.zst]) or LOBSTER *_message_N.csv (its first instrument)")
    calibrate.add_argument("--out", required=True, metavar="FILE", help="the table (JSON) to write")
    calibrate.add_argument("--dt", type=positive, default=1.0, help="seconds between sampled book states (1)")
    calibrate.add_argument("--buckets", type=int, default=10, help="imbalance buckets n (10)")
    calibrate.add_argument("--max-spread", type=int, default=3, help="spreads 1..S_max ticks in the table (3)")
    calibrate.add_argument("--max-jump", type=int, default=1,
                           help="mid changes up to this many ticks are kept, larger ones dropped (1)")
    return {"calibrate-microprice": cmd_calibrate_microprice}


def cmd_calibrate_microprice(args, config: Config) -> int:
    from feeds.merge import open_feed

    for flag, value in (("--buckets", args.buckets), ("--max-spread", args.max_spread), ("--max-jump", args.max_jump)):
        if value < 1:
            raise UsageError(f"{flag} must be >= 1 (got {value})")
    if not Path(args.source).is_file():
        raise UsageError(f"{args.source}: no such file")
    feed = open_feed(args.source)
    states = book_states(feed.events(), args.dt)
    table, used = estimate(states, args.buckets, args.max_spread, args.max_jump)
    if used == 0:
        raise UsageError(f"{args.source}: no two consecutive book states with a spread of 1..{args.max_spread} "
                         f"ticks {args.dt} s apart; nothing to estimate (try --max-spread or --dt)")
    facts = {"samples": len(states), "transitions": used, "dt_s": args.dt, "max_jump_ticks": args.max_jump,
             "source": Path(args.source).name}
    Path(args.out).write_bytes(table.to_json(**facts))
    summary = {"command": "calibrate-microprice", "out": args.out, **facts,
               "states_seen": sum(v is not None for row in table.adjustments for v in row)}
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if args.json:
        print(orjson.dumps(summary).decode())
    else:
        from engine.app.report import console

        console().print(f"micro-price table: {summary['states_seen']} states from {used:,} transitions "
                        f"({len(states):,} samples {args.dt} s apart) written to {args.out}")
    return 0
