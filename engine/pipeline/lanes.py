"""Per-instrument lane cores with their persistence: market -> features -> signals.

``MarketStage`` is the ``MarketState`` (book, per-event accumulators, detectors; engine/market.py)
plus the rows of what it already walks through: every trade, a top-N book sample at each persisted
bar close, every detection with its evidence, and at the end of the stream the book as the data left
it (a last book sample, stamped with the last event) and its integrity counters. ``FeatureStage``
turns each sample into a ``FeatureVector`` and records a feature sample at each persisted bar close
and at each detection sample. Persisted bar closes are those whose boundary is a multiple of
``[store] sample_interval_ms``. ``TruthSink`` is the only consumer of the truth channel: it records
labels for scorers and never forwards them.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import orjson

from engine.book import BookView, OrderBook
from engine.events import InstrumentDef, Trade, TruthLabel
from engine.features.engine import FeatureEngine
from engine.features.listener import Listener
from engine.features.sample import Sample
from engine.features.vector import FeatureVector
from engine.market import MarketState
from engine.records import RecordBuffer


class _TradeRows(Listener):
    """Appends one ``trades`` row per trade to the stage's records (a listener of the market stage)."""

    def __init__(self, stage: RecordBuffer) -> None:
        self.stage = stage

    def handlers(self) -> dict[type, Callable]:
        return {Trade: self.on_trade}

    def on_trade(self, trade: Trade) -> None:
        self.stage.records.append(("trades", (
            trade.instrument_id, trade.seq, trade.ts_event, trade.ts_recv, trade.price, trade.size,
            trade.aggressor, trade.trade_id, trade.match_id, trade.hidden,
        )))


class _L3Check(Listener):
    """``[book] check_l3``: at every LAST, L2 must equal the aggregated L3 (slow; tests turn it on)."""

    def __init__(self, book: OrderBook) -> None:
        self.book = book
        self.mismatches = 0

    def on_last(self, ts: int) -> None:
        if self.book.check_invariants():
            self.mismatches += 1


class MarketStage(MarketState):
    """The market stage with the rows of the trades, book_samples and detections tables."""

    def __init__(self, instrument: InstrumentDef, book: OrderBook, sample_interval_ns: int, sample_levels: int,
                 check_l3: bool = False) -> None:
        super().__init__(instrument, book)
        self.interval = sample_interval_ns
        self.levels = sample_levels
        self.l3_check = _L3Check(book) if check_l3 else None
        if self.l3_check is not None:
            self.add(self.l3_check)
        self.add(_TradeRows(self))

    def apply(self, batch: list) -> list[Sample]:
        out = super().apply(batch)
        for sample in out:
            if sample.detections:
                for detection in sample.detections:
                    self.records.append(("detections", _detection_row(detection)))
            elif sample.ts_recv % self.interval == 0:
                self.records.append(("book_samples", self._book_sample(sample.view, sample.ts_recv)))
        return out

    def flush(self) -> list:
        """End of stream: the book as the data left it (one more book sample), and its integrity counters."""
        iid = self.instrument_id
        if self.events:
            self.records.append(("book_samples", self._book_sample(self.book.view(), self.book.ts_recv)))
        for name, value in msgspec.structs.asdict(self.book.counters).items():
            self.records.append(("integrity", (iid, "book", name, value)))
        if self.l3_check is not None:
            self.records.append(("integrity", (iid, "book", "l3_mismatches", self.l3_check.mismatches)))
        return super().flush()

    def _book_sample(self, view: BookView, ts: int) -> tuple:
        n = self.levels
        return (
            view.instrument_id, view.seq, ts, view.state,
            view.bid_px[0] if view.bid_px else None, view.ask_px[0] if view.ask_px else None,
            orjson.dumps(view.bid_px[:n]).decode(), orjson.dumps(view.bid_sz[:n]).decode(),
            orjson.dumps(view.ask_px[:n]).decode(), orjson.dumps(view.ask_sz[:n]).decode(),
        )


def _detection_row(d) -> tuple:
    return (d.detection_id(), d.instrument_id, d.seq, d.ts_recv, type(d).__name__, d.side, d.price_lo, d.price_hi,
            d.strength, d.t_start, orjson.dumps(msgspec.to_builtins(d.evidence())).decode())


class FeatureStage(RecordBuffer):
    """``FeatureEngine`` over the samples, with the rows of the feature_samples table."""

    def __init__(self, engine: FeatureEngine, sample_interval_ns: int) -> None:
        super().__init__()
        self.engine = engine
        self.interval = sample_interval_ns

    def apply(self, batch: list[Sample]) -> list[FeatureVector]:
        out = []
        vector = self.engine.vector
        for sample in batch:
            fv = vector(sample)
            out.append(fv)
            if sample.detections or sample.ts_recv % self.interval == 0:
                self.records.append(("feature_samples", (fv.instrument_id, fv.seq, fv.ts_recv, fv.state,
                                                         orjson.dumps(fv.values).decode())))
        return out

    def flush(self) -> list:
        return []


class TruthSink(RecordBuffer):
    """Records truth labels; the only place the truth channel goes."""

    def __init__(self) -> None:
        super().__init__()
        self.labels = 0

    def apply(self, batch: list[TruthLabel]) -> list:
        for label in batch:
            self.labels += 1
            self.records.append(("truth_labels", (
                label.instrument_id, label.seq, label.episode_id, label.kind, label.side, label.price_lo,
                label.price_hi, label.t_start, label.t_end, orjson.dumps(label.params).decode(),
                label.outcome,
            )))
        return []

    def flush(self) -> list:
        return []
