"""Per-instrument lane cores that add persistence to the book and feature cores.

``BookStage`` is the ``OrderBook`` itself plus its integrity counters at the end of the stream; with
``book.check_l3`` it also verifies at every ``LAST`` boundary that the L2 levels equal the aggregated
L3 orders (``OrderBook.check_invariants``) and counts the boundaries where they do not.
``FeatureStage`` is the ``FeatureEngine`` that also records the market data it already walks
through: every trade, and every ``sample_interval`` of event time a top-N book sample and a feature
sample (one pass over the items; no second loop per event). ``TruthSink`` is the only consumer of
the truth channel: it records labels for scorers and never forwards them.
"""

from __future__ import annotations

import msgspec
import orjson

from engine.book import BookView, OrderBook
from engine.events import LAST, Trade, TruthLabel
from engine.features.core import FeatureEngine, FeatureVector
from engine.records import RecordBuffer


class BookStage(RecordBuffer):
    """The book stage: ``OrderBook.apply``, and its integrity counters as rows at the end.

    Args:
        book: the instrument's book.
        check_l3: verify L2 == aggregated L3 at every ``LAST`` (slow: walks the whole book); the
            count of failed checks is persisted as the integrity counter ``l3_mismatches``, which
            is absent when the check is off.
    """

    def __init__(self, book: OrderBook, check_l3: bool = False) -> None:
        super().__init__()
        self.book = book
        self.check_l3 = check_l3
        self.l3_mismatches = 0
        self.apply = self._apply_checked if check_l3 else book.apply  # no per-event work unless checking

    def _apply_checked(self, batch: list) -> list:
        """``OrderBook.apply`` one atomic event (up to its ``LAST``) at a time, checking the book after each."""
        apply, check = self.book.apply, self.book.check_invariants
        out: list = []
        start = 0
        for i, ev in enumerate(batch):
            if ev.flags & LAST:
                out += apply(batch[start:i + 1])
                start = i + 1
                if check():
                    self.l3_mismatches += 1
        if start < len(batch):
            out += apply(batch[start:])
        return out

    def flush(self) -> list:
        iid = self.book.instrument_id
        for name, value in msgspec.structs.asdict(self.book.counters).items():
            self.records.append(("integrity", (iid, "book", name, value)))
        if self.check_l3:
            self.records.append(("integrity", (iid, "book", "l3_mismatches", self.l3_mismatches)))
        return self.book.flush()


class FeatureStage(FeatureEngine):
    """FeatureEngine plus the rows of the trades, book_samples and feature_samples tables."""

    def __init__(self, instrument_id: int, depth_ticks, trade_windows_s, spread_window_s: float,
                 sample_interval_ns: int, sample_levels: int) -> None:
        super().__init__(instrument_id, depth_ticks, trade_windows_s, spread_window_s)
        self.records: list[tuple[str, tuple]] = []
        self.interval = sample_interval_ns
        self.levels = sample_levels
        self.next_sample = 0

    def take_records(self) -> list[tuple[str, tuple]]:
        rows = self.records
        self.records = []
        return rows

    def _on_trade(self, trade: Trade) -> None:
        FeatureEngine._on_trade(self, trade)
        self.records.append(("trades", (
            trade.instrument_id, trade.seq, trade.ts_event, trade.ts_recv, trade.price, trade.size,
            trade.aggressor, trade.trade_id, trade.match_id, trade.hidden,
        )))

    def _sample(self, view: BookView, vector: FeatureVector) -> None:
        self.next_sample = (view.ts_recv // self.interval + 1) * self.interval
        self.records.append(("book_samples", self._book_sample(view)))
        self.records.append(("feature_samples", (vector.instrument_id, vector.seq, vector.ts_recv,
                                                 vector.state, orjson.dumps(self.named(vector)).decode())))

    def _book_sample(self, view: BookView) -> tuple:
        n = self.levels
        return (
            view.instrument_id, view.seq, view.ts_recv, view.state,
            view.bid_px[0] if view.bid_px else None, view.ask_px[0] if view.ask_px else None,
            orjson.dumps(view.bid_px[:n]).decode(), orjson.dumps(view.bid_sz[:n]).decode(),
            orjson.dumps(view.ask_px[:n]).decode(), orjson.dumps(view.ask_sz[:n]).decode(),
        )


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
