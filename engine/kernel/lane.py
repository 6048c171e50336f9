"""The compiled lane loop: the market stage's per-event work over a column batch, samples out.

``run_lane`` is ``MarketState.apply`` (engine/market.py) with the book and the compiled accumulators
(engine/kernel/accumulators.py: trade flow, OFI, time-weighted spread) as its listeners, in the same
order: a bar close is taken before the first row at or after its boundary is applied (and at the
batch's watermark), the accumulators see only rows the book accepted, ``on_last`` work follows each
LAST row. Each close gives one sample: an int row (boundary, frames, the book's view as
``engine.kernel.book.write_view`` lays it out) and a float row (``KernelLane.names``).

The loop stops before a row, changing nothing for it, when an array is full; ``KernelLane`` grows
that array and resumes there, so the output does not depend on the capacities or the batch cuts.
"""

from __future__ import annotations

import numpy as np

from engine.features.bars import NS, TF1, TF2, TF3
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
from engine.kernel.book import NEXT_CLOSE, OK, OUT_FULL, KernelBook, capacity, jit, needs, update_row, write_view
from engine.kernel.columns import K_DELTA, K_EXECUTE, K_SNAP, K_TRADE, K_TRUTH, ColumnBatch

GROW_TRADES, GROW_SEGMENTS = 4, 5


@jit
def _sample(lv, meta, depth_windows, acc, boundary, frames, views, values, n_out):
    tf, tw, tw_meta, windows_ns, of, cum, prev, hist_ends, hist, weights, st, seg, spread_ns = acc
    views[n_out, 0] = boundary
    views[n_out, 1] = frames
    write_view(lv, meta, depth_windows, views[:, 2:], n_out)
    row = values[n_out]
    flow_values(tf, tw, tw_meta, windows_ns, boundary, row, 0)
    col = 10 + len(windows_ns)
    ofi_values(of, cum, hist_ends, hist, weights, boundary, row, col)
    col += 8 + len(weights)
    spread_values(st, seg, spread_ns, boundary, row, col)


@jit
def run_lane(lv, od, ids, meta, c, start, iid, depth_windows, step, mark, acc, views, values, n_out):
    """Rows ``start..`` of instrument ``iid`` and then the watermark ``mark`` (-1: none); ``acc`` is
    ``KernelLane.state()``. Returns (status, row, n_out) as ``engine.kernel.book.apply_views``."""
    tf, tw, tw_meta, windows_ns, of, cum, prev, hist_ends, hist, weights, st, seg, spread_ns = acc
    rows = len(c[0])
    i = start
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
                return status, i, n_out
            if kind == K_TRADE:
                for w in range(tw.shape[0]):
                    if tw_meta[w, 1] >= tw.shape[2]:
                        return GROW_TRADES, i, n_out
            if c[5][i] & 0x80 and st[S_COUNT] >= seg.shape[1]:
                return GROW_SEGMENTS, i, n_out
        if ts >= meta[NEXT_CLOSE]:
            boundary = meta[NEXT_CLOSE]
            if n_out + (ts - boundary) // step + 1 > views.shape[0]:
                return OUT_FULL, i, n_out
            while boundary <= ts:
                frames = TF1
                if boundary % (10 * step) == 0:
                    frames |= TF2
                if boundary % (60 * step) == 0:
                    frames |= TF3
                _sample(lv, meta, depth_windows, acc, boundary, frames, views, values, n_out)
                n_out += 1
                boundary += step
            meta[NEXT_CLOSE] = boundary
        if i == rows:
            break
        if update_row(lv, od, ids, meta, c, i):
            kind = c[0][i]
            if kind == K_TRADE:
                on_trade(tf, tw, tw_meta, c[2][i], c[3][i], c[7][i], c[8][i], c[6][i], c[18][i])
            elif kind == K_SNAP:
                of[O_DIRTY_B] = 1
                of[O_DIRTY_A] = 1
            elif K_DELTA <= kind <= K_EXECUTE:  # delta, add, cancel, delete, modify, execute
                if c[6][i] > 0:
                    of[O_DIRTY_B] = 1
                else:
                    of[O_DIRTY_A] = 1
            if c[5][i] & 0x80:  # LAST
                ofi_on_last(of, cum, prev, hist_ends, hist, lv, meta, c[3][i])
                spread_on_last(st, seg, lv, meta, c[3][i])
        i += 1
    return OK, rows, n_out


class KernelLane:
    """One instrument's book and accumulators in arrays; ``run`` gives the bar-close samples of a batch.

    Args:
        book: the lane's ``KernelBook`` (its view levels and depth windows shape the view rows).
        trade_windows_s: ``TradeFlow``'s imbalance windows; ``ofi_levels``: M of F6;
            ``spread_window_s``: ``SpreadTime``'s window; ``step_ns``: the TF1 bar.
    """

    def __init__(self, book: KernelBook, trade_windows_s: tuple[float, ...] = (5.0, 30.0), ofi_levels: int = 5,
                 spread_window_s: float = 10.0, step_ns: int = NS, capacity: int = 1024) -> None:
        self.book = book
        self.step = step_ns
        self.names = (*FLOW_NAMES, *(f"trade_imbalance_{w:g}s" for w in trade_windows_s), *ofi_names(ofi_levels),
                      *SPREAD_NAMES)
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

    def run(self, batch: ColumnBatch, mark: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Apply a batch; per bar close an int row (boundary, frames, view) and a float row (``names``)."""
        book = self.book
        c = tuple(getattr(batch, name) for name in batch.__struct_fields__)
        width = 2 + book.view_width
        views = np.zeros((64, width), dtype=np.int64)
        values = np.zeros((64, len(self.names)), dtype=np.float64)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        start, n_out = 0, 0
        while True:
            status, start, n_out = run_lane(book.lv, book.od, book.ids, book.meta, c, start, book.instrument_id,
                                            book.depth_windows, self.step, mark, (*self.arrays, self.spread_ns), views,
                                            values, n_out)
            if status == OK:
                break
            if status == OUT_FULL:
                parts.append((views[:n_out], values[:n_out]))
                size = 2 * len(views)
                views = np.zeros((size, width), dtype=np.int64)
                values, n_out = np.zeros((size, len(self.names)), dtype=np.float64), 0
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
            else:
                book.grow(status, start, batch)
        parts.append((views[:n_out], values[:n_out]))
        return np.concatenate([v for v, _ in parts]), np.concatenate([x for _, x in parts])


__all__ = ["KernelLane", "run_lane"]
