"""The kernel lane's output as the market stage's ``Sample`` objects (``LaneOutput.samples``): equal,
sample for sample and field for field (views, values with their types, detections, structures), to
what ``MarketState`` gives for the same events with the same listeners."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import OrderBook
from engine.config.detectors import SweepParams
from engine.config.features import StructureParams
from engine.detectors.base import DetectorContext
from engine.detectors.sweep import SweepDetector
from engine.events import Event
from engine.features.flow import TradeFlow
from engine.features.ofi import OrderFlowImbalance
from engine.features.sample import Sample
from engine.features.shape import SpreadTime
from engine.features.structure import SwingStructure
from engine.kernel.columns import from_events
from engine.kernel.lane import KernelLane
from engine.market import MarketState, Watermark
from tests.engine.kernel.test_book_kernel import LEVELS, WINDOWS, amzn_tape, kernel, split, trading  # noqa: F401
from tests.feeds.test_tape import AMZN


def reference_samples(batches: list[list[Event]], iid: int, step: int, bar_s: int) -> list[Sample]:
    book = OrderBook(iid, view_levels=LEVELS, depth_windows=WINDOWS)
    inst = msgspec.structs.replace(AMZN, instrument_id=iid)
    market = MarketState(inst, book, [TradeFlow((5.0, 30.0)), OrderFlowImbalance(book), SpreadTime(book, 10.0),
                                      SwingStructure(book, StructureParams(bar_s=bar_s))], bar_ns=step)
    market.add(SweepDetector(DetectorContext(inst, book, market.detected), SweepParams(min_bursts=3)))
    out = []
    for batch in batches:
        mark = [Watermark(batch[-1].ts_recv)] if batch else []
        out.extend(market.apply([*batch, *mark]))
    return out


def kernel_samples(batches: list[list[Event]], iid: int, step: int, bar_s: int, **kwargs) -> list[Sample]:
    lane = KernelLane(kernel(iid, **kwargs), step_ns=step, sweep=SweepParams(min_bursts=3),
                      structure=StructureParams(bar_s=bar_s))
    out = []
    for batch in batches:
        out.extend(lane.run(from_events(batch), batch[-1].ts_recv if batch else -1).samples(lane.book, lane.names))
    return out


def assert_same(got: list[Sample], expected: list[Sample]) -> None:
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs
        assert list(mine.flow) == list(theirs.flow)  # the same names in the same order
        assert [type(v) for v in mine.flow.values()] == [type(v) for v in theirs.flow.values()]
        assert msgspec.json.encode(mine) == msgspec.json.encode(theirs)


@settings(max_examples=100, deadline=None)
@given(trading(100_000_000), st.lists(st.integers(0, 200), max_size=3))
def test_samples_equal_the_market_stages_on_random_sequences(events, cuts):
    """Random book operations with trades, cut into batches anywhere, arrays from a capacity of 1."""
    batches = split(events, cuts)
    assert_same(kernel_samples(batches, 0, 500_000_000, 1, level_capacity=1, order_capacity=1),
                reference_samples(batches, 0, 500_000_000, 1))


def test_samples_on_the_amzn_days_equal_the_market_stages(amzn_tape):  # noqa: F811 - the fixture
    """Every bar-close and detection sample of both AMZN days, as the objects the feature stage reads."""
    iid = amzn_tape.instruments()[0].instrument_id
    batches = list(amzn_tape.batches())
    expected = reference_samples(batches, iid, 1_000_000_000, 10)
    assert len(expected) > 20_000 and any(s.detections for s in expected)
    assert_same(kernel_samples(batches, iid, 1_000_000_000, 10), expected)
