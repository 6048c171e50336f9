"""The order book as arrays, updated by numba-compiled functions over column batches.

The same book as ``engine.book.OrderBook`` (its docstring has the rules: L3 orders in FIFO queues,
L2 levels derived from them, anonymous L2-only size, the sequence, gap, crossed and halt states,
the integrity counters), with the state in numpy arrays so that a compiled loop applies a whole
``ColumnBatch`` (engine/kernel/columns.py) without a Python call per event. ``OrderBook`` is the
reference: for the same events both hold the same levels, FIFO queues, state and counters, and
give the same top-N views (tests/engine/kernel/test_book_kernel.py, on both LOBSTER days, on
simulator sessions and on random sequences).

Layout (``KernelBook`` owns the arrays; the compiled functions take them):
- ``lv[s, field, i]``: side ``s`` (0 bids, 1 asks; a side other than BUY is the ask side, as in
  ``OrderBook``), levels in ``0 .. n-1`` sorted by ascending key, the price on the bid side and minus
  the price on the ask side, so that each side's best level is its last and a level appearing or
  going near the best moves few others; fields ``PX, TOT, ANON, HEAD, TAIL, LSIDE`` (key, total,
  L2-only size, first and last order slot of the FIFO queue or -1, the side value the level was
  created with);
- ``od[field, slot]``: resting orders ``ID, SIDE, PX, SZ, PREV, NEXT`` (the FIFO links within a level;
  ``NEXT`` also chains the free slots), and ``ids`` a typed dict from order id to slot;
- ``meta``: the sequence, state, times, level counts, slot bookkeeping and the counters.

A batch stops early, before changing anything for the row it stopped at, when the level or slot
arrays are full; ``KernelBook`` then grows them and resumes at that row.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.typed import Dict

from engine.book import CROSSED, HALTED, STALE, BookCounters, BookView
from engine.events import BUY, CLEAR, DELETE, LAST, MarketState
from engine.features.bars import NS, TF1, TF2, TF3
from engine.kernel.columns import (
    K_ADD,
    K_CANCEL,
    K_DELETE,
    K_DELTA,
    K_EXECUTE,
    K_MODIFY,
    K_SNAP,
    K_STATUS,
    K_TRUTH,
    ColumnBatch,
)

# level fields
PX, TOT, ANON, HEAD, TAIL, LSIDE = range(6)
# order fields
OID, OSIDE, OPX, OSZ, PREV, NEXT = range(6)
# meta fields
(LAST_SEQ, STATE, TS_EVENT, TS_RECV, NBID, NASK, FREE, USED, C_GAPS, C_OUT_OF_ORDER, C_CROSSED, C_UNKNOWN,
 C_MISSING, C_OVERDRAWN, C_DUPLICATE, C_SNAPSHOTS, NEXT_CLOSE) = range(17)
COUNTERS = tuple(BookCounters.__struct_fields__)  # the order of meta[C_GAPS:]
META_SIZE = 17

OK, GROW_LEVELS, GROW_ORDERS, OUT_FULL = 0, 1, 2, 3
_OPEN = int(MarketState.OPEN)
_NO_FLOOR = 1 << 62

jit = numba.njit(cache=True, nogil=True)  # every compiled function: cached on disk, GIL released


@jit
def _s(side):
    return 0 if side == BUY else 1


@jit
def key(s, price):
    """A level's sort key: the price on the bid side, minus the price on the ask side."""
    return price if s == 0 else -price


@jit
def price_at(lv, s, i):
    """The price of level ``i`` of side ``s``."""
    return lv[s, PX, i] if s == 0 else -lv[s, PX, i]


@jit
def _find(lv, meta, s, price):
    """Index of the first level of side ``s`` with a key >= the price's (bisect_left)."""
    lo = 0
    hi = meta[NBID + s]
    keys = lv[s, PX]
    k = key(s, price)
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < k:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def _level(lv, meta, s, price, side):
    """Index of the level at ``price``, created empty (total 0) when missing."""
    i = _find(lv, meta, s, price)
    n = meta[NBID + s]
    if i < n and lv[s, PX, i] == key(s, price):
        return i
    for f in range(6):
        row = lv[s, f]
        for k in range(n, i, -1):
            row[k] = row[k - 1]
    lv[s, PX, i] = key(s, price)
    lv[s, TOT, i] = 0
    lv[s, ANON, i] = 0
    lv[s, HEAD, i] = -1
    lv[s, TAIL, i] = -1
    lv[s, LSIDE, i] = side
    meta[NBID + s] = n + 1
    return i


