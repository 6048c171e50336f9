"""The runner: the same rows on uvloop and on the standard asyncio loop (uvloop is absent on Windows),
and per-stage queue depth and lag in the summary."""

from __future__ import annotations

import asyncio

import pytest

from engine import store
from engine.app.runner import LOOP_FACTORY, RunRequest, execute
from engine.config import load_config
from engine.pipeline import RunOptions
from engine.records import TABLES
from feeds.zero_intelligence import ZeroIntelligenceFeed


def run_on(loop_factory, db) -> tuple[dict, dict]:
    config = load_config(overrides=["pipeline.queue_size=2", "pipeline.batch_size=64"])
    feed = ZeroIntelligenceFeed(["AAPL", "TSLA"], config.instruments, seed=3, duration_s=60)
    request = RunRequest("run", feed, config, str(db), "zi", 3, RunOptions(), loop_factory=loop_factory)
    summary = execute(request)
    conn = store.connect(db, readonly=True)
    try:
        return summary, {table: store.fetch_rows(conn, table, summary["run_id"]) for table in TABLES}
    finally:
        conn.close()


@pytest.mark.skipif(LOOP_FACTORY is None, reason="uvloop is not installed here")
def test_uvloop_and_the_standard_loop_persist_identical_rows(tmp_path):
    """A run on asyncio's own loop stores exactly the rows of the same run on uvloop."""
    _, on_uvloop = run_on(LOOP_FACTORY, tmp_path / "uv.db")
    summary, on_asyncio = run_on(asyncio.new_event_loop, tmp_path / "std.db")
    assert summary["status"] == "completed" and sum(map(len, on_asyncio.values())) > 1000
    assert on_asyncio == on_uvloop


def test_summary_reports_each_stages_deepest_queue_and_p99_lag(tmp_path):
    """Every stage has a max queue depth within the queue bound; lane and portfolio stages have a p99 lag."""
    summary, _ = run_on(LOOP_FACTORY, tmp_path / "d.db")
    stages = summary["stages"]
    assert set(stages) >= {"market", "features", "signals", "merge", "scoring", "risk", "execution"}
    for name, figures in stages.items():
        assert 0 <= figures["queue_depth_max"] <= 2, name  # bounded queues of 2 items
    span_ms = summary["event_time_seconds"] * 1000
    for name in ("market", "features", "signals", "scoring", "risk", "execution"):
        assert 0 <= stages[name]["lag_ms_p99"] <= span_ms, name
