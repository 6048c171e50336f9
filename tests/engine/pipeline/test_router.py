"""Router: per-instrument lanes in arrival order, truth labels on their own channel, undeclared ids refused."""

from __future__ import annotations

import pytest

from engine.errors import ChimeraError
from engine.events import BUY, LAST, Clock, OrderAdd, Trade, TruthKind, TruthLabel
from engine.market import Watermark
from engine.pipeline.router import Router


def add(iid: int, seq: int) -> OrderAdd:
    return OrderAdd(iid, seq, seq, seq, LAST, seq, BUY, 100, 1)


def label(iid: int, seq: int) -> TruthLabel:
    return TruthLabel(iid, seq, seq, seq, 0, 1, TruthKind.SWEEP, BUY, 100, 101, 0, 1)


def test_split_keeps_each_lanes_order_and_separates_truth():
    """Events go to their instrument's lane in arrival order, each lane ending with the batch's watermark;
    truth labels go to the truth list only."""
    router = Router([3, 1, 2])
    batch = [add(1, 0), add(3, 0), label(1, 5), add(1, 1), Clock(3, 9, 9, 1, LAST),
             Trade(1, 9, 9, 2, LAST, 100, 1, BUY), label(2, 6)]
    lanes, truth = router.split(batch)
    assert list(lanes) == [3, 1, 2]
    mark = Watermark(6)  # the last event's ts_recv
    assert lanes[1] == [batch[0], batch[3], batch[5], mark]
    assert lanes[3] == [batch[1], batch[4], mark]
    assert lanes[2] == [mark]  # every declared lane is present, and gets the watermark even when quiet
    assert truth == [batch[2], batch[6]]


def test_truth_labels_of_undeclared_instruments_are_still_truth():
    """The truth channel is not filtered by instrument (labels may be market-wide)."""
    lanes, truth = Router([0]).split([label(99, 0)])
    assert lanes == {0: [Watermark(0)]} and len(truth) == 1


def test_empty_batch():
    """An empty batch gives empty lanes for every instrument and no truth."""
    assert Router([0, 1]).split([]) == ({0: [], 1: []}, [])


def test_undeclared_instrument_is_an_error_naming_it():
    """An event for an instrument the feed did not declare raises, naming the event, seq and id."""
    with pytest.raises(ChimeraError, match=r"OrderAdd seq 4 names instrument 7, which the feed did not declare"):
        Router([0, 1]).split([add(0, 0), add(7, 4)])