@jit
def _drop_level(lv, meta, s, i):
    n = meta[NBID + s] - 1
    for f in range(6):
        row = lv[s, f]
        for k in range(i, n):
            row[k] = row[k + 1]
    meta[NBID + s] = n


@jit
def _set_total(lv, meta, s, i, total):
    if total > 0:
        lv[s, TOT, i] = total
    else:
        _drop_level(lv, meta, s, i)


@jit
def _free(od, meta, slot):
    od[NEXT, slot] = meta[FREE]
    meta[FREE] = slot


@jit
def _unlink(lv, od, s, i, slot):
    prev = od[PREV, slot]
    nxt = od[NEXT, slot]
    if prev >= 0:
        od[NEXT, prev] = nxt
    else:
        lv[s, HEAD, i] = nxt
    if nxt >= 0:
        od[PREV, nxt] = prev
    else:
        lv[s, TAIL, i] = prev


@jit
def _rest(lv, od, ids, meta, oid, side, price, size):
    """Queue a new order at the back of its level (the caller checked the capacity)."""
    s = _s(side)
    i = _level(lv, meta, s, price, side)
    lv[s, TOT, i] += size
    slot = meta[FREE]
    if slot >= 0:
        meta[FREE] = od[NEXT, slot]
    else:
        slot = meta[USED]
        meta[USED] = slot + 1
    od[OID, slot] = oid
    od[OSIDE, slot] = side
    od[OPX, slot] = price
    od[OSZ, slot] = size
    tail = lv[s, TAIL, i]
    od[PREV, slot] = tail
    od[NEXT, slot] = -1
    if tail >= 0:
        od[NEXT, tail] = slot
    else:
        lv[s, HEAD, i] = slot
    lv[s, TAIL, i] = slot
    ids[oid] = slot


@jit
def _remove(lv, od, ids, meta, oid):
    """Take a resting order out of the book; returns its size."""
    slot = ids[oid]
    del ids[oid]
    s = _s(od[OSIDE, slot])
    price = od[OPX, slot]
    size = od[OSZ, slot]
    i = _find(lv, meta, s, price)
    _unlink(lv, od, s, i, slot)
    _free(od, meta, slot)
    _set_total(lv, meta, s, i, lv[s, TOT, i] - size)
    return size


@jit
def _take(lv, od, ids, meta, oid, size):
    """Take up to ``size`` lots from a resting order, keeping its place; returns the lots taken."""
    slot = ids[oid]
    s = _s(od[OSIDE, slot])
    i = _find(lv, meta, s, od[OPX, slot])
    current = od[OSZ, slot]
    if size >= current:
        size = current
        del ids[oid]
        _unlink(lv, od, s, i, slot)
        _free(od, meta, slot)
    else:
        od[OSZ, slot] = current - size
    _set_total(lv, meta, s, i, lv[s, TOT, i] - size)
    return size


@jit
def _reduce_anonymous(lv, meta, side, price, size):
    s = _s(side)
    i = _find(lv, meta, s, price)
    if i >= meta[NBID + s] or lv[s, PX, i] != key(s, price):
        meta[C_MISSING] += 1
        return
    anon = lv[s, ANON, i]
    take = size if size <= anon else anon
    if take < size:
        meta[C_OVERDRAWN] += 1
    lv[s, ANON, i] = anon - take
    _set_total(lv, meta, s, i, lv[s, TOT, i] - take)


@jit
def _reduce(lv, od, ids, meta, oid, side, price, size):
    if oid not in ids:
        meta[C_UNKNOWN] += 1
        _reduce_anonymous(lv, meta, side, price, size)
    elif _take(lv, od, ids, meta, oid, size) < size:
        meta[C_OVERDRAWN] += 1


@jit
def _add(lv, od, ids, meta, oid, side, price, size):
    if oid in ids:
        meta[C_DUPLICATE] += 1
        _remove(lv, od, ids, meta, oid)
    if size > 0:
        _rest(lv, od, ids, meta, oid, side, price, size)


