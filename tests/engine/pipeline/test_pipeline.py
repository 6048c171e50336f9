"""The asyncio pipeline against the synchronous reference path, shutdown and failure behaviour."""

from __future__ import annotations

import asyncio
from itertools import islice

import pytest

from engine import store
from engine.clock import VirtualClock
from engine.config import load_config
from engine.errors import InputError, LaneError
from engine.events import BUY, SELL, OrderAdd, TruthKind, TruthLabel
from engine.pipeline import Pipeline, RunOptions, run_reference
from engine.records import TABLES
from engine.testing import EventBuilder, ListFeed, instrument
from feeds.zero_intelligence import ZeroIntelligenceFeed
from strategies.queue_imbalance import QueueImbalanceProbe

SYMBOLS = ["AAPL", "NVDA", "TSLA"]


def busy_strategies(instrument_def):
    """A probe that fires often, so risk sees rejections (order rate, position limit) as well."""
    return [QueueImbalanceProbe(instrument_def.instrument_id, threshold=0.3, max_spread=50, cooldown_s=0.5)]


def zi_feed(seconds: float = 40.0):
    return ZeroIntelligenceFeed(SYMBOLS, load_config().instruments, seed=11, duration_s=seconds)


def config_with(queue_size: int, batch_size: int):
    return load_config(overrides=[f"pipeline.queue_size={queue_size}", f"pipeline.batch_size={batch_size}",
                                  "risk.max_position=300", "risk.max_orders_per_second=2",
                                  "store.batch_rows=97", "store.sample_interval_ms=2000"])


def all_rows(path, run_id):
    conn = store.connect(path)
    try:
        return {table: store.fetch_rows(conn, table, run_id) for table in TABLES}
    finally:
        conn.close()


def run_pipeline(feed, config, path, run_id="run", options=None):
    store.connect(path).close()
    pipeline = Pipeline(feed, config, str(path), run_id, options or RunOptions(strategies=busy_strategies))
    stats = asyncio.run(pipeline.run())
    return stats, all_rows(path, run_id)


@pytest.fixture(scope="module")
def reference_rows(tmp_path_factory):
    """Rows of the synchronous reference path (no event loop), written with the same store code."""
    path = tmp_path_factory.mktemp("ref") / "ref.db"
    signals, records = run_reference(zi_feed(), config_with(64, 256), RunOptions(strategies=busy_strategies))
    conn = store.connect(path)
    store.write_records(conn, "run", records)
    conn.close()
    return signals, all_rows(path, "run")


@pytest.mark.parametrize(("queue_size", "batch_size"), [(1, 1), (1, 512), (10_000, 1), (10_000, 512)])
def test_rows_identical_for_any_queue_and_batch_size_and_to_reference(tmp_path, reference_rows, queue_size,
                                                                      batch_size):
    """Signals and every persisted row are the same for queue 1/10,000 x batch 1/512 and the reference path."""
    signals, expected = reference_rows
    stats, rows = run_pipeline(zi_feed(), config_with(queue_size, batch_size), tmp_path / "p.db")
    assert stats.signals == len(signals) > 20
    assert [r[0] for r in rows["signals"]] == sorted(s.signal_id for s in signals)
    decisions = {r[14] for r in rows["signals"]}
    assert decisions == {"accepted", "rejected"}  # risk state is exercised in canonical order
    for table in TABLES:
        assert rows[table] == expected[table], table
    assert len(rows["trades"]) > 500 and rows["fills"] and rows["equity"]


def test_truth_labels_reach_only_the_truth_table(tmp_path):
    """TruthLabels are persisted but never reach a lane (the book sees no gap, strategies see nothing)."""
    e = EventBuilder()
    events = [e(OrderAdd, 1, BUY, 100, 5), e(OrderAdd, 2, SELL, 101, 5)]
    label = TruthLabel(0, events[-1].ts_event, events[-1].ts_recv, 0, 0, 1, TruthKind.ICEBERG, BUY, 100, 100,
                       0, 1, {"peak": 5})
    events.append(label)
    events.append(e(OrderAdd, 3, BUY, 99, 5))
    stats, rows = run_pipeline(ListFeed([instrument(0, "X")], events), load_config(), tmp_path / "t.db")
    assert stats.truth_labels == 1
    assert rows["truth_labels"] == [(0, 0, 1, TruthKind.ICEBERG, BUY, 100, 100, 0, 1, '{"peak":5}', 0)]
    assert ("X", "book", "gaps", 0) not in rows["integrity"]  # integrity rows carry instrument ids
    assert (0, "book", "gaps", 0) in rows["integrity"]


class Exploding:
    """A strategy that fails on its 20th feature vector."""

    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def on_features(self, features):
        self.calls += 1
        if self.calls == 20:
            raise ValueError("boom")
        return None


