"""Detectors: per-event state machines that turn order flow into typed, persisted detections.

A detector is a ``Listener`` (engine/features/listener.py) living inside the market stage
(engine/market.py), beside the order book it reads through public methods only. It never sees
truth labels and never reads the wall clock. It reports what it found with ``self.emit(detection)``
(a subclass of ``engine.events.Detection``); the market stage then takes a sample of the book and
the accumulators at that moment, so a strategy reacting to the detection sees the market as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.book import OrderBook
from engine.events import Detection, InstrumentDef
from engine.features.listener import Listener


@dataclass
class DetectorContext:
    """What a detector may use: the instrument, its book (public methods only), and the sink for its
    detections."""

    instrument: InstrumentDef
    book: OrderBook
    emit: Callable[[Detection], None]
    bin_ticks: int = 1  # per-price statistics use bins of this many ticks (SPEC section 0, small tick)


SMALL_TICK_BIN = 10  # ticks per bin on the simulator's small-tick profile (its episodes are planted on it)


def profile_bin(instrument: InstrumentDef, configured: int = 0) -> int:
    """Ticks per bin for the detectors' per-price statistics: ``configured`` when > 0, else by the
    instrument's simulator profile (``small_tick`` 10, ``large_tick`` 1) and 1 for real data."""
    if configured > 0:
        return configured
    return SMALL_TICK_BIN if instrument.profile == "small_tick" else 1


class Detector(Listener):
    """A listener that emits detections."""

    name = "detector"

    def __init__(self, context: DetectorContext) -> None:
        self.context = context
        self.book = context.book
        self.emit = context.emit
