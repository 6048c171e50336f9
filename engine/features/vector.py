"""The feature vector: every feature of one instrument at one sample, by stable name, immutable.

Built by the feature stage (``engine/features/engine.py``) at every sample: bar closes (TF1 = 1 s,
with TF2/TF3 bits) and detection samples. ``values`` holds exactly the engine's declared names
(``FeatureEngine.names``), all finite; ``view`` is the book the features were computed on and
``detections`` what the market stage found at this sample (empty at a bar close).
"""

from __future__ import annotations

import msgspec

from engine.book import BookView
from engine.events import Detection


class FeatureVector(msgspec.Struct, frozen=True, gc=False):
    instrument_id: int
    ts_recv: int
    seq: int
    state: int  # the book's state bits (STALE, CROSSED, HALTED)
    frames: int  # TF1 | TF2 | TF3 at a bar close, 0 at a detection sample
    values: dict[str, float]
    view: BookView
    detections: tuple[Detection, ...] = ()
    structures: dict = {}  # the sample's immutable structures (swings, volume-profile snapshots)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def sort_key(self) -> tuple[int, int, int]:
        return (self.ts_recv, self.instrument_id, self.seq)
