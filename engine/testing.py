"""Helpers for tests and examples: scripted in-memory feeds and event builders.

Shipped in the package (as structlog ships its testing helpers) so that users can script the
engine in their own tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engine.events import LAST, Event, InstrumentDef


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
