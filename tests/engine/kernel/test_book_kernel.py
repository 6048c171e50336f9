"""The compiled book (engine/kernel/book.py) against its reference, ``OrderBook`` and the market stage's
bar closes: the same views after every LAST, the same bar-close samples, levels, FIFO queues, state
and counters, on random sequences, on both AMZN LOBSTER days read from Parquet, and on simulator
sessions of every scenario preset."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import BookView, OrderBook
from engine.config import Config
from engine.config.detectors import SweepParams
from engine.config.features import StructureParams
from engine.detectors.base import DetectorContext
from engine.detectors.sweep import SweepDetector
from engine.events import BUY, LAST, SELL, Event, OrderAdd, Trade, TruthLabel
from engine.features.flow import TradeFlow
from engine.features.ofi import OrderFlowImbalance
from engine.features.shape import SpreadTime
from engine.features.structure import SwingStructure
from engine.kernel.book import KernelBook
from engine.kernel.columns import ColumnBatch, from_events
from engine.kernel.lane import KernelLane
from engine.market import MarketState, Watermark
from feeds.lobster import import_lobster, lobster_available, locate_sample
from feeds.parquet_tape import ParquetTapeFeed
from feeds.simulator import MarketSimulator
from feeds.simulator.scenarios import list_presets, load_preset
from tests.engine.test_book import _events, operations
from tests.feeds.test_parquet_tape import write_parquet
from tests.feeds.test_tape import AMZN

NO_DATA = "LOBSTER sample data not found under $CHIMERA_DATA or ../shared/data"
LEVELS, WINDOWS = 3, (2, 5)


def view_row(view: BookView, levels: int = LEVELS) -> list[int]:
    """A ``BookView`` in the kernel's row layout (``engine.kernel.book.write_view``)."""
    def pad(values: tuple[int, ...]) -> list[int]:
        return [*values, *[0] * (levels - len(values))]
    return [view.seq, view.state, view.ts_event, view.ts_recv, len(view.bid_px), len(view.ask_px),
            *pad(view.bid_px), *pad(view.bid_sz), *pad(view.ask_px), *pad(view.ask_sz),
            *(view.bid_depth or [0] * len(WINDOWS)), *(view.ask_depth or [0] * len(WINDOWS))]


def reference_views(events: list[Event], iid: int = 0, levels: int = LEVELS) -> np.ndarray:
    book = OrderBook(iid, view_levels=levels, depth_windows=WINDOWS)
    rows = [view_row(x, levels) for x in book.apply(events) if type(x) is BookView]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 6 + 4 * levels + 2 * len(WINDOWS))


def reference_bars(batches: list[list[Event]], iid: int, step: int, levels: int = LEVELS) -> np.ndarray:
    """The market stage's bar-close samples (no listeners), each batch ending with its watermark."""
    market = MarketState(msgspec.structs.replace(AMZN, instrument_id=iid),
                         OrderBook(iid, view_levels=levels, depth_windows=WINDOWS), bar_ns=step)
    rows = []
    for batch in batches:
        mark = [Watermark(batch[-1].ts_recv)] if batch else []
        for sample in market.apply([*batch, *mark]):
            rows.append([sample.ts_recv, sample.frames, *view_row(sample.view, levels)])
    return np.array(rows, dtype=np.int64).reshape(len(rows), 8 + 4 * levels + 2 * len(WINDOWS))


def kernel(iid: int = 0, **kwargs) -> KernelBook:
    return KernelBook(iid, view_levels=LEVELS, depth_windows=WINDOWS, **kwargs)


def assert_same_book(kb: KernelBook, book: OrderBook) -> None:
    assert kb.last_seq == book.last_seq and kb.state == book.state
    assert kb.counters == book.counters
    for side in (BUY, SELL):
        assert kb.levels(side) == book.levels(side)
        for price, _ in book.levels(side):
            assert kb.queue(side, price) == book.queue(side, price)