@jit
def _modify(lv, od, ids, meta, oid, side, price, size):
    if oid not in ids:
        meta[C_UNKNOWN] += 1
        _add(lv, od, ids, meta, oid, side, price, size)
        return
    slot = ids[oid]
    s = _s(od[OSIDE, slot])
    i = _find(lv, meta, s, od[OPX, slot])
    current = od[OSZ, slot]
    if price == od[OPX, slot] and side == lv[s, LSIDE, i] and size <= current:
        _take(lv, od, ids, meta, oid, current - size)  # keeps priority; a modify to 0 removes it
        return
    _remove(lv, od, ids, meta, oid)
    if size > 0:
        _rest(lv, od, ids, meta, oid, side, price, size)


@jit
def _set_level(lv, od, ids, meta, side, price, size):
    """Force one level's total to ``size`` (L2 truth), trimming L3 orders from the back if needed."""
    s = _s(side)
    i = _find(lv, meta, s, price)
    exists = i < meta[NBID + s] and lv[s, PX, i] == key(s, price)
    if size <= 0:
        if exists:
            slot = lv[s, HEAD, i]
            while slot >= 0:
                nxt = od[NEXT, slot]
                del ids[od[OID, slot]]
                _free(od, meta, slot)
                slot = nxt
            _drop_level(lv, meta, s, i)
        return
    if not exists:
        i = _level(lv, meta, s, price, side)
    known = lv[s, TOT, i] - lv[s, ANON, i]
    while known > size:  # the newest orders are the least likely to still be there
        slot = lv[s, TAIL, i]
        _unlink(lv, od, s, i, slot)
        del ids[od[OID, slot]]
        known -= od[OSZ, slot]
        _free(od, meta, slot)
    lv[s, ANON, i] = size - known
    _set_total(lv, meta, s, i, size)


@jit
def _clear(ids, meta):
    ids.clear()
    meta[NBID] = 0
    meta[NASK] = 0
    meta[FREE] = -1
    meta[USED] = 0


@jit
def capacity(lv, od, meta, kind, need_levels):
    """GROW_LEVELS / GROW_ORDERS when the row could overflow the arrays, else OK."""
    cap_levels = lv.shape[2]
    if meta[NBID] + need_levels > cap_levels or meta[NASK] + need_levels > cap_levels:
        return GROW_LEVELS
    if kind in (K_ADD, K_MODIFY) and meta[FREE] < 0 and meta[USED] >= od.shape[1]:
        return GROW_ORDERS
    return OK


@jit
def update_row(lv, od, ids, meta, c, i):
    """Apply row ``i`` of the batch ``c`` (a tuple of the ``ColumnBatch`` arrays). False: dropped."""
    kind, seq = c[0][i], c[4][i]
    if seq != meta[LAST_SEQ] + 1 and not (meta[LAST_SEQ] < 0 or kind == K_SNAP):
        if seq <= meta[LAST_SEQ]:
            meta[C_OUT_OF_ORDER] += 1
            return False
        meta[C_GAPS] += 1
        meta[STATE] |= STALE
    meta[LAST_SEQ] = seq
    side, price, size = c[6][i], c[7][i], c[8][i]
    if kind == K_ADD:
        _add(lv, od, ids, meta, c[10][i], side, price, size)
    elif kind in (K_CANCEL, K_EXECUTE):
        _reduce(lv, od, ids, meta, c[10][i], side, price, size)
    elif kind == K_DELETE:
        oid = c[10][i]
        if oid in ids:
            _remove(lv, od, ids, meta, oid)
        else:
            meta[C_UNKNOWN] += 1
            _reduce_anonymous(lv, meta, side, price, size)
    elif kind == K_MODIFY:
        _modify(lv, od, ids, meta, c[10][i], side, price, size)
    elif kind == K_DELTA:
        action = c[9][i]
        if action == CLEAR:
            _clear(ids, meta)
        elif action == DELETE:
            _set_level(lv, od, ids, meta, side, price, 0)
        else:
            _set_level(lv, od, ids, meta, side, price, size)
    elif kind == K_SNAP:
        _clear(ids, meta)
        for k in range(c[12][i], c[12][i + 1]):
            if c[14][k] > 0:
                _set_level(lv, od, ids, meta, BUY, c[13][k], c[14][k])
        for k in range(c[15][i], c[15][i + 1]):
            if c[17][k] > 0:
                _set_level(lv, od, ids, meta, -1, c[16][k], c[17][k])
        meta[STATE] &= ~(STALE | CROSSED)
        meta[C_SNAPSHOTS] += 1
    elif kind == K_STATUS:
        if c[11][i] == _OPEN:
            meta[STATE] &= ~HALTED
        else:
            meta[STATE] |= HALTED
    if c[5][i] & LAST:
        meta[TS_EVENT] = c[2][i]
        meta[TS_RECV] = c[3][i]
        nb, na = meta[NBID], meta[NASK]
        if nb and na and lv[0, PX, nb - 1] >= -lv[1, PX, na - 1] and not meta[STATE] & CROSSED:
            meta[STATE] |= CROSSED
            meta[C_CROSSED] += 1
    return True


