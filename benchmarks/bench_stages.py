"""Where an event's time goes: µs per event of each stage of one lane, as the pipeline runs it.

The AMZN level-5 day is imported to a tape and decoded once (decoding is timed on its own); then the
lane the pipeline builds (``build_lane``: every accumulator, every enabled detector, every per-sample
feature, the strategies) is driven batch by batch exactly as ``run_reference`` drives it (router
split, each stage's ``apply`` then its records taken), and each stage's ``apply`` is timed per batch.

The market stage is also split by running it again with fewer listeners (same events, same batches):
- the book as the pipeline uses it: ``OrderBook.update`` per event, bar closes, a ``BookView`` per
  sample, the trades rows (a market stage with no accumulator and no detector);
- plus the accumulators (per-event hooks and their per-sample values);
- plus the detectors (= the market stage of the pipeline).
Each part's share is the difference between consecutive variants, so the parts add up to the stage.
Every variant is the best of ``REPEATS`` runs (CPU time of this process).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import main, result
from engine.book import OrderBook
from engine.config import load_config
from engine.detectors.base import DetectorContext, profile_bin
from engine.pipeline.lanes import MarketStage
from engine.pipeline.router import Router
from engine.pipeline.wiring import build_lane, lane_strategies, market_accumulators, market_detectors
from feeds.base import batched
from feeds.lobster import import_lobster, locate_sample
from feeds.tape import TapeFeed

REPEATS = 2


def drive(lane_stages: list[tuple[str, object]], router: Router, iid: int, events: list, batch_size: int
          ) -> dict[str, float]:
    """Run the events through the stages as ``run_reference`` does; CPU seconds per stage."""
    clock = time.process_time
    cost = {name: 0.0 for name, _ in lane_stages}
    cost["route"] = 0.0
    for batch in batched(iter(events), batch_size):
        start = clock()
        per_lane, _ = router.split(batch)
        cost["route"] += clock() - start
        out = per_lane[iid]
        for name, core in lane_stages:
            start = clock()
            out = core.apply(out)
            take = getattr(core, "take_records", None)
            if take is not None:
                take()
            cost[name] += clock() - start
    for name, core in lane_stages:
        start = clock()
        core.flush()
        take = getattr(core, "take_records", None)
        if take is not None:
            take()
        cost[name] += clock() - start
    return cost


def market_variant(instrument, config, with_accumulators: bool, with_detectors: bool):
    """The pipeline's lane with its market stage stripped to the given listeners (market stage only)."""
    book = OrderBook(instrument.instrument_id, view_levels=config.book.view_levels,
                     depth_windows=tuple(sorted(config.features.depth_ticks)))
    fresh = MarketStage(instrument, book, config.store.sample_interval_ms * 1_000_000,
                        config.store.book_sample_levels)
    context = DetectorContext(instrument, fresh.book, fresh.detected,
                              profile_bin(instrument, config.detectors.bin_ticks))  # as build_lane
    listeners = (market_accumulators(context, config) if with_accumulators else []) + (
        market_detectors(context, config) if with_detectors else [])
    for listener in listeners:
        fresh.add(listener)
    return [("market", fresh)]


def best(make, router, iid, events, batch_size) -> dict[str, float]:
    runs = [drive(make(), router, iid, events, batch_size) for _ in range(REPEATS)]
    return min(runs, key=lambda cost: sum(cost.values()))


def measure(tape: str) -> list[dict]:
    config = load_config()
    feed = TapeFeed(tape)
    (instrument,) = feed.instruments()
    iid = instrument.instrument_id
    decode = float("inf")
    events: list = []
    for _ in range(REPEATS):
        start = time.process_time()
        events = list(TapeFeed(tape).events())
        decode = min(decode, time.process_time() - start)
    n = len(events)
    router = Router([iid])
    size = config.pipeline.batch_size
    strategies = lane_strategies(config, None)  # the strategies [strategies] configures, as the pipeline
    lane = best(lambda: build_lane(instrument, config, strategies).stages, router, iid, events, size)
    book = best(lambda: market_variant(instrument, config, False, False), router, iid, events, size)["market"]
    accumulators = best(lambda: market_variant(instrument, config, True, False), router, iid, events, size)["market"]
    parts = [
        ("tape decode", decode),
        ("router split", lane["route"]),
        ("market stage: book (update per event, view per sample)", book),
        ("market stage: accumulators", accumulators - book),
        ("market stage: detectors", lane["market"] - accumulators),
        ("feature stage (per sample)", lane["features"]),
        ("signal stage", lane["signals"]),
    ]
    total = sum(seconds for _, seconds in parts)
    rows = [result(f"per stage: {name}", round(seconds / n * 1e6, 2), "µs/event", None, higher_is_better=False,
                   note=f"{seconds / total:.0%} of the cores' time") for name, seconds in parts]
    rows.append(result("cores per event, all stages above (AMZN L5 day)", round(total / n * 1e6, 2), "µs/event",
                       None, higher_is_better=False, note=f"{n / total:,.0f} events/s, {n:,} events, CPU time"))
    return rows


def run() -> list[dict]:
    if "--tape" in sys.argv:
        return measure(sys.argv[sys.argv.index("--tape") + 1])
    message, orderbook = locate_sample(5)
    with tempfile.TemporaryDirectory() as tmp:
        tape = Path(tmp) / "amzn5.jsonl.gz"
        import_lobster(message, orderbook, tape)
        return measure(str(tape))


if __name__ == "__main__":
    main(run)