def stack(parts: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate([np.zeros((0, width), dtype=np.int64), *parts])


def split(events: list, cuts: list[int]) -> list[list]:
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    return [events[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# ---- hand-built --------------------------------------------------------------------------------------
def test_a_tiny_book_grows_its_arrays_and_keeps_fifo_order():
    """Capacity 1 for levels and orders: every add grows an array mid-batch and resumes at that row."""
    events = [OrderAdd(0, 10 * i, 10 * i, i, 0x80, i + 1, BUY if i % 2 else SELL, 100 + (i % 7) * (1 if i % 2 else -1)
                       + (0 if i % 2 else 10), 1 + i % 3) for i in range(40)]
    kb = kernel(level_capacity=1, order_capacity=1)
    np.testing.assert_array_equal(kb.apply(from_events(events)), reference_views(events))
    book = OrderBook(0)
    for ev in events:
        book.update(ev)
    assert_same_book(kb, book)


def test_rows_of_other_instruments_and_truth_labels_are_skipped():
    ours = [OrderAdd(0, 10, 10, 0, 0x80, 1, BUY, 100, 5), OrderAdd(0, 20, 20, 1, 0x80, 2, SELL, 101, 2)]
    other = OrderAdd(1, 15, 15, 0, 0x80, 9, BUY, 100, 50)
    truth = TruthLabel(0, 16, 16, 5, 0, 1, 0, BUY, 100, 100, 0, 0)
    kb = kernel()
    np.testing.assert_array_equal(kb.apply(from_events([ours[0], other, truth, ours[1]])), reference_views(ours))


# ---- random sequences ----------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(operations(), st.lists(st.integers(0, 200), max_size=4))
def test_views_and_book_equal_the_reference_on_random_sequences(ops, cuts):
    """L3 adds, cancels, executions, deletes, modifies, L2 deltas, unknown orders, snapshots, gaps and
    duplicates, cut into batches anywhere: the views after every LAST and the final book are equal."""
    events = _events(ops)
    kb = kernel(level_capacity=2, order_capacity=2)
    got = [kb.apply(from_events(part)) for part in split(events, cuts)]
    np.testing.assert_array_equal(stack(got, kb.view_width), reference_views(events))
    book = OrderBook(0)
    for ev in events:
        book.update(ev)
    assert_same_book(kb, book)


@settings(max_examples=150, deadline=None)
@given(operations(), st.lists(st.integers(0, 200), max_size=4), st.sampled_from([7, 25, 100]))
def test_bar_closes_equal_the_market_stages_on_random_sequences(ops, cuts, step):
    """Bar closes (a boundary every ``step`` ns; the events are 10 ns apart) with the watermark at each
    batch's end: the same boundaries, frames and book views as ``MarketState``'s samples."""
    events = _events(ops)
    batches = split(events, cuts)
    kb = kernel()
    got = [kb.bars(from_events(b), b[-1].ts_recv if b else -1, step) for b in batches]
    np.testing.assert_array_equal(stack(got, 2 + kb.view_width), reference_bars(batches, 0, step))


# ---- real days and simulator sessions ----------------------------------------------------------------------
@pytest.fixture(scope="module", params=[1, 5])
def amzn_tape(request, tmp_path_factory):
    """A LOBSTER day imported to a Parquet tape (small row groups: many batches)."""
    if not lobster_available(request.param):
        pytest.skip(NO_DATA)
    folder = tmp_path_factory.mktemp("amzn")
    message, orderbook = locate_sample(request.param, folder)
    path = folder / "day.parquet"
    import_lobster(message, orderbook, path)
    return ParquetTapeFeed(path)


def test_amzn_days_from_parquet_equal_the_reference(amzn_tape):
    """Both AMZN days, read from Parquet as column batches: every view after a LAST, every 1-s bar
    close, and the final book and counters equal the reference's."""
    iid = amzn_tape.instruments()[0].instrument_id
    batches = list(amzn_tape.kernel_batches())
    event_batches = list(amzn_tape.batches())
    assert [len(b) for b in batches] == [len(b) for b in event_batches]
    events = [ev for batch in event_batches for ev in batch]
    kb, kb_bars = kernel(iid, level_capacity=8), kernel(iid)
    views = np.concatenate([kb.apply(b) for b in batches])
    np.testing.assert_array_equal(views, reference_views(events, iid))
    bars = np.concatenate([kb_bars.bars(b, int(e[-1].ts_recv)) for b, e in zip(batches, event_batches, strict=True)])
    expected = reference_bars(event_batches, iid, 1_000_000_000)
    assert len(bars) > 20_000  # the day is 6.5 hours of 1-s bars
    np.testing.assert_array_equal(bars, expected)
    book = OrderBook(iid)
    for ev in events:
        book.update(ev)
    assert_same_book(kb, book)
    assert book.counters.unknown_orders > 0  # orders added before the open: the L2-only path ran


@pytest.mark.parametrize("preset", list_presets())
def test_simulator_sessions_of_every_preset_equal_the_reference(preset):
    """Each scenario preset's session (its planted icebergs, sweeps, walls, pulls...), per instrument: the
    book's views, and the lane's samples and sweep detections."""
    scenario = load_preset(preset)
    sim = MarketSimulator(list(scenario.spec.symbols), Config(), seed=3, duration_s=min(scenario.spec.duration_s, 300),
                          scenario=scenario)
    events = [ev for ev in sim.events() if type(ev) is not TruthLabel]
    sweeps = 0
    for inst in sim.instruments():
        iid = inst.instrument_id
        mine = [ev for ev in events if ev.instrument_id == iid]
        kb = kernel(iid)
        np.testing.assert_array_equal(kb.apply(from_events(events)), reference_views(mine, iid))
        book = OrderBook(iid)
        for ev in mine:
            book.update(ev)
        assert_same_book(kb, book)
        batches = [mine[i:i + 500] for i in range(0, len(mine), 500)]
        expected = reference_lane(batches, iid, 1_000_000_000)
        assert_same_samples(run_kernel_lane([from_events(b) for b in batches], [b[-1].ts_recv for b in batches], iid),
                            expected)
        sweeps += sum(len(d) for d in expected[3])
    if preset == "breakout_sweep":
        assert sweeps > 0  # the planted sweep at least (the simulator's fills carry match ids)


def test_parquet_batches_equal_the_columns_of_the_events(tmp_path):
    """``kernel_batches`` (no event built) gives the columns ``from_events`` builds, snapshots included."""
    sim = MarketSimulator(["AAPL"], Config(), seed=1, duration_s=30)
    events = list(sim.events())
    path = write_parquet(tmp_path / "s.parquet", events, row_group=500)
    feed = ParquetTapeFeed(path)
    for batch, evs in zip(feed.kernel_batches(), feed.batches(), strict=True):
        expected = from_events(evs)
        for name in ColumnBatch.__struct_fields__:
            np.testing.assert_array_equal(getattr(batch, name), getattr(expected, name), err_msg=name)


# ---- the lane: book + trade flow + OFI + time-weighted spread, sampled at bar closes -------------------
def reference_lane(batches: list[list[Event]], iid: int, step: int,
                   bar_s: int = 10) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], list[tuple], list[dict]]:
    """``MarketState`` with ``TradeFlow``, ``OrderFlowImbalance``, ``SpreadTime``, ``SwingStructure`` (on
    bars of ``bar_s`` seconds) and ``SweepDetector``: its samples (bar closes and detection samples),
    the detections each carries and its structures."""
    book = OrderBook(iid, view_levels=LEVELS, depth_windows=WINDOWS)
    inst = msgspec.structs.replace(AMZN, instrument_id=iid)
    market = MarketState(inst, book, [TradeFlow((5.0, 30.0)), OrderFlowImbalance(book), SpreadTime(book, 10.0),
                                      SwingStructure(book, StructureParams(bar_s=bar_s))], bar_ns=step)
    market.add(SweepDetector(DetectorContext(inst, book, market.detected), SweepParams(min_bursts=3)))
    views, values, detections, structures = [], [], [], []
    names: tuple[str, ...] = ()
    for batch in batches:
        mark = [Watermark(batch[-1].ts_recv)] if batch else []
        for sample in market.apply([*batch, *mark]):
            views.append([sample.ts_recv, sample.frames, *view_row(sample.view)])
            names = tuple(sample.flow)
            values.append([float(v) for v in sample.flow.values()])
            detections.append(sample.detections)
            structures.append(sample.structures)
    width = 8 + 4 * LEVELS + 2 * len(WINDOWS)
    return (np.array(views, dtype=np.int64).reshape(len(views), width), np.array(values), names, detections,
            structures)


def run_kernel_lane(batches: list[ColumnBatch], marks: list[int], iid: int, step: int = 1_000_000_000,
                    bar_s: int = 10, **kwargs) -> tuple[np.ndarray, np.ndarray, KernelLane, list[tuple], list[dict]]:
    lane = KernelLane(kernel(iid), step_ns=step, sweep=SweepParams(min_bursts=3),
                      structure=StructureParams(bar_s=bar_s), **kwargs)
    parts = [lane.run(b, m) for b, m in zip(batches, marks, strict=True)]
    views = np.concatenate([np.zeros((0, 2 + lane.book.view_width), dtype=np.int64), *[p.views for p in parts]])
    values = np.concatenate([np.zeros((0, len(lane.names))), *[p.values for p in parts]])
    return (views, values, lane, [d for p in parts for d in p.detections()],
            [x for p in parts for x in p.structures()])


def assert_same_samples(got: tuple, expected: tuple) -> None:
    views, values, lane, detections, structures = got
    ref_views, ref_values, names, ref_detections, ref_structures = expected
    np.testing.assert_array_equal(views, ref_views)
    if len(ref_values):
        assert lane.names == names
        np.testing.assert_array_equal(values, ref_values)  # exact: the same arithmetic in the same order
    else:
        assert len(values) == 0
    assert detections == ref_detections
    assert structures == ref_structures


@st.composite
def trading(draw, scale: int):
    """Random book operations with trades between them (match ids, aggressors, repeated timestamps);
    the events' times (10 apart) are multiplied by ``scale``."""
    events = _events(draw(operations()))
    out = []
    for ev in events:
        out.append(ev)
        if draw(st.integers(0, 3)) == 0:
            out.append(Trade(0, ev.ts_event, ev.ts_recv, ev.seq, draw(st.sampled_from([0, LAST])),
                             draw(st.integers(95, 106)), draw(st.integers(1, 9)), draw(st.sampled_from([BUY, SELL, 0])),
                             0, draw(st.sampled_from([0, 0, 7, 8])), draw(st.booleans())))
    # the trades share their book event's seq: renumber so that the book accepts all of them
    return [msgspec.structs.replace(ev, seq=i, ts_event=ev.ts_event * scale, ts_recv=ev.ts_recv * scale)
            for i, ev in enumerate(out)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([(1_000_000, 7_000_000), (100_000_000, 500_000_000), (100_000_000, 2_500_000_000)]).flatmap(
    lambda pair: st.tuples(trading(pair[0]), st.just(pair[1]))), st.lists(st.integers(0, 200), max_size=3))
def test_lane_samples_equal_the_market_stages_on_random_sequences(events_step, cuts):
    """Bar closes and sweep detections of the book with trade flow, OFI, the time-weighted spread and the
    sweep detector (OFI windows of 1-60 s
    over 100-ms buckets, trade windows of 5 and 30 s, spread over 10 s; events 10 ms or 1 s apart, so
    trades and segments leave the windows, some exactly at a close; swings on 1-s bars): the same views,
    values, detections and swing structures, to the bit."""
    events, step = events_step
    batches = split(events, cuts)
    got = run_kernel_lane([from_events(b) for b in batches], [b[-1].ts_recv if b else -1 for b in batches], 0, step,
                          bar_s=1, capacity=1)
    assert_same_samples(got, reference_lane(batches, 0, step, bar_s=1))


def test_lane_samples_on_the_amzn_days_equal_the_market_stages(amzn_tape):
    """Both AMZN days from Parquet: every 1-s close's and every detection sample's view, CVD, VWAP, trade
    imbalances, OFI values and time-weighted spread, and every sweep detection."""
    iid = amzn_tape.instruments()[0].instrument_id
    event_batches = list(amzn_tape.batches())
    got = run_kernel_lane(list(amzn_tape.kernel_batches()), [b[-1].ts_recv for b in event_batches], iid)
    expected = reference_lane(event_batches, iid, 1_000_000_000)
    assert len(expected[0]) > 20_000 and expected[1][:, expected[2].index("volume")].max() > 0
    assert sum(len(d) for d in expected[3]) > 100  # sweeps found (AMZN's aggressive orders through 2+ prices)
    assert len(expected[4][-1]["swing_highs"]) == 5  # swings found and kept
    assert_same_samples(got, expected)
