"""``score-detectors``: how often each detector is right, against the simulator's planted truth or
against a LOBSTER day's real hidden executions (engine/detectors/scoring.py has the definitions).

The standard pack is every scenario preset for each of ``--seeds`` seeds, plus ``--background``
background sessions (TSLA and AAPL, ``--minutes`` long, with the simulator's random episodes). Each
session's market events run through one market stage per instrument with the configured detectors
(``[detectors]``); the truth labels go only to the scorer.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
from rich.markup import escape
from rich.table import Table

from engine.app import arguments
from engine.app.commands.common import progress_bar
from engine.book import OrderBook
from engine.config import Config
from engine.detectors.base import DetectorContext, profile_bin
from engine.detectors.scoring import (
    DetectorScore,
    flag_every_hidden_execution,
    hidden_episodes,
    hidden_score,
    score_session,
)
from engine.errors import UsageError
from engine.events import Detection, Trade, TruthLabel
from engine.market import MarketState
from engine.pipeline.wiring import market_detectors


def register(sub, common, reporting) -> dict:
    score = sub.add_parser("score-detectors", parents=[common, reporting],
                           help="precision and recall of each detector against planted truth or real hidden executions")
    score.add_argument("--seeds", type=int, default=20, help="seeds per scenario preset (default 20)")
    score.add_argument("--scenario", action="append", metavar="NAME", help="only this preset (repeatable)")
    score.add_argument("--background", type=int, default=4, help="background sessions (default 4)")
    score.add_argument("--minutes", type=arguments.positive, default=30.0,
                       help="length of a background session in simulated minutes (default 30)")
    score.add_argument("--lobster", metavar="MESSAGE_CSV",
                       help="score the hidden-liquidity detector on this LOBSTER day's hidden executions instead")
    return {"score-detectors": cmd_score_detectors}


def cmd_score_detectors(args, config: Config) -> int:
    if args.lobster:
        return _score_lobster(args, config)
    from feeds.simulator.scenarios import list_presets

    presets = args.scenario or list_presets()
    unknown = sorted(set(presets) - set(list_presets()))
    if unknown:
        raise UsageError(f"--scenario {', '.join(unknown)}: no such preset ({', '.join(list_presets())})")
    if args.seeds < 1 or args.background < 0:
        raise UsageError("--seeds must be >= 1 and --background >= 0")
    sessions = [(name, seed) for name in presets for seed in range(1, args.seeds + 1)]
    sessions += [("background", seed) for seed in range(1, args.background + 1)]
    scores: dict[str, DetectorScore] = {}
    with progress_bar(args) as progress:
        task = progress.add_task("score-detectors", total=len(sessions)) if progress else None
        for name, seed in sessions:
            detections, labels, bins, hidden = _session(config, name, seed, args.minutes * 60)
            score_session(scores, detections, labels, bins.__getitem__, hidden)
            if progress:
                progress.advance(task)
    rows = [score.as_dict() for score in scores.values()]
    summary = {"command": "score-detectors", "sessions": len(sessions), "seeds": args.seeds,
               "presets": presets, "background": args.background, "detectors": rows}
    _emit(args, summary, _table(rows))
    return 0


def _session(config: Config, name: str, seed: int, background_s: float):
    from feeds.simulator import MarketSimulator
    from feeds.simulator.scenarios import load_preset

    # complete truth: the natural VACUUM and ABSORPTION labels (off in other runs: they double the
    # simulator's CPU time) are on for scoring, whatever the configuration says
    config = msgspec.structs.replace(config, simulator=msgspec.structs.replace(
        config.simulator, natural_vacuum_labels=True, natural_absorption_labels=True))
    if name == "background":
        sim = MarketSimulator(["TSLA", "AAPL"], config, seed=seed, duration_s=background_s)
    else:
        scenario = load_preset(name)
        sim = MarketSimulator(scenario.spec.symbols, config, seed=seed, duration_s=scenario.spec.duration_s,
                              scenario=scenario)
    instruments = sim.instruments()
    markets = {d.instrument_id: _market(d, config) for d in instruments}
    bins = {d.instrument_id: profile_bin(d) for d in instruments}  # labels are planted on the profile's bin
    labels: list[TruthLabel] = []
    hidden: list[Trade] = []
    batch: dict[int, list] = {iid: [] for iid in markets}
    detections: list[Detection] = []
    for ev in sim.events():
        if type(ev) is TruthLabel:
            labels.append(ev)
            continue
        if type(ev) is Trade and ev.hidden:
            hidden.append(ev)
        lane = batch[ev.instrument_id]
        lane.append(ev)
        if len(lane) >= 4096:
            detections += _detections(markets[ev.instrument_id].apply(lane))
            lane.clear()
    for iid, lane in batch.items():
        detections += _detections(markets[iid].apply(lane))
    return detections, labels, bins, hidden


def _market(instrument, config: Config) -> MarketState:
    book = OrderBook(instrument.instrument_id, config.book.view_levels)
    market = MarketState(instrument, book)
    context = DetectorContext(instrument, book, market.detected, profile_bin(instrument, config.detectors.bin_ticks))
    for listener in market_detectors(context, config):
        market.add(listener)
    return market


def _detections(samples) -> list[Detection]:
    return [d for s in samples for d in s.detections]


def _score_lobster(args, config: Config) -> int:
    from feeds.lobster import LobsterFeed

    if not Path(args.lobster).is_file():
        raise UsageError(f"--lobster {args.lobster}: no such file")
    feed = LobsterFeed(args.lobster)  # with its orderbook file when present: the book a public feed shows
    (instrument,) = feed.instruments()
    events = list(feed.events())
    market = _market(instrument, config)
    found = [d for d in _detections(market.apply(events)) if type(d).__name__ == "IcebergDetection"]
    episodes = hidden_episodes(events)
    ours = hidden_score(episodes, [(d.seq, d.side, d.price_lo) for d in found])
    baseline = hidden_score(episodes, flag_every_hidden_execution(events))
    rows = [{"detector": "hidden_liquidity", **ours},
            {"detector": "baseline: flag every hidden execution", **baseline}]
    summary = {"command": "score-detectors", "lobster": args.lobster, "detectors": rows}
    table = Table(title=f"Hidden liquidity on {escape(Path(args.lobster).name)}")
    for column in ("detector", "precision", "recall", "episodes", "detections"):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for row in rows:
        table.add_row(escape(row["detector"]), *(_fmt(row[k]) for k in ("precision", "recall", "episodes",
                                                                         "detections")))
    _emit(args, summary, table)
    return 0


def _table(rows: list[dict]) -> Table:
    table = Table(title="Detectors against planted truth")
    columns = ("detector", "precision", "recall", "recall_planted", "matched", "missed", "false", "delay_ms_p50",
               "target")
    for column in columns:
        table.add_column(column, justify="left" if column == "detector" else "right")
    for row in rows:
        target = (f"R >= {row['target_recall']}, P >= {row['target_precision']}"
                  if row["target_recall"] is not None else "-")
        table.add_row(row["detector"], *(_fmt(row[k]) for k in columns[1:-1]), target)
    return table


def _fmt(value) -> str:
    return "-" if value is None else f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"


def _emit(args, summary: dict, table: Table) -> None:
    from engine.app.report import console

    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if args.json:
        print(orjson.dumps(summary).decode())
        return
    console().print(table)
