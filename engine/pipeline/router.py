"""Splits feed batches into per-instrument lanes and the truth channel.

Truth labels never reach a lane (features and strategies must not see them). An event for an
instrument the feed did not declare is an error naming it.
"""

from __future__ import annotations

from engine.errors import ChimeraError
from engine.events import TruthLabel
from engine.market import Watermark


class Router:
    def __init__(self, instrument_ids: list[int]) -> None:
        self.ids = list(instrument_ids)

    def split(self, batch: list) -> tuple[dict[int, list], list[TruthLabel]]:
        """Per-lane events, each lane's list ending with the batch's ``Watermark``, and the truth labels."""
        lanes: dict[int, list] = {iid: [] for iid in self.ids}
        truth: list[TruthLabel] = []
        for ev in batch:
            if type(ev) is TruthLabel:
                truth.append(ev)
                continue
            lane = lanes.get(ev.instrument_id)
            if lane is None:
                raise ChimeraError(
                    f"event {type(ev).__name__} seq {ev.seq} names instrument {ev.instrument_id}, "
                    f"which the feed did not declare (declared: {self.ids})"
                )
            lane.append(ev)
        if batch:
            mark = Watermark(batch[-1].ts_recv)
            for events in lanes.values():
                events.append(mark)
        return lanes, truth
