"""The immutable picture of one instrument that the market stage hands downstream (engine/market.py)."""

from __future__ import annotations

import msgspec

from engine.book import BookView
from engine.events import Detection


class Sample(msgspec.Struct, frozen=True, gc=False):
    """The market of one instrument at one moment: the book view, every accumulator's values, and the
    detections completed by the event just applied (empty at a bar close), and the accumulators'
    immutable structures (swings, volume-profile snapshots) for strategies.

    ``frames`` is the bit set of bar frames closing here (``TF1 | TF2 | TF3``), 0 for a detection
    sample; ``ts_recv`` is the bar boundary or the detecting event's time; ``seq`` the last event
    applied to the book.
    """

    instrument_id: int
    ts_recv: int
    seq: int
    frames: int
    view: BookView
    flow: dict[str, float]
    detections: tuple[Detection, ...] = ()
    structures: dict = {}  # immutable snapshots by name: "swing_highs", "swing_lows", "profile", "profile_2h"
