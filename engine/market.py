"""The market stage core: one instrument's book, per-event accumulators and detectors, and the samples
everything downstream is computed from (shared/DESIGN.md, "work per event versus work per sample").

Per event only O(1) work: the book update, then the listeners subscribed to that event type
(accumulators and detectors, called after the book applied the event), then, at a ``LAST``
boundary, the listeners that want the atomic event complete. Nothing per event builds a view or a
feature vector.

A ``Sample`` (the book's top-N view and every accumulator's values, immutable) is taken:
- at each bar close (``engine/features/bars.py``): the first event at or after a TF1 boundary, a
  ``Clock``, or a ``Watermark`` at or after it closes it, and the sample shows the book *before*
  any later event, stamped with the boundary; every boundary crossed gives one sample, so silent
  seconds are samples too;
- right after an event that completed one or more detections (they travel inside the sample, which
  shows the book *after* that event).

Invariants: samples and detections are a function of the event sequence only (event time, never
the wall clock), so they are identical for any batch size; a ``seq`` the book drops (duplicate or
out of order) reaches no listener.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from engine.book import OrderBook
from engine.events import LAST, Detection, InstrumentDef
from engine.features.bars import NS, BarClock
from engine.features.listener import Accumulator, Listener
from engine.features.sample import Sample
from engine.records import RecordBuffer


class Watermark(msgspec.Struct, frozen=True, gc=False):
    """The feed has released every event up to ``ts``: bars with a boundary at or before it can close.

    The router ends every lane's batch with one, so a quiet instrument's bars close as the market's
    time passes, not only at its own next event (the canonical merge downstream needs every lane's
    output up to the watermark). A close shows the book before any later event either way, so the
    samples do not depend on where batches end.
    """

    ts: int


class MarketState(RecordBuffer):
    """Book + accumulators + detectors of one instrument; ``apply`` returns its samples.

    Args:
        instrument: the instrument's definition.
        book: its order book (owned by this stage).
        listeners: accumulators and detectors (detectors built on a ``DetectorContext`` whose
            ``emit`` is ``self.detected`` and whose ``book`` is ``book``).
        bar_ns: the TF1 bar length (1 s).
    """

    def __init__(self, instrument: InstrumentDef, book: OrderBook, listeners: list[Listener] | None = None,
                 bar_ns: int = NS) -> None:
        super().__init__()
        self.instrument = instrument
        self.instrument_id = instrument.instrument_id
        self.book = book
        self.bars = BarClock(bar_ns)
        self.listeners: list[Listener] = []
        self.accumulators: list[Accumulator] = []
        self.dispatch: dict[type, list[Callable]] = {}
        self.last_hooks: list[Callable[[int], None]] = []
        self.bar_hooks: list[Callable[[int, int], None]] = []
        self.structure_providers: list[Accumulator] = []
        self.value_fns: list[Callable[[int], dict[str, float]]] = []  # bound once: called at every sample
        self.structure_fns: list[Callable[[int], dict[str, object]]] = []
        self.pending: list[Detection] = []
        self.events = 0
        self.samples = 0
        self.detections = 0
        for listener in listeners or ():
            self.add(listener)

    def add(self, listener: Listener) -> None:
        """Subscribe an accumulator or a detector."""
        self.listeners.append(listener)
        if isinstance(listener, Accumulator):
            self.accumulators.append(listener)
            self.value_fns.append(listener.values)
            if listener.overrides("structures"):
                self.structure_providers.append(listener)
                self.structure_fns.append(listener.structures)
        for kind, handler in listener.handlers().items():
            self.dispatch.setdefault(kind, []).append(handler)
        if listener.overrides("on_last"):
            self.last_hooks.append(listener.on_last)
        if listener.overrides("on_bar"):
            self.bar_hooks.append(listener.on_bar)

    def detected(self, detection: Detection) -> None:
        """The ``emit`` of every detector of this instrument."""
        self.pending.append(detection)

    # ---- stage API ------------------------------------------------------------------------------
    def apply(self, batch: list) -> list[Sample]:
        out: list[Sample] = []
        mark = None
        if batch and type(batch[-1]) is Watermark:
            mark = batch[-1].ts
            batch = batch[:-1]
        self.events += len(batch)
        update = self.book.update
        bars = self.bars
        get_handlers = self.dispatch.get
        last_hooks = self.last_hooks
        pending = self.pending
        close = bars.next_close
        if close is None and batch:
            bars.start(batch[0].ts_recv)
            close = bars.next_close
        for ev in batch:
            ts = ev.ts_recv
            if ts >= close:  # type: ignore[operator]  # set by ``start`` above
                self._close_bars(ts, out)
                close = bars.next_close
            if not update(ev):
                continue
            handlers = get_handlers(type(ev))
            if handlers is not None:
                for handler in handlers:
                    handler(ev)
            if ev.flags & LAST:
                for hook in last_hooks:
                    hook(ts)
            if pending:
                self._detection_sample(ev, out)
        if mark is not None and close is not None and mark >= close:
            self._close_bars(mark, out)
        return out

    def flush(self) -> list[Sample]:
        """End of stream: nothing is held back (an unfinished bar is not a close)."""
        return []

    # ---- samples --------------------------------------------------------------------------------
    def _close_bars(self, ts: int, out: list[Sample]) -> None:
        for boundary, frames in self.bars.closes(ts):
            out.append(self._sample(boundary, frames, ()))
            for hook in self.bar_hooks:
                hook(boundary, frames)
            if self.pending:  # a detector that decides at bar closes (e.g. a level held long enough)
                detections, self.pending[:] = tuple(self.pending), []
                self.detections += len(detections)
                out.append(self._sample(boundary, 0, detections))

    def _detection_sample(self, ev, out: list[Sample]) -> None:
        detections = tuple(self.pending)
        self.pending.clear()
        self.detections += len(detections)
        out.append(self._sample(ev.ts_recv, 0, detections))

    def _sample(self, ts: int, frames: int, detections: tuple[Detection, ...]) -> Sample:
        flow: dict[str, float] = {}
        merge = flow.update
        for values in self.value_fns:
            merge(values(ts))
        structures: dict[str, object] = {}
        for provide in self.structure_fns:
            structures.update(provide(ts))
        self.samples += 1
        return Sample(self.instrument_id, ts, self.book.last_seq, frames, self.book.view(), flow, detections,
                      structures)
