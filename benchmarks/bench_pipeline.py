"""Full replay of the AMZN level-5 LOBSTER day through the asyncio pipeline with persistence.

Two sources, each measured in a fresh process so the peak RSS is the replay's own:
- the tape written by ``chimera import-lobster`` (import once, replay many times: the target), and
- the LOBSTER CSV files directly (parsing and reconciliation against the orderbook file included).
The figure covers the book, every accumulator and per-sample feature, every detector (the default
``[detectors] enabled`` lists them all), signals, scoring, risk, execution and the SQLite writer
(WAL, batched), exactly as ``chimera replay`` runs them.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit, peak_rss_mb, result, run_isolated
from engine import store
from engine.app.runner import LOOP_FACTORY
from engine.config import load_config
from engine.pipeline import Pipeline, run_reference
from feeds.lobster import LobsterFeed, import_lobster, locate_sample
from feeds.tape import TapeFeed


def replay(source: str) -> list[dict]:
    """Replay the day in this process from a tape path, or from the CSV files when ``source`` is "csv"."""
    with tempfile.TemporaryDirectory() as tmp:
        feed = LobsterFeed(locate_sample(5)[0]) if source == "csv" else TapeFeed(source)
        db = str(Path(tmp) / "bench.db")
        store.connect(db).close()
        config = load_config()
        pipeline = Pipeline(feed, config, db, "bench")
        with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:  # the loop `chimera replay` uses
            start = time.perf_counter()
            stats = runner.run(pipeline.run())
            wall = time.perf_counter() - start
        conn = store.connect(db)
        rows = sum(store.table_counts(conn, "bench").values())
        conn.close()
    label = "LOBSTER CSV" if source == "csv" else "imported tape"
    return [
        result(f"pipeline replay with persistence, every feature and detector on, {label} (AMZN L5 day)",
               round(stats.events / wall),
               "events/s", None if source == "csv" else 150_000,
               note=f"{stats.events:,} events in {wall:.2f} s, {rows:,} DB rows, "
                    f"{len(config.detectors.enabled)} detectors"),
        result(f"pipeline replay peak RSS, {label}", round(peak_rss_mb(), 1), "MiB", None, higher_is_better=False),
    ]


def reference(tape: str) -> list[dict]:
    """The same cores in a plain loop (``run_reference``): no event loop, no queues, no SQLite."""
    events = sum(1 for _ in TapeFeed(tape).events())
    start = time.perf_counter()
    _, records = run_reference(TapeFeed(tape), load_config())
    wall = time.perf_counter() - start
    return [result("cores alone (run_reference: no event loop, no SQLite), imported tape", round(events / wall),
                   "events/s", None, note=f"{events:,} events in {wall:.2f} s, {len(records):,} rows not written")]


def run() -> list[dict]:
    """Import the day to a tape here, then replay the tape and the CSV files in fresh processes."""
    message, orderbook = locate_sample(5)
    with tempfile.TemporaryDirectory() as tmp:
        tape = Path(tmp) / "amzn5.jsonl.gz"
        import_lobster(message, orderbook, tape)
        from_tape = run_isolated("benchmarks.bench_pipeline", "--source", str(tape))
        cores = run_isolated("benchmarks.bench_pipeline", "--reference", str(tape))
    return from_tape + cores + run_isolated("benchmarks.bench_pipeline", "--source", "csv")


if __name__ == "__main__":
    if "--reference" in sys.argv:
        emit(reference(sys.argv[sys.argv.index("--reference") + 1]))
    elif "--source" in sys.argv:
        emit(replay(sys.argv[sys.argv.index("--source") + 1]))
    else:
        for row in run():
            print(f"{row['name']}: {row['value']:,} {row['unit']} {row['note']}")
