"""The Feed protocol: a synchronous source of market events in replay order.

A feed knows its instruments before it starts (``instruments()``), then yields events one by one in
``(ts_recv, instrument_id, seq)`` order from ``events()``. Generation and parsing are synchronous, so
the same feed drives both the asyncio pipeline (which batches, paces and bounds it) and the
synchronous reference path. ``TruthLabel`` events may be interleaved; the router sends them to the
truth channel only. ``stats()`` reports counters such as skipped malformed lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Protocol, runtime_checkable

from engine.events import Event, InstrumentDef


@runtime_checkable
class Feed(Protocol):
    def instruments(self) -> list[InstrumentDef]:
        """Definitions of every instrument the feed will emit (known before iteration)."""
        ...

    def events(self) -> Iterator[Event]:
        """Every event of the feed, in replay order."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters for the run summary (e.g. ``{"malformed_lines": 0}``)."""
        ...


def batched(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    """Group an event iterator into lists of at most ``size`` events."""
    iterator = iter(events)
    while batch := list(islice(iterator, size)):
        yield batch
