"""The generic stage coroutine: it measures its input queue's depth and its lag behind the feed."""

from __future__ import annotations

import asyncio

import numpy as np

from engine.pipeline.stages import LAG_WINDOW, FeedMark, StageStats, run_stage
from engine.records import END


class Doubler:
    def apply(self, batch: list) -> list:
        return [x * 2 for x in batch]

    def flush(self) -> list:
        return []


async def test_depth_is_the_deepest_queue_seen_and_lag_is_feed_time_minus_batch_time():
    """Three batches stamped 10, 20, 30 and END queued, the feed at 30: depth 4 at the first take, lags 20, 10, 0."""
    q_in: asyncio.Queue = asyncio.Queue(8)
    q_out: asyncio.Queue = asyncio.Queue(8)
    for ts in (10, 20, 30):
        q_in.put_nowait(((ts, 1), [ts]))
    q_in.put_nowait(END)
    feed, stats = FeedMark(), StageStats("x")
    feed.ts = 30
    await run_stage(Doubler(), q_in, q_out, None, stats, feed)
    assert stats.max_depth == 4 and list(stats.lags) == [20, 10, 0]
    assert [q_out.get_nowait() for _ in range(3)] == [((10, 1), [20]), ((20, 1), [40]), ((30, 1), [60])]
    assert q_out.get_nowait() is END


def test_the_lag_window_keeps_the_latest_samples():
    """Past LAG_WINDOW samples the oldest are overwritten, so the p99 follows the recent lag."""
    stats = StageStats("x")
    for lag in range(LAG_WINDOW + 100):
        stats.observe(0, lag)
    assert len(stats.lags) == LAG_WINDOW
    assert min(stats.lags) == 100 and max(stats.lags) == LAG_WINDOW + 99
    assert np.percentile(stats.lags, 99) > LAG_WINDOW * 0.99