@jit
def needs(c, i):
    """Levels per side row ``i`` may create."""
    if c[0][i] == K_SNAP:
        return max(c[12][i + 1] - c[12][i], c[15][i + 1] - c[15][i])
    return 1


@jit
def write_view(lv, meta, depth_windows, out, k):
    """Row ``k`` of ``out``: seq, state, ts_event, ts_recv, level counts, top-N per side, depths."""
    n = (out.shape[1] - 6 - 2 * len(depth_windows)) // 4
    out[k, 0] = meta[LAST_SEQ]
    out[k, 1] = meta[STATE]
    out[k, 2] = meta[TS_EVENT]
    out[k, 3] = meta[TS_RECV]
    nb, na = meta[NBID], meta[NASK]
    out[k, 4] = min(nb, n)
    out[k, 5] = min(na, n)
    col = 6
    for j in range(n):
        out[k, col + j] = lv[0, PX, nb - 1 - j] if j < nb else 0
        out[k, col + n + j] = lv[0, TOT, nb - 1 - j] if j < nb else 0
        out[k, col + 2 * n + j] = -lv[1, PX, na - 1 - j] if j < na else 0
        out[k, col + 3 * n + j] = lv[1, TOT, na - 1 - j] if j < na else 0
    col += 4 * n
    for w in range(len(depth_windows)):
        ticks = depth_windows[w]
        total = 0
        if nb:
            edge = lv[0, PX, nb - 1] - ticks
            j = nb - 1
            while j >= 0 and lv[0, PX, j] > edge:
                total += lv[0, TOT, j]
                j -= 1
        out[k, col + w] = total
        total = 0
        if na:
            edge = lv[1, PX, na - 1] - ticks  # keys: minus the price
            j = na - 1
            while j >= 0 and lv[1, PX, j] > edge:
                total += lv[1, TOT, j]
                j -= 1
        out[k, col + len(depth_windows) + w] = total


@jit
def apply_views(lv, od, ids, meta, c, start, iid, depth_windows, out, n_out):
    """Apply rows ``start..`` of instrument ``iid`` (truth labels skipped); after each applied LAST row
    write a view into ``out[n_out]`` (``OrderBook.apply``'s views). Returns (status, row, n_out):
    the row to resume at when the arrays must grow (or ``out`` is full), else the batch's length."""
    rows = len(c[0])
    for i in range(start, rows):
        if c[1][i] != iid or c[0][i] == K_TRUTH:
            continue
        status = capacity(lv, od, meta, c[0][i], needs(c, i))
        if status != OK:
            return status, i, n_out
        if n_out == out.shape[0] and c[5][i] & LAST:
            return OUT_FULL, i, n_out  # the caller takes ``out`` and resumes here
        if update_row(lv, od, ids, meta, c, i) and c[5][i] & LAST:
            write_view(lv, meta, depth_windows, out, n_out)
            n_out += 1
    return OK, rows, n_out


@jit
def frames_at(boundary, step):
    """The bar frames closing at ``boundary`` (``BarClock.closes``): TF1, with TF2 every 10 and TF3
    every 60 steps of the epoch."""
    frames = TF1
    if boundary % (10 * step) == 0:
        frames |= TF2
    if boundary % (60 * step) == 0:
        frames |= TF3
    return frames


