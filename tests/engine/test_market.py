"""The market stage core: bar-close samples show the book before the crossing event, detections come
with a sample of the book after their event, and dropped events reach no listener."""

from __future__ import annotations

from engine.events import BUY, SELL, Clock, Detection, OrderAdd, Trade
from engine.features.bars import TF1, TF2, TF3
from engine.features.listener import Accumulator
from engine.testing import EventBuilder, instrument, run_market

NS = 1_000_000_000
INST = instrument(1, "TEST")


class TradeCount(Accumulator):
    def __init__(self, context) -> None:
        self.trades = 0

    def handlers(self):
        return {Trade: self.on_trade}

    def on_trade(self, ev: Trade) -> None:
        self.trades += 1

    def values(self, ts: int) -> dict[str, float]:
        return {"trades": self.trades}


class BigTrade(Detection, frozen=True):
    size: int


class BigTradeDetector(TradeCount):
    """Emits on any trade of 50 lots or more (a toy detector)."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self.context = context

    def on_trade(self, ev: Trade) -> None:
        super().on_trade(ev)
        if ev.size >= 50:
            self.context.emit(BigTrade(instrument_id=ev.instrument_id, ts_recv=ev.ts_recv, seq=ev.seq,
                                       side=-ev.aggressor, price_lo=ev.price, price_hi=ev.price, strength=1.0,
                                       t_start=ev.ts_event, size=ev.size))


def events():
    e = EventBuilder(instrument_id=1, ts=int(9.5 * NS), step_ns=NS // 4)
    out = [e(OrderAdd, 1, BUY, 100, 10), e(OrderAdd, 2, SELL, 102, 10)]  # 9.50, 9.75
    out.append(e(Trade, 101, 5, BUY, 1, 1))  # 10.00: closes the 10 s bar first
    e.ts = int(12.5 * NS)
    out.append(e(OrderAdd, 3, BUY, 101, 7))  # 12.50: closes 11 s and 12 s
    out.append(e(Trade, 101, 60, SELL, 2, 2))  # 12.75: a detection
    e.ts = int(60 * NS)
    out.append(e(Clock))  # 60.00: closes 13 .. 60 s
    return out


def test_bar_closes_are_stamped_with_the_boundary_and_show_the_book_before_the_crossing_event():
    """The trade at 10.0 s closes the bar at 10 s; its sample shows the two orders but not the trade."""
    _, samples = run_market(INST, events(), TradeCount)
    bars = [s for s in samples if s.frames]
    assert [s.ts_recv // NS for s in bars[:3]] == [10, 11, 12]
    first = bars[0]
    assert first.frames == TF1 | TF2 and first.seq == 1 and first.flow == {"trades": 0}
    assert first.view.bid_px[0] == 100 and first.view.ask_px[0] == 102
    assert bars[2].view.bid_px[0] == 100  # the add at 12.5 s is after the 12 s close
    assert len(bars) == 51 and bars[-1].ts_recv == 60 * NS and bars[-1].frames == TF1 | TF2 | TF3
    assert bars[-1].flow == {"trades": 2}


def test_a_detection_comes_with_a_sample_after_its_event():
    """The 60-lot trade emits one detection, inside a sample stamped with the trade, frames 0."""
    market, samples = run_market(INST, events(), BigTradeDetector)
    detected = [s for s in samples if s.detections]
    assert len(detected) == 1 and market.detections == 1
    (sample,) = detected
    assert sample.frames == 0 and sample.ts_recv == int(12.75 * NS) and sample.seq == 4
    assert sample.flow == {"trades": 2} and sample.view.bid_px[0] == 101
    (found,) = sample.detections
    assert isinstance(found, BigTrade) and found.size == 60 and found.evidence() == {"size": 60}


def test_samples_do_not_depend_on_the_batch_size():
    """Batches of 1, 2 and everything give the same samples."""
    reference = run_market(INST, events(), BigTradeDetector)[1]
    for size in (1, 2, 3):
        assert run_market(INST, events(), BigTradeDetector, batch_size=size)[1] == reference


def test_a_duplicate_seq_reaches_no_listener():
    """A repeated event is dropped by the book and not counted by the accumulator."""
    evs = events()
    evs.insert(3, evs[2])  # the trade again, same seq
    market, samples = run_market(INST, evs, TradeCount)
    assert samples[-1].flow == {"trades": 2} and market.book.counters.out_of_order == 1
