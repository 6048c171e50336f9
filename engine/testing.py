"""Helpers for tests and examples: scripted in-memory feeds, event builders and a market-stage driver.

Shipped in the package (as structlog ships its testing helpers) so that users can script the
engine in their own tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from engine.book import OrderBook
from engine.detectors.base import DetectorContext
from engine.events import LAST, Event, InstrumentDef
from engine.features.sample import Sample
from engine.market import MarketState


def instrument(iid: int, symbol: str, tick_size: str = "0.01", profile: str = "") -> InstrumentDef:
    """A minimal instrument definition."""
    return InstrumentDef(iid, 0, 0, 0, 0, symbol, "TEST", tick_size, 1, 1, "1", "USD", 0, 0, "default", profile)


class ListFeed:
    """A Feed over a fixed list of events (already in replay order)."""

    def __init__(self, instruments: list[InstrumentDef], events: Iterable[Event]) -> None:
        self._instruments = list(instruments)
        self._events = list(events)

    def instruments(self) -> list[InstrumentDef]:
        return list(self._instruments)

    def events(self) -> Iterator[Event]:
        return iter(self._events)

    def stats(self) -> dict[str, int]:
        return {"events": len(self._events)}


class EventBuilder:
    """Builds events of one instrument with consecutive ``seq`` and increasing timestamps."""

    def __init__(self, instrument_id: int = 0, ts: int = 1_000_000_000, step_ns: int = 1_000_000) -> None:
        self.instrument_id = instrument_id
        self.seq = 0
        self.ts = ts
        self.step_ns = step_ns

    def __call__(self, cls, *args, last: bool = True, **kwargs):
        ev = cls(self.instrument_id, self.ts, self.ts, self.seq, LAST if last else 0, *args, **kwargs)
        self.seq += 1
        self.ts += self.step_ns
        return ev


def run_market(instrument_def: InstrumentDef, events: Iterable[Event], *listeners: Callable,
               batch_size: int = 1_000_000) -> tuple[MarketState, list[Sample]]:
    """Drive a fresh market stage (book + listeners) over ``events``; return it and its samples.

    Each of ``listeners`` is a factory called with the stage's ``DetectorContext`` (detectors and
    accumulators alike), e.g. ``run_market(inst, events, IcebergDetector)``.
    """
    book = OrderBook(instrument_def.instrument_id)
    market = MarketState(instrument_def, book)
    context = DetectorContext(instrument_def, book, market.detected)
    for factory in listeners:
        market.add(factory(context))
    samples: list[Sample] = []
    batch: list[Event] = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= batch_size:
            samples += market.apply(batch)
            batch = []
    samples += market.apply(batch)
    return market, samples