def test_failure_in_one_lane_stops_the_run_naming_the_instrument(tmp_path):
    """An exception in NVDA's lane raises LaneError(NVDA, signals); rows accepted before it are kept."""

    def strategies(d):
        return [Exploding()] if d.symbol == "NVDA" else busy_strategies(d)

    path = tmp_path / "f.db"
    store.connect(path).close()
    pipeline = Pipeline(zi_feed(), config_with(4, 64), str(path), "run", RunOptions(strategies=strategies))
    with pytest.raises(LaneError) as info:
        asyncio.run(pipeline.run())
    assert info.value.instrument == "NVDA" and info.value.stage == "signals"
    assert "boom" in str(info.value)
    conn = store.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM instruments").fetchone()[0] == 3
    conn.close()


def test_duration_stops_the_feed_by_event_time(tmp_path):
    """--duration ends the run after that much event time and says so."""
    stats, rows = run_pipeline(zi_feed(), config_with(16, 64), tmp_path / "d.db",
                               options=RunOptions(strategies=busy_strategies, duration_s=5.0))
    assert stats.stopped_by == "duration"
    assert (stats.last_ts - stats.first_ts) < 5e9
    assert all(r[3] - stats.first_ts < 5e9 for r in rows["trades"])


def test_stop_request_drains_and_commits(tmp_path):
    """A stop request (SIGINT) ends the feed early; everything already routed is processed and saved."""
    path = tmp_path / "s.db"
    store.connect(path).close()
    pipeline = Pipeline(zi_feed(), config_with(2, 32), str(path), "run", RunOptions(strategies=busy_strategies))

    def progress(events, ts):
        if events >= 2000:
            pipeline.request_stop()

    pipeline.options.progress = progress
    stats = asyncio.run(pipeline.run())
    assert stats.stopped_by == "stop_request" and 2000 <= stats.events < 3000
    rows = all_rows(path, "run")
    assert sum(dict(lane.stages)["market"].events for lane in pipeline.lanes) == stats.events
    assert len(rows["trades"]) > 0


def test_paced_replay_waits_on_the_injected_clock_and_changes_no_row(tmp_path, reference_rows):
    """At --speed 10 the pipeline sleeps one tenth of the event span on its clock (virtual here, so no wall
    time passes) and persists exactly the rows of an unpaced run."""
    _, expected = reference_rows
    feed, clock = zi_feed(), VirtualClock()
    store.connect(tmp_path / "paced.db").close()
    pipeline = Pipeline(feed, config_with(64, 256), str(tmp_path / "paced.db"), "run",
                        RunOptions(strategies=busy_strategies, speed=10.0), clock=clock)
    stats = asyncio.run(pipeline.run())
    span_s = (stats.last_ts - stats.first_ts) / 1e9
    assert span_s > 30
    assert span_s / 10 - 0.011 <= clock.slept <= span_s / 10  # paced batches gather events due within 10 ms
    assert all_rows(tmp_path / "paced.db", "run") == expected


class DamagedFeed:
    """The zero-intelligence feed, whose input turns out damaged after ``good`` events."""

    def __init__(self, good: int) -> None:
        self.inner, self.good = zi_feed(), good

    def instruments(self):
        return self.inner.instruments()

    def events(self):
        for count, ev in enumerate(self.inner.events()):
            if count == self.good:
                raise InputError("day.jsonl", 9, "price", "not an integer")
            yield ev

    def stats(self):
        return {}


@pytest.mark.parametrize("batch_size", [1, 100, 512])
def test_a_feed_error_fails_the_run_after_every_event_before_it_is_processed_and_saved(tmp_path, batch_size):
    """Damaged input mid-stream: the events read before it pass through every stage and are saved (the same
    rows as a feed that simply ended there), then the run raises the error."""
    good = 5_000
    config = config_with(4, batch_size)
    clean_signals, clean_records = run_reference(ListFeed(zi_feed().instruments(), islice(zi_feed().events(), good)),
                                                 config, RunOptions(strategies=busy_strategies))
    expected = store.group_rows("run", clean_records)
    store.connect(tmp_path / "d.db").close()
    pipeline = Pipeline(DamagedFeed(good), config, str(tmp_path / "d.db"), "run",
                        RunOptions(strategies=busy_strategies))
    with pytest.raises(InputError, match="day.jsonl:9"):
        asyncio.run(pipeline.run())
    rows = all_rows(tmp_path / "d.db", "run")
    assert pipeline.stats.events == good and pipeline.stats.stopped_by == "input_error"
    for table in TABLES:
        assert len(rows[table]) == len(expected.get(table, [])), table
    assert len(rows["trades"]) > 100 and pipeline.stats.signals == len(clean_signals)


def test_execution_stage_holds_a_bounded_market_buffer_without_signals(tmp_path):
    """With no signal at all, bare watermarks still advance the execution stage: it never holds the whole stream."""
    feed = zi_feed(120.0)
    events = sum(1 for _ in zi_feed(120.0).events())
    pipeline = Pipeline(feed, config_with(4, 64), str(tmp_path / "b.db"), "run",
                        RunOptions(strategies=lambda d: []))
    store.connect(tmp_path / "b.db").close()
    asyncio.run(pipeline.run())
    execution = pipeline.portfolio[-1][1]
    assert execution.buffer_peak < events / 4
