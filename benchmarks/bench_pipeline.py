"""Full replay of the AMZN level-5 LOBSTER day through the asyncio pipeline with persistence.

Measured in a fresh process so the peak RSS is the replay's own. The figure includes reading and
reconciling the LOBSTER files, the book, features, signals, scoring, risk, execution and the
SQLite writer (WAL, batched), exactly as ``chimera replay`` runs it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.common import main, peak_rss_mb, result
from engine import store
from engine.config import load_config
from engine.pipeline import Pipeline
from feeds.lobster import LobsterFeed, locate_sample


def run() -> list[dict]:
    message, _ = locate_sample(5)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        store.connect(db).close()
        pipeline = Pipeline(LobsterFeed(message), load_config(), db, "bench")
        start = time.perf_counter()
        stats = asyncio.run(pipeline.run())
        wall = time.perf_counter() - start
        conn = store.connect(db)
        rows = sum(store.table_counts(conn, "bench").values())
        conn.close()
    return [
        result("pipeline replay with persistence (AMZN L5 day)", round(stats.events / wall), "events/s", 150_000,
               note=f"{stats.events:,} events in {wall:.2f} s, {rows:,} DB rows"),
        result("pipeline replay peak RSS", round(peak_rss_mb(), 1), "MiB", None, higher_is_better=False),
    ]


if __name__ == "__main__":
    main(run)
