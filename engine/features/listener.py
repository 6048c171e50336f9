"""Per-event listeners of the market stage (engine/market.py): accumulators (here) and detectors
(engine/detectors/) share these hooks.

The market stage calls a listener only for what it subscribes to:

- ``handlers()``: ``{event type: callable(event)}``, called right after the book has applied the
  event (so the book shows the state after it; a handler that needs the state before keeps it);
- ``on_last(ts)``: after each ``LAST`` event (one atomic exchange event fully applied), when the
  listener overrides it;
- ``on_bar(ts, frames)``: at each bar close (``frames`` a bit set of ``TF1 | TF2 | TF3``, ``ts`` the
  boundary), when overridden.

Per event a listener does O(1) work at the touched price: no scans of the book, no allocation.
"""

from __future__ import annotations

from collections.abc import Callable


class Listener:
    """No-op hooks; subclasses override what they need (the market stage checks which)."""

    def handlers(self) -> dict[type, Callable]:
        """Per-event hooks by event type (called after the book applied the event)."""
        return {}

    def on_last(self, ts: int) -> None:
        """After each LAST event; override to use."""

    def on_bar(self, ts: int, frames: int) -> None:
        """At each bar close; override to use."""

    def overrides(self, hook: str) -> bool:
        """Whether this listener implements ``hook`` (``on_last`` or ``on_bar``)."""
        return getattr(type(self), hook) is not getattr(Listener, hook)


class Accumulator(Listener):
    """A listener that contributes values to every sample (it emits no detections), and optionally
    immutable structures (swings, volume-profile nodes) that strategies need beyond numbers."""

    def values(self, ts: int) -> dict[str, float]:
        """This accumulator's values at event time ``ts`` (a sample), by stable name."""
        return {}

    def structures(self, ts: int) -> dict[str, object]:
        """Immutable snapshots by stable name (override to provide; keep them cached between changes)."""
        return {}

    def overrides(self, hook: str) -> bool:
        """Whether this listener implements ``hook`` (``on_last``, ``on_bar`` or ``structures``)."""
        base = Accumulator if hook == "structures" else Listener
        return getattr(type(self), hook) is not getattr(base, hook)