@jit
def _close_bars(lv, meta, depth_windows, step, ts, out, n_out):
    """One sample row per bar boundary in ``(previous, ts]`` (``BarClock.closes``): boundary, frames,
    then the view of the book as it is (before the event that closes them). Returns the new count,
    or -1 when ``out`` cannot hold them all (nothing written then)."""
    boundary = meta[NEXT_CLOSE]
    if n_out + (ts - boundary) // step + 1 > out.shape[0]:
        return -1
    while boundary <= ts:
        out[n_out, 0] = boundary
        out[n_out, 1] = frames_at(boundary, step)
        write_view(lv, meta, depth_windows, out[:, 2:], n_out)
        n_out += 1
        boundary += step
    meta[NEXT_CLOSE] = boundary
    return n_out


@jit
def apply_bars(lv, od, ids, meta, c, start, iid, depth_windows, step, mark, out, n_out):
    """``MarketState.apply``'s bar closes for rows ``start..`` of instrument ``iid``: a sample row
    (``_close_bars``) for every boundary crossed, taken before the first row at or after it is
    applied, and at the end for the watermark ``mark`` (-1: none). Returns (status, row, n_out) as
    ``apply_views``."""
    rows = len(c[0])
    for i in range(start, rows):
        if c[1][i] != iid or c[0][i] == K_TRUTH:
            continue
        ts = c[3][i]
        if meta[NEXT_CLOSE] < 0:
            meta[NEXT_CLOSE] = (ts // step + 1) * step
        status = capacity(lv, od, meta, c[0][i], needs(c, i))
        if status != OK:
            return status, i, n_out
        if ts >= meta[NEXT_CLOSE]:
            n = _close_bars(lv, meta, depth_windows, step, ts, out, n_out)
            if n < 0:
                return OUT_FULL, i, n_out
            n_out = n
        update_row(lv, od, ids, meta, c, i)
    if mark >= 0 and 0 <= meta[NEXT_CLOSE] <= mark:
        n = _close_bars(lv, meta, depth_windows, step, mark, out, n_out)
        if n < 0:
            return OUT_FULL, rows, n_out
        n_out = n
    return OK, rows, n_out


def _new_ids() -> Dict:
    return Dict.empty(key_type=types.int64, value_type=types.int64)


class KernelBook:
    """One instrument's book in arrays; ``apply`` runs the compiled loop over a ``ColumnBatch``.

    Args:
        instrument_id: rows of other instruments in a batch are skipped.
        view_levels, depth_windows: as ``OrderBook``'s (the views' top-N and depth windows).
    """

    def __init__(self, instrument_id: int, view_levels: int = 10, depth_windows: tuple[int, ...] = (5, 10),
                 level_capacity: int = 256, order_capacity: int = 4096) -> None:
        self.instrument_id = instrument_id
        self.view_levels = view_levels
        self.depth_windows = np.array(depth_windows, dtype=np.int64)
        self.lv = np.zeros((2, 6, level_capacity), dtype=np.int64)
        self.od = np.zeros((6, order_capacity), dtype=np.int64)
        self.ids = _new_ids()
        self.meta = np.zeros(META_SIZE, dtype=np.int64)
        self.meta[LAST_SEQ] = -1
        self.meta[FREE] = -1
        self.meta[NEXT_CLOSE] = -1

    @property
    def view_width(self) -> int:
        """Columns of a view row: 6 + 4 * view_levels + 2 * len(depth_windows)."""
        return 6 + 4 * self.view_levels + 2 * len(self.depth_windows)

    def views(self, rows: np.ndarray) -> list[BookView]:
        """The ``BookView`` of each view row (``write_view``'s layout), as ``OrderBook.view`` gives it."""
        n, w, iid = self.view_levels, len(self.depth_windows), self.instrument_id
        out = []
        for row in rows.tolist():
            nb, na = row[4], row[5]
            depth = 6 + 4 * n
            out.append(BookView(iid, row[2], row[3], row[0], row[1], tuple(row[6:6 + nb]), tuple(row[6 + n:6 + n + nb]),
                                tuple(row[6 + 2 * n:6 + 2 * n + na]), tuple(row[6 + 3 * n:6 + 3 * n + na]),
                                tuple(row[depth:depth + w]) if nb else (),
                                tuple(row[depth + w:depth + 2 * w]) if na else ()))
        return out

    def apply(self, batch: ColumnBatch) -> np.ndarray:
        """Apply a batch; one view row (``write_view``'s layout) after each applied LAST row."""
        c = tuple(getattr(batch, name) for name in batch.__struct_fields__)

        def step(start: int, out: np.ndarray, n_out: int) -> tuple[int, int, int]:
            return apply_views(self.lv, self.od, self.ids, self.meta, c, start, self.instrument_id,
                               self.depth_windows, out, n_out)
        return self._drive(batch, step, self.view_width)

    def bars(self, batch: ColumnBatch, mark: int = -1, step_ns: int = NS) -> np.ndarray:
        """Apply a batch; one row per bar close (boundary, frames, then a view row), as the market
        stage samples them; ``mark`` is the batch's watermark (-1: none)."""
        c = tuple(getattr(batch, name) for name in batch.__struct_fields__)

        def step(start: int, out: np.ndarray, n_out: int) -> tuple[int, int, int]:
            return apply_bars(self.lv, self.od, self.ids, self.meta, c, start, self.instrument_id,
                              self.depth_windows, step_ns, mark, out, n_out)
        return self._drive(batch, step, 2 + self.view_width)

    def _drive(self, batch: ColumnBatch, step, width: int) -> np.ndarray:
        """Run a compiled loop to the batch's end, growing the arrays and the output as it asks."""
        out = np.zeros((64, width), dtype=np.int64)
        parts, start, n_out = [], 0, 0
        while True:
            status, start, n_out = step(start, out, n_out)
            if status == OK:
                break
            if status == OUT_FULL:
                parts.append(out[:n_out])
                out, n_out = np.zeros((max(64, 2 * len(out)), width), dtype=np.int64), 0
            else:
                self.grow(status, start, batch)
        parts.append(out[:n_out])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def grow(self, status: int, row: int, batch: ColumnBatch) -> None:
        """Grow what a compiled loop stopped for at ``row``: GROW_LEVELS or GROW_ORDERS."""
        if status == GROW_ORDERS:
            self.od = np.concatenate([self.od, np.zeros_like(self.od)], axis=1)
            return
        need = 1 + max(int(batch.bid_off[row + 1] - batch.bid_off[row]),
                       int(batch.ask_off[row + 1] - batch.ask_off[row]))
        size = self.lv.shape[2]
        while size < max(self.meta[NBID], self.meta[NASK]) + need:
            size *= 2
        grown = np.zeros((2, 6, size), dtype=np.int64)
        grown[:, :, : self.lv.shape[2]] = self.lv
        self.lv = grown

    # ---- queries (tests, and the per-sample code to come) ----------------------------------------
    @property
    def last_seq(self) -> int:
        return int(self.meta[LAST_SEQ])

    @property
    def state(self) -> int:
        return int(self.meta[STATE])

    @property
    def counters(self) -> BookCounters:
        return BookCounters(*(int(v) for v in self.meta[C_GAPS:C_GAPS + len(COUNTERS)]))

    def levels(self, side: int) -> list[tuple[int, int]]:
        """Every level of one side as ``(price, size)``, best first (``OrderBook.levels``)."""
        s = 0 if side == BUY else 1
        n = int(self.meta[NBID + s])
        keys, tot = self.lv[s, PX, :n].tolist(), self.lv[s, TOT, :n].tolist()
        sign = 1 if s == 0 else -1
        return [(sign * k, q) for k, q in zip(keys[::-1], tot[::-1], strict=True)]

    def queue(self, side: int, price: int) -> list[tuple[int, int]]:
        """FIFO queue ``[(order_id, size), ...]`` at one price, front first (``OrderBook.queue``)."""
        s = 0 if side == BUY else 1
        n = int(self.meta[NBID + s])
        k = price if s == 0 else -price
        i = int(np.searchsorted(self.lv[s, PX, :n], k))
        if i >= n or self.lv[s, PX, i] != k:
            return []
        out, slot = [], int(self.lv[s, HEAD, i])
        while slot >= 0:
            out.append((int(self.od[OID, slot]), int(self.od[OSZ, slot])))
            slot = int(self.od[NEXT, slot])
        return out

    def anonymous(self, side: int, price: int) -> int:
        """L2-only size at one price (0 when the level is absent)."""
        s = 0 if side == BUY else 1
        n = int(self.meta[NBID + s])
        k = price if s == 0 else -price
        i = int(np.searchsorted(self.lv[s, PX, :n], k))
        return int(self.lv[s, ANON, i]) if i < n and self.lv[s, PX, i] == k else 0


__all__ = ["KernelBook", "update_row", "write_view", "apply_views", "frames_at", "capacity", "needs", "jit", "COUNTERS"]
