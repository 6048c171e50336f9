"""Bar closes in event time (SPEC section 0): TF1 = 1 s, TF2 = 10 s, TF3 = 60 s.

A bar closes at its boundary, seen by the first event with ``ts >= boundary`` (a ``Clock`` event
included, so quiet markets still close bars): the book at the close is the book before that event.
Every TF1 boundary crossed yields one close, so a silent minute gives sixty; a TF2 (TF3) close
coincides with every tenth (sixtieth) TF1 close, aligned to the epoch.
"""

from __future__ import annotations

NS = 1_000_000_000
TF1, TF2, TF3 = 1, 2, 4  # bar-frame bits: 1 s, 10 s, 60 s closes


class BarClock:
    """The next TF1 boundary, and the closes an event at ``ts`` completes."""

    __slots__ = ("step", "next_close")

    def __init__(self, step_ns: int = NS) -> None:
        self.step = step_ns
        self.next_close: int | None = None  # unknown until the first event

    def start(self, ts: int) -> None:
        """Set the first boundary after the first event's time."""
        self.next_close = (ts // self.step + 1) * self.step

    def closes(self, ts: int) -> list[tuple[int, int]]:
        """``(boundary, frames)`` for every boundary in ``(previous, ts]``, oldest first (called when
        ``ts >= next_close``)."""
        out = []
        boundary = self.next_close
        assert boundary is not None
        step = self.step
        while boundary <= ts:
            frames = TF1
            if boundary % (10 * step) == 0:
                frames |= TF2
            if boundary % (60 * step) == 0:
                frames |= TF3
            out.append((boundary, frames))
            boundary += step
        self.next_close = boundary
        return out
