"""The lane's detection table: every compiled detector writes its detections into one pair of arrays,
in the order it finds them, so a sample's detections come out in the order ``MarketState`` collects
them (the listeners' order within an event) whatever their kind.

A row: the header (``D_SAMPLE`` the sample it travels in, ``D_KIND`` which detector, ``D_TS`` and
``D_SEQ`` its time and the book's sequence number), then the detector's own int fields from
``FIRST``; its float fields in the float row. Each detector module names its fields from ``FIRST``
and builds its Python ``Detection`` from a row (``LaneOutput.detections`` picks the builder by
``D_KIND``). ``INTS`` and ``FLOATS`` are the widest layout of any detector.

Capacity: before a row is applied the lane makes room for ``ROW_MAX`` detections, and for
``CLOSE_MAX`` per bar close it crosses: the most any one event or close can give, summed over the
detectors (each module states its own).
"""

from __future__ import annotations

from engine.book import UNUSABLE
from engine.kernel.book import STATE, jit

D_SAMPLE, D_KIND, D_TS, D_SEQ = range(4)
FIRST = 4
INTS, FLOATS = 24, 8
# detector kinds, in the pipeline's listener order (engine/pipeline/wiring.py, market_detectors)
K_ICEBERG, K_ABSORPTION, K_SWEEP, K_TRAPPED, K_VACUUM, K_SPOOFING, K_WITHDRAWAL, K_WALL = range(8)
# the most detections one row / one bar close can give (the sweep detector: one burst closed by a fill
# and one by the LAST that follows; one expired at a close)
ROW_MAX = 2
CLOSE_MAX = 1


@jit
def found(meta, det_i, n_det, kind, ts, seq, usable_only):
    """Stamp the detection just written at ``n_det`` (kind, time, seq; its sample is set when that sample
    is written). With ``usable_only`` it counts only on a usable book. Returns the new count."""
    if usable_only and meta[STATE] & UNUSABLE:
        return n_det
    det_i[n_det, D_KIND] = kind
    det_i[n_det, D_TS] = ts
    det_i[n_det, D_SEQ] = seq
    det_i[n_det, D_SAMPLE] = -1
    return n_det + 1
