"""The compiled lane loop: the market stage's per-event work over a column batch, samples out.

``run_lane`` is ``MarketState.apply`` (engine/market.py) with the book, the compiled accumulators
(engine/kernel/accumulators.py: trade flow, OFI, time-weighted spread; engine/kernel/structure.py:
swing structure) and the compiled sweep detector (engine/kernel/sweep.py) as its listeners, in that
order: a bar close is taken before the
first row at or after its boundary is applied (and at the batch's watermark), then the detector's
bar hook runs; the listeners see only rows the book accepted, trade handlers first, then the
``on_last`` hooks after each LAST row; an event (or bar close) that completed detections is followed
by a detection sample (frames 0) showing the book after it. Each sample is an int row (time,
frames, the book's view as ``engine.kernel.book.write_view`` lays it out), a float row
(``KernelLane.names``) and a row of the kept swings; each detection a row of the detection table
(``engine.kernel.detections``: every detector's rows in one table, in the order found) naming its sample.

The loop stops before a row, changing nothing for it, when an array is full; ``KernelLane`` grows
that array and resumes there, so the output does not depend on the capacities or the batch cuts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.config.detectors import SweepParams
from engine.config.features import StructureParams
from engine.events import Detection
from engine.features.bars import NS
from engine.features.sample import Sample
from engine.kernel.accumulators import (
    FLOW_NAMES,
    HISTORY,
    O_DIRTY_A,
    O_DIRTY_B,
    S_COUNT,
    S_HEAD,
    SPREAD_NAMES,
    T_MATCH_KEY,
    flow_values,
    ofi_names,
    ofi_on_last,
    ofi_values,
    on_trade,
    spread_on_last,
    spread_values,
    unrolled,
)
from engine.kernel.book import (
    NEXT_CLOSE,
    OK,
    OUT_FULL,
    KernelBook,
    capacity,
    frames_at,
    jit,
    needs,
    update_row,
    write_view,
)
from engine.kernel.columns import K_DELTA, K_EXECUTE, K_SNAP, K_TRADE, K_TRUTH, ColumnBatch
from engine.kernel.detections import CLOSE_MAX, D_KIND, D_SAMPLE, FLOATS, INTS, K_SWEEP, ROW_MAX
from engine.kernel.structure import structure_names, structure_state, swing_on_trade, swing_structures, swing_values
from engine.kernel.sweep import (
    B_LEVELS,
    SW_SIZE,
    parameters,
    sweep_detection,
    sweep_expire,
    sweep_on_bar,
    sweep_on_trade,
)

GROW_TRADES, GROW_SEGMENTS, GROW_BURST = 4, 5, 7
# detection kind -> the Python detection of a row of the detection table
BUILDERS: dict[int, Callable[[np.ndarray, np.ndarray, int], Detection]] = {K_SWEEP: sweep_detection}


@jit
def _sample(lv, meta, depth_windows, acc, sg, ts, frames, out, n_out):
    tf, tw, tw_meta, windows_ns, of, cum, prev, hist_ends, hist, weights, st, seg, spread_ns = acc
    views, values, structs = out[0], out[1], out[4]
    views[n_out, 0] = ts
    views[n_out, 1] = frames
    write_view(lv, meta, depth_windows, views[:, 2:], n_out)
    row = values[n_out]
    flow_values(tf, tw, tw_meta, windows_ns, ts, row, 0)
    col = 10 + len(windows_ns)
    ofi_values(of, cum, hist_ends, hist, weights, ts, row, col)
    col += 8 + len(weights)
    spread_values(st, seg, spread_ns, ts, row, col)
    swing_values(sg[0], sg[1], sg[2], sg[3], lv, meta, ts, row, col + 1, structs[n_out])


@jit
def _detection_sample(lv, meta, depth_windows, acc, sg, ts, out, n_out, det_i, first, n_det):
    """A sample (frames 0) carrying detections ``first..n_det``, when there are any."""
    if n_det == first:
        return n_out
    _sample(lv, meta, depth_windows, acc, sg, ts, 0, out, n_out)
    for d in range(first, n_det):
        det_i[d, D_SAMPLE] = n_out
    return n_out + 1


@jit
def run_lane(lv, od, ids, meta, c, start, iid, depth_windows, step, mark, acc, det, sg, out, counts):
    """Rows ``start..`` of instrument ``iid`` and then the watermark ``mark`` (-1: none). ``acc``: the
    accumulators' arrays; ``det``: the sweep detector's (``sw``, ``prices``, ``ring``, ``par``, ``k``);
    ``sg``: the swing structure's; ``out``: (views, values, detection ints, detection floats, structure
    rows), filled from ``counts`` = (samples, detections), which it advances. Returns (status, row) as
    ``engine.kernel.book.apply_views``."""
    tf, tw, tw_meta, windows_ns, of, cum, prev, hist_ends, hist, weights, st, seg, spread_ns = acc
    sw, prices, ring, par, k = det
    views, det_i, det_f = out[0], out[2], out[3]
    n_out, n_det = counts[0], counts[1]
    rows = len(c[0])
    i = start
    status = OK
    while i <= rows:
        if i == rows:
            ts = mark
            if mark < 0 or meta[NEXT_CLOSE] < 0 or mark < meta[NEXT_CLOSE]:
                break
        else:
            kind = c[0][i]
            if c[1][i] != iid or kind == K_TRUTH:
                i += 1
                continue
            ts = c[3][i]
            if meta[NEXT_CLOSE] < 0:
                meta[NEXT_CLOSE] = (ts // step + 1) * step
            status = capacity(lv, od, meta, kind, needs(c, i))
            if status != OK:
                break
            if kind == K_TRADE:
                for w in range(tw.shape[0]):
                    if tw_meta[w, 1] >= tw.shape[2]:
                        status = GROW_TRADES
                if sw[B_LEVELS] >= len(prices):
                    status = GROW_BURST
            if c[5][i] & 0x80 and st[S_COUNT] >= seg.shape[1]:
                status = GROW_SEGMENTS
            if status != OK:
                break
        closes = (ts - meta[NEXT_CLOSE]) // step + 1 if ts >= meta[NEXT_CLOSE] else 0
        if n_out + 2 * closes + 1 > views.shape[0] or n_det + CLOSE_MAX * closes + ROW_MAX > det_i.shape[0]:
            status = OUT_FULL  # a bar sample and a detection sample per close, one more for the row
            break
        if closes:
            boundary = meta[NEXT_CLOSE]
            while boundary <= ts:
                frames = frames_at(boundary, step)
                _sample(lv, meta, depth_windows, acc, sg, boundary, frames, out, n_out)
                n_out += 1
                first = n_det
                n_det = sweep_on_bar(sw, ring, par, k, meta, det_i, det_f, n_det, boundary, frames)
                n_out = _detection_sample(lv, meta, depth_windows, acc, sg, boundary, out, n_out, det_i, first, n_det)
                boundary += step
            meta[NEXT_CLOSE] = boundary
        if i == rows:
            break
        if update_row(lv, od, ids, meta, c, i):
            kind = c[0][i]
            recv = c[3][i]
            first = n_det
            if kind == K_TRADE:
                on_trade(tf, tw, tw_meta, c[2][i], recv, c[7][i], c[8][i], c[6][i], c[18][i])
                swing_on_trade(sg[0], c[7][i])
                n_det = sweep_on_trade(sw, prices, par, k, meta, det_i, det_f, n_det, recv, c[4][i], c[7][i],
                                       c[8][i], c[6][i], c[18][i], c[19][i])
            elif kind == K_SNAP:
                of[O_DIRTY_B] = 1
                of[O_DIRTY_A] = 1
            elif K_DELTA <= kind <= K_EXECUTE:  # delta, add, cancel, delete, modify, execute
                if c[6][i] > 0:
                    of[O_DIRTY_B] = 1
                else:
                    of[O_DIRTY_A] = 1
            if c[5][i] & 0x80:  # LAST
                ofi_on_last(of, cum, prev, hist_ends, hist, lv, meta, recv)
                spread_on_last(st, seg, lv, meta, recv)
                n_det = sweep_expire(sw, par, k, meta, det_i, det_f, n_det, recv)
            n_out = _detection_sample(lv, meta, depth_windows, acc, sg, recv, out, n_out, det_i, first, n_det)
        i += 1
    counts[0] = n_out
    counts[1] = n_det
    return status, min(i, rows)


class LaneOutput:
    """The samples of one ``KernelLane.run``: ``views`` (time, frames, view), ``values`` (``names``), and
    the detections as rows naming their sample (``detections()`` rebuilds them as Python objects)."""

    def __init__(self, views: np.ndarray, values: np.ndarray, det_ints: np.ndarray, det_floats: np.ndarray,
                 structs: np.ndarray, kept: int, instrument_id: int) -> None:
        self.views = views
        self.values = values
        self.structs = structs
        self.kept = kept
        self.det_ints = det_ints
        self.det_floats = det_floats
        self.instrument_id = instrument_id

    def samples(self, book: KernelBook, names: tuple[str, ...]) -> list[Sample]:
        """The ``Sample`` objects ``MarketState.apply`` gives for the same events: the view of ``book``'s
        layout, the values by ``names``, the detections and the structures."""
        views = book.views(self.views[:, 2:])
        detections = self.detections()
        structures = self.structures()
        iid = self.instrument_id
        return [Sample(iid, ts, view.seq, frames, view, dict(zip(names, values, strict=True)), found, structs)
                for (ts, frames), view, values, found, structs
                in zip(self.views[:, :2].tolist(), views, self.values.tolist(), detections, structures, strict=True)]

    def structures(self) -> list[dict[str, object]]:
        """Per sample, the swing structures (``SwingStructure.structures``)."""
        return [swing_structures(row, self.kept) for row in self.structs]

    def detections(self) -> list[tuple[Detection, ...]]:
        """Per sample, the detections it carries (empty for a plain bar close), in the order found."""
        out: list[list[Detection]] = [[] for _ in range(len(self.views))]
        for row, floats in zip(self.det_ints, self.det_floats, strict=True):
            out[int(row[D_SAMPLE])].append(BUILDERS[int(row[D_KIND])](row, floats, self.instrument_id))
        return [tuple(d) for d in out]


class KernelLane:
    """One instrument's book, accumulators and sweep detector in arrays; ``run`` gives a batch's samples.

    Args:
        book: the lane's ``KernelBook`` (its view levels and depth windows shape the view rows).
        trade_windows_s: ``TradeFlow``'s imbalance windows; ``ofi_levels``: M of F6;
            ``spread_window_s``: ``SpreadTime``'s window; ``sweep``: the sweep detector's parameters
            (None: no sweep detector); ``structure``: ``SwingStructure``'s; ``step_ns``: the TF1 bar.
    """

    def __init__(self, book: KernelBook, trade_windows_s: tuple[float, ...] = (5.0, 30.0), ofi_levels: int = 5,
                 spread_window_s: float = 10.0, sweep: SweepParams | None = None,
                 structure: StructureParams | None = None, step_ns: int = NS, capacity: int = 1024) -> None:
        self.book = book
        self.step = step_ns
        self.structure = structure_state(structure)
        self.kept = self.structure[2].shape[2]
        self.names = (*FLOW_NAMES, *(f"trade_imbalance_{w:g}s" for w in trade_windows_s), *ofi_names(ofi_levels),
                      *SPREAD_NAMES, *structure_names(self.kept))
        windows = len(trade_windows_s)
        tf = np.zeros(12, dtype=np.int64)
        tf[T_MATCH_KEY] = -1
        self.spread_ns = int(spread_window_s * NS)
        self.arrays: list[np.ndarray] = [
            tf,
            np.zeros((windows, 3, capacity), dtype=np.int64),  # trade windows' rings
            np.zeros((windows, 4), dtype=np.int64),
            np.array([int(w * NS) for w in trade_windows_s], dtype=np.int64),
            np.zeros(12, dtype=np.int64),  # OFI
            np.zeros(3 + ofi_levels + 1, dtype=np.int64),
            np.zeros((4, ofi_levels), dtype=np.int64),
            np.zeros(HISTORY + 1, dtype=np.int64),
            np.zeros((HISTORY + 1, 3 + ofi_levels + 1), dtype=np.int64),
            np.full(ofi_levels, 1.0 / ofi_levels),
            np.zeros(6, dtype=np.int64),  # spread time
            np.zeros((3, capacity), dtype=np.int64),
        ]
        par, self.sweep_k, bars = parameters(sweep)
        self.sweep: list[np.ndarray] = [np.zeros(SW_SIZE, dtype=np.int64), np.zeros(min(capacity, 64), dtype=np.int64),
                                        np.zeros((3, bars), dtype=np.int64), par]

    def run(self, batch: ColumnBatch, mark: int = -1) -> LaneOutput:
        """Apply a batch; the samples of its bar closes and detections."""
        book = self.book
        c = tuple(getattr(batch, name) for name in batch.__struct_fields__)
        out = [np.zeros((64, 2 + book.view_width), dtype=np.int64), np.zeros((64, len(self.names))),
               np.zeros((16, INTS), dtype=np.int64), np.zeros((16, FLOATS)),
               np.zeros((64, 2 * (1 + 3 * self.kept)), dtype=np.int64)]
        counts = np.zeros(2, dtype=np.int64)
        start = 0
        while True:
            status, start = run_lane(book.lv, book.od, book.ids, book.meta, c, start, book.instrument_id,
                                     book.depth_windows, self.step, mark, (*self.arrays, self.spread_ns),
                                     (*self.sweep, self.sweep_k), tuple(self.structure), tuple(out), counts)
            if status == OK:
                break
            if status == OUT_FULL:
                out = [np.concatenate([a, np.zeros_like(a)]) for a in out]
            elif status == GROW_TRADES:
                rings, meta = self.arrays[1], self.arrays[2]
                grown = np.stack([unrolled(rings[w], int(meta[w, 0]), int(meta[w, 1]), 2 * rings.shape[2])
                                  for w in range(len(rings))])
                meta[:, 0] = 0
                self.arrays[1] = grown
            elif status == GROW_SEGMENTS:
                st, seg = self.arrays[10], self.arrays[11]
                self.arrays[11] = unrolled(seg, int(st[S_HEAD]), int(st[S_COUNT]), 2 * seg.shape[1])
                st[S_HEAD] = 0
            elif status == GROW_BURST:
                self.sweep[1] = np.concatenate([self.sweep[1], np.zeros_like(self.sweep[1])])
            else:
                book.grow(status, start, batch)
        n_out, n_det = int(counts[0]), int(counts[1])
        return LaneOutput(out[0][:n_out], out[1][:n_out], out[2][:n_det], out[3][:n_det], out[4][:n_out], self.kept,
                          book.instrument_id)


__all__ = ["KernelLane", "LaneOutput", "run_lane"]
