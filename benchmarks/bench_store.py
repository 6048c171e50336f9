"""SQLite: batched insert throughput through the real persistence task, and indexed query latency."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from benchmarks.common import main, result
from engine import store
from engine.records import END

ROWS = 500_000
PER_ITEM = 256  # rows per records-queue item, as a stage hands them over
INSTRUMENTS = 4


def _trade_rows() -> list[list[tuple[str, tuple]]]:
    items, item = [], []
    for i in range(ROWS):
        iid = i % INSTRUMENTS
        ts = 1_700_000_000_000_000_000 + i * 1_000_000
        item.append(("trades", (iid, i, ts, ts + 200_000, 10_000 + i % 50, 100, 1 - 2 * (i % 2), i, i, False)))
        if len(item) == PER_ITEM:
            items.append(item)
            item = []
    if item:
        items.append(item)
    return items


async def _write(db: str, items) -> float:
    q: asyncio.Queue = asyncio.Queue(64)
    writer = store.BatchWriter(db, "bench", batch_rows=5000, batch_age_ms=250)
    task = asyncio.create_task(writer.run(q))
    start = time.perf_counter()
    for item in items:
        await q.put(item)
    await q.put(END)
    await task
    return time.perf_counter() - start


POINT_SQL = ("SELECT price, size FROM trades WHERE run_id = ? AND instrument_id = ? AND ts_recv <= ? "
             "ORDER BY ts_recv DESC LIMIT 1")
WINDOW_SQL = ("SELECT seq, price, size FROM trades WHERE run_id = ? AND instrument_id = ? "
              "AND ts_recv BETWEEN ? AND ? ORDER BY ts_recv LIMIT 100")


def _latencies(conn, sql: str, span_ns: int) -> tuple[float, float]:
    """p50 and p99 in ms over 20,000 random queries (after 1,000 warm-up queries)."""
    rng = random.Random(1)
    t0 = 1_700_000_000_000_000_000
    timings = []
    for i in range(21_000):
        ts = t0 + rng.randrange(ROWS) * 1_000_000
        params = ("bench", rng.randrange(INSTRUMENTS), ts) if not span_ns else (
            "bench", rng.randrange(INSTRUMENTS), ts, ts + span_ns)
        begin = time.perf_counter_ns()
        conn.execute(sql, params).fetchall()
        if i >= 1000:
            timings.append(time.perf_counter_ns() - begin)
    timings.sort()
    return round(timings[len(timings) // 2] / 1e6, 4), round(timings[int(len(timings) * 0.99)] / 1e6, 4)


def run() -> list[dict]:
    items = _trade_rows()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        store.connect(db).close()
        wall = asyncio.run(_write(db, items))
        conn = store.connect(db, readonly=True)
        point = _latencies(conn, POINT_SQL, 0)
        window = _latencies(conn, WINDOW_SQL, 400_000_000)
        plan = " ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + POINT_SQL, ("bench", 0, 0)).fetchall())
        conn.close()
    return [
        result("SQLite batched insert (BatchWriter, aiosqlite)", round(ROWS / wall), "rows/s", 200_000,
               note=f"{ROWS:,} trade rows, 5,000-row transactions"),
        result("indexed query p50: last trade of an instrument at time t", point[0], "ms", None,
               higher_is_better=False),
        result("indexed query p99: last trade of an instrument at time t", point[1], "ms", 0.1,
               higher_is_better=False, note=plan),
        result("indexed query p50: 100 trades of an instrument in a time window", window[0], "ms", None,
               higher_is_better=False),
        result("indexed query p99: 100 trades of an instrument in a time window", window[1], "ms", None,
               higher_is_better=False),
    ]


if __name__ == "__main__":
    main(run)
