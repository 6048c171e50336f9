"""Per-instrument lane cores that add persistence to the book and feature cores.

``BookStage`` applies events to an ``OrderBook``, records every trade and a top-N book sample every
``sample_interval`` of event time, and reports the book's integrity counters at the end of the
stream. ``FeatureStage`` does the same for feature samples. ``TruthSink`` is the only consumer of
the truth channel: it records labels for scorers and never forwards them.
"""

from __future__ import annotations

import msgspec
import orjson

from engine.book import BookView, OrderBook
from engine.events import Trade, TruthLabel
from engine.features.core import FeatureEngine, FeatureVector
from engine.records import RecordBuffer


class BookStage(RecordBuffer):
    def __init__(self, book: OrderBook, sample_interval_ns: int, sample_levels: int) -> None:
        super().__init__()
        self.book = book
        self.interval = sample_interval_ns
        self.levels = sample_levels
        self.next_sample = 0

    def apply(self, batch: list) -> list:
        out = self.book.apply(batch)
        records = self.records
        for item in out:
            kind = type(item)
            if kind is Trade:
                records.append(("trades", (
                    item.instrument_id, item.seq, item.ts_event, item.ts_recv, item.price, item.size,
                    item.aggressor, item.trade_id, item.match_id, item.hidden,
                )))
            elif kind is BookView and item.ts_recv >= self.next_sample:
                self.next_sample = (item.ts_recv // self.interval + 1) * self.interval
                records.append(("book_samples", self._sample(item)))
        return out

    def _sample(self, view: BookView) -> tuple:
        n = self.levels
        return (
            view.instrument_id, view.seq, view.ts_recv, view.state,
            view.bid_px[0] if view.bid_px else None, view.ask_px[0] if view.ask_px else None,
            orjson.dumps(view.bid_px[:n]).decode(), orjson.dumps(view.bid_sz[:n]).decode(),
            orjson.dumps(view.ask_px[:n]).decode(), orjson.dumps(view.ask_sz[:n]).decode(),
        )

    def flush(self) -> list:
        iid = self.book.instrument_id
        for name, value in msgspec.structs.asdict(self.book.counters).items():
            self.records.append(("integrity", (iid, "book", name, value)))
        return []


class FeatureStage(RecordBuffer):
    def __init__(self, engine: FeatureEngine, sample_interval_ns: int) -> None:
        super().__init__()
        self.engine = engine
        self.interval = sample_interval_ns
        self.next_sample = 0

    def apply(self, batch: list) -> list:
        out = self.engine.apply(batch)
        for item in out:
            if type(item) is FeatureVector and item.ts_recv >= self.next_sample:
                self.next_sample = (item.ts_recv // self.interval + 1) * self.interval
                values = orjson.dumps(self.engine.named(item)).decode()
                self.records.append(("feature_samples", (item.instrument_id, item.seq, item.ts_recv,
                                                         item.state, values)))
        return out

    def flush(self) -> list:
        return self.engine.flush()


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
