"""Per-event accumulators in the compiled loop: trade flow (SPEC F8, F9; ``engine.features.flow.TradeFlow``)
and order-flow imbalance (F5, F6; ``engine.features.ofi.OrderFlowImbalance``), each state in arrays.

The Python accumulators are the reference and their docstrings the definitions; here the same
arithmetic runs in the same order, so a sample's values are equal to the last bit (integer sums are
int64: exact while ``price^2 * volume`` of a session stays below 2^63, and equal to the Python
float values while the sums stay below 2^53, true of any real instrument's day in ticks and lots).

``run_lane`` is the market stage's per-event loop without detectors: the book update, these two
accumulators, and at each bar close one sample: the boundary, its frames and the book's view
(``engine.kernel.book.write_view``) in an int row, the accumulators' values (``FLOW_NAMES`` then
``ofi_names(M)``) in a float row.
"""

from __future__ import annotations

import numpy as np

from engine.features.bars import NS, TF1, TF2, TF3
from engine.features.ofi import BUCKET_NS, WINDOWS_S
from engine.kernel.book import (
    GROW_LEVELS,
    NBID,
    NEXT_CLOSE,
    OK,
    OUT_FULL,
    PX,
    TOT,
    KernelBook,
    _capacity,
    _jit,
    _needs,
    update_row,
    write_view,
)
from engine.kernel.columns import K_DELTA, K_SNAP, K_TRADE, K_TRUTH, ColumnBatch

GROW_TRADES = 4

# ---- trade flow ------------------------------------------------------------------------------------
# tf[...] int64: volume, buy, sell, cvd, notional, notional2, fills, orders, last_price, last_match key,
# last_match sign, has_match
(T_VOL, T_BUY, T_SELL, T_CVD, T_NOTIONAL, T_NOTIONAL2, T_FILLS, T_ORDERS, T_LAST_PRICE, T_MATCH_KEY, T_MATCH_SIGN,
 T_SIZE) = range(12)
FLOW_NAMES = ("volume", "buy_volume", "sell_volume", "cvd", "notional", "fills", "orders", "last_price", "vwap",
              "vwap_sigma")
# trade window ring tw[w, field, k] (fields ts, signed, size), tw_meta[w] = (head, count, signed, total)


@_jit
def on_trade(tf, tw, tw_meta, ts_event, ts_recv, price, size, sign, match_id):
    tf[T_VOL] += size
    if sign > 0:
        tf[T_BUY] += size
    elif sign < 0:
        tf[T_SELL] += size
    signed = sign * size
    tf[T_CVD] += signed
    tf[T_NOTIONAL] += price * size
    tf[T_NOTIONAL2] += price * price * size
    tf[T_FILLS] += 1
    tf[T_LAST_PRICE] = price
    key = match_id if match_id else ts_event
    if key != tf[T_MATCH_KEY] or sign != tf[T_MATCH_SIGN]:
        tf[T_ORDERS] += 1
        tf[T_MATCH_KEY] = key
        tf[T_MATCH_SIGN] = sign
    cap = tw.shape[2]
    for w in range(tw.shape[0]):
        k = (tw_meta[w, 0] + tw_meta[w, 1]) % cap
        tw[w, 0, k] = ts_recv
        tw[w, 1, k] = signed
        tw[w, 2, k] = size
        tw_meta[w, 1] += 1
        tw_meta[w, 2] += signed
        tw_meta[w, 3] += size


@_jit
def flow_values(tf, tw, tw_meta, windows_ns, ts, out, col):
    """``TradeFlow.values(ts)`` into ``out[col:]``: ``FLOW_NAMES`` then one imbalance per window."""
    v = tf[T_VOL]
    vwap = 0.0
    sigma = 0.0
    if v:
        vwap = tf[T_NOTIONAL] / v
        sigma = np.sqrt(max(tf[T_NOTIONAL2] / v - vwap * vwap, 0.0))
    out[col] = tf[T_VOL]
    out[col + 1] = tf[T_BUY]
    out[col + 2] = tf[T_SELL]
    out[col + 3] = tf[T_CVD]
    out[col + 4] = tf[T_NOTIONAL]
    out[col + 5] = tf[T_FILLS]
    out[col + 6] = tf[T_ORDERS]
    out[col + 7] = tf[T_LAST_PRICE]
    out[col + 8] = vwap
    out[col + 9] = sigma
    cap = tw.shape[2]
    for w in range(tw.shape[0]):
        cutoff = ts - windows_ns[w]
        while tw_meta[w, 1] and tw[w, 0, tw_meta[w, 0]] <= cutoff:
            k = tw_meta[w, 0]
            tw_meta[w, 2] -= tw[w, 1, k]
            tw_meta[w, 3] -= tw[w, 2, k]
            tw_meta[w, 0] = (k + 1) % cap
            tw_meta[w, 1] -= 1
        out[col + 10 + w] = tw_meta[w, 2] / tw_meta[w, 3] if tw_meta[w, 3] else 0.0


# ---- order-flow imbalance --------------------------------------------------------------------------
# of[...] int64 scalars; cum[3 + M + 1] cumulative sums; prev[4, M] top-M of the last read (bid px, bid sz,
# ask px, ask sz); hist_ends[K], hist[K, 3 + M + 1] the recorded bucket ends and cumulative totals
(O_PB, O_PQB, O_PA, O_PQA, O_STARTED, O_PREV_BN, O_PREV_AN, O_DIRTY_B, O_DIRTY_A, O_DEPTH_M, O_BUCKET_END,
 O_HIST_N) = range(12)
HISTORY = 4096  # ``CumulativeWindows``' bound: compaction by 2048 entries past it
LONGEST_NS = max(WINDOWS_S) * NS


def ofi_names(levels: int) -> tuple[str, ...]:
    """The OFI values in the order ``ofi_values`` writes them."""
    names = ["ofi_cum"]
    for seconds in WINDOWS_S:
        names += [f"ofi_{seconds}s", f"ofi_norm_{seconds}s"]
    return (*names, *(f"ofi_l{m + 1}_10s" for m in range(levels)), "ofi_integrated_10s")


@_jit
def _record(of, hist_ends, hist, end, cum):
    n = of[O_HIST_N]
    hist_ends[n] = end
    hist[n, :] = cum
    n += 1
    if n > HISTORY and hist_ends[2048] < end - LONGEST_NS - BUCKET_NS:
        hist_ends[: n - 2048] = hist_ends[2048:n].copy()
        hist[: n - 2048] = hist[2048:n].copy()
        n -= 2048
    of[O_HIST_N] = n


@_jit
def _since(of, hist_ends, ts, window_ns):
    """Index of the last recorded end at or before ``ts - window`` (bisect_right - 1), or -1."""
    lo = 0
    hi = of[O_HIST_N]
    x = ts - window_ns
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < hist_ends[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


@_jit
def _side_terms(cum, lv, s, nlev, prev, m, prev_n, sign):
    """``engine.features.ofi._side_terms`` over side ``s`` of the kernel book (its ``nlev`` levels)."""
    n = nlev if nlev < m else m
    common = n if n < prev_n else prev_n
    rp = 2 * s  # prev rows: bids 0, 1; asks 2, 3
    depth_change = 0
    for level in range(n):
        i = nlev - 1 - level if s == 0 else level
        p = lv[s, PX, i]
        q = lv[s, TOT, i]
        if level < common:
            pp = prev[rp, level]
            pq = prev[rp + 1, level]
            if p != pp or q != pq:
                better = (p - pp) * sign
                term = 0
                if better >= 0:
                    term += q
                if better <= 0:
                    term -= pq
                cum[3 + level] += term * sign
        depth_change += q
    for level in range(prev_n):
        depth_change -= prev[rp + 1, level]
    for level in range(n):
        i = nlev - 1 - level if s == 0 else level
        prev[rp, level] = lv[s, PX, i]
        prev[rp + 1, level] = lv[s, TOT, i]
    for level in range(n, prev_n):
        prev[rp, level] = 0
        prev[rp + 1, level] = 0
    return depth_change, n


@_jit
def ofi_on_last(of, cum, prev, hist_ends, hist, lv, meta, ts):
    nb = meta[NBID]
    na = meta[NBID + 1]
    if nb == 0 or na == 0:
        return
    if ts >= of[O_BUCKET_END]:
        if of[O_BUCKET_END]:
            _record(of, hist_ends, hist, of[O_BUCKET_END], cum)
        of[O_BUCKET_END] = (ts // BUCKET_NS + 1) * BUCKET_NS
    b = lv[0, PX, nb - 1]
    qb = lv[0, TOT, nb - 1]
    a = lv[1, PX, 0]
    qa = lv[1, TOT, 0]
    if of[O_STARTED]:
        e = 0
        if b >= of[O_PB]:
            e += qb
        if b <= of[O_PB]:
            e -= of[O_PQB]
        if a <= of[O_PA]:
            e -= qa
        if a >= of[O_PA]:
            e += of[O_PQA]
        cum[0] += e
    of[O_STARTED] = 1
    of[O_PB] = b
    of[O_PQB] = qb
    of[O_PA] = a
    of[O_PQA] = qa
    cum[1] += qb + qa
    cum[2] += 1
    m = prev.shape[1]
    if of[O_DIRTY_B]:
        of[O_DIRTY_B] = 0
        change, n = _side_terms(cum, lv, 0, nb, prev, m, of[O_PREV_BN], 1)
        of[O_DEPTH_M] += change
        of[O_PREV_BN] = n
    if of[O_DIRTY_A]:
        of[O_DIRTY_A] = 0
        change, n = _side_terms(cum, lv, 1, na, prev, m, of[O_PREV_AN], -1)
        of[O_DEPTH_M] += change
        of[O_PREV_AN] = n
    cum[3 + m] += of[O_DEPTH_M]


@_jit
def ofi_values(of, cum, hist_ends, hist, weights, ts, out, col):
    """``OrderFlowImbalance.values(ts)`` into ``out[col:]`` in ``ofi_names`` order."""
    if of[O_BUCKET_END] and ts >= of[O_BUCKET_END]:
        _record(of, hist_ends, hist, of[O_BUCKET_END], cum)
        of[O_BUCKET_END] = (ts // BUCKET_NS + 1) * BUCKET_NS
    out[col] = cum[0]
    k = col + 1
    for seconds in WINDOWS_S:
        j = _since(of, hist_ends, ts, seconds * NS)
        if j < 0:
            e, depth2, updates = cum[0], cum[1], cum[2]
        else:
            e, depth2, updates = cum[0] - hist[j, 0], cum[1] - hist[j, 1], cum[2] - hist[j, 2]
        out[k] = e
        out[k + 1] = 2 * e * updates / depth2 if depth2 else 0.0
        k += 2
    j = _since(of, hist_ends, ts, 10 * NS)
    m = len(weights)
    if j < 0:
        updates = cum[2]
        depth_m = cum[3 + m]
    else:
        updates = cum[2] - hist[j, 2]
        depth_m = cum[3 + m] - hist[j, 3 + m]
    scale = 2 * updates / depth_m if depth_m else 0.0
    integrated = 0.0
    for level in range(m):
        base = hist[j, 3 + level] if j >= 0 else 0
        value = (cum[3 + level] - base) * scale
        out[k + level] = value
        integrated += weights[level] * value
    out[k + m] = integrated


# ---- the lane's loop -----------------------------------------------------------------------------------
@_jit
def _sample(lv, meta, depth_windows, tf, tw, tw_meta, windows_ns, of, cum, hist_ends, hist, weights, boundary,
            frames, views, values, n_out):
    views[n_out, 0] = boundary
    views[n_out, 1] = frames
    write_view(lv, meta, depth_windows, views[:, 2:], n_out)
    flow_values(tf, tw, tw_meta, windows_ns, boundary, values[n_out], 0)
    ofi_values(of, cum, hist_ends, hist, weights, boundary, values[n_out], 10 + len(windows_ns))


@_jit
def run_lane(lv, od, ids, meta, c, start, iid, depth_windows, step, mark, tf, tw, tw_meta, windows_ns, of, cum, prev,
             hist_ends, hist, weights, views, values, n_out):
    """Rows ``start..`` of instrument ``iid``: the book, the accumulators and a sample at each bar close
    (``MarketState.apply`` with ``TradeFlow`` and ``OrderFlowImbalance`` as its listeners). Returns
    (status, row, n_out) as ``engine.kernel.book.apply_views``."""
    rows = len(c[0])
    cap_samples = views.shape[0]
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
            status = _capacity(lv, od, meta, kind, _needs(c, i))
            if status != OK:
                return status, i, n_out
            if kind == K_TRADE:
                for w in range(tw.shape[0]):
                    if tw_meta[w, 1] >= tw.shape[2]:
                        return GROW_TRADES, i, n_out
        if ts >= meta[NEXT_CLOSE]:
            boundary = meta[NEXT_CLOSE]
            if n_out + (ts - boundary) // step + 1 > cap_samples:
                return OUT_FULL, i, n_out
            while boundary <= ts:
                frames = TF1
                if boundary % (10 * step) == 0:
                    frames |= TF2
                if boundary % (60 * step) == 0:
                    frames |= TF3
                _sample(lv, meta, depth_windows, tf, tw, tw_meta, windows_ns, of, cum, hist_ends, hist, weights,
                        boundary, frames, views, values, n_out)
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
            elif K_DELTA <= kind <= 8:  # delta, add, cancel, delete, modify, execute
                if c[6][i] > 0:
                    of[O_DIRTY_B] = 1
                else:
                    of[O_DIRTY_A] = 1
            if c[5][i] & 0x80:
                ofi_on_last(of, cum, prev, hist_ends, hist, lv, meta, c[3][i])
        i += 1
    return OK, rows, n_out


class KernelLane:
    """One instrument's book and accumulators in arrays; ``run`` gives the bar-close samples of a batch.

    Args:
        book: the lane's ``KernelBook`` (its view levels and depth windows shape the view rows).
        trade_windows_s: ``TradeFlow``'s imbalance windows; ``ofi_levels``: M of F6.
    """

    def __init__(self, book: KernelBook, trade_windows_s: tuple[float, ...] = (5.0, 30.0), ofi_levels: int = 5,
                 step_ns: int = NS, trade_capacity: int = 1024) -> None:
        self.book = book
        self.step = step_ns
        self.windows_ns = np.array([int(w * NS) for w in trade_windows_s], dtype=np.int64)
        self.names = (*FLOW_NAMES, *(f"trade_imbalance_{w:g}s" for w in trade_windows_s), *ofi_names(ofi_levels))
        self.tf = np.zeros(12, dtype=np.int64)
        self.tf[T_MATCH_KEY] = -1
        self.tw = np.zeros((len(trade_windows_s), 3, trade_capacity), dtype=np.int64)
        self.tw_meta = np.zeros((len(trade_windows_s), 4), dtype=np.int64)
        self.of = np.zeros(12, dtype=np.int64)
        self.cum = np.zeros(3 + ofi_levels + 1, dtype=np.int64)
        self.prev = np.zeros((4, ofi_levels), dtype=np.int64)
        self.hist_ends = np.zeros(HISTORY + 1, dtype=np.int64)
        self.hist = np.zeros((HISTORY + 1, 3 + ofi_levels + 1), dtype=np.int64)
        self.weights = np.full(ofi_levels, 1.0 / ofi_levels)

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
                                            book.depth_windows, self.step, mark, self.tf, self.tw, self.tw_meta,
                                            self.windows_ns, self.of, self.cum, self.prev, self.hist_ends, self.hist,
                                            self.weights, views, values, n_out)
            if status == OK:
                break
            if status == OUT_FULL:
                parts.append((views[:n_out], values[:n_out]))
                size = 2 * len(views)
                views = np.zeros((size, width), dtype=np.int64)
                values, n_out = np.zeros((size, len(self.names)), dtype=np.float64), 0
            elif status == GROW_TRADES:
                self._grow_trades()
            else:
                book.grow(status, start, batch)
        parts.append((views[:n_out], values[:n_out]))
        return np.concatenate([v for v, _ in parts]), np.concatenate([x for _, x in parts])

    def _grow_trades(self) -> None:
        """Double the trade rings, each unrolled from its head."""
        cap = self.tw.shape[2]
        grown = np.zeros((self.tw.shape[0], 3, 2 * cap), dtype=np.int64)
        for w in range(self.tw.shape[0]):
            head, count = int(self.tw_meta[w, 0]), int(self.tw_meta[w, 1])
            order = (head + np.arange(count)) % cap
            grown[w, :, :count] = self.tw[w][:, order]
            self.tw_meta[w, 0] = 0
        self.tw = grown


__all__ = ["KernelLane", "run_lane", "FLOW_NAMES", "ofi_names", "GROW_LEVELS", "GROW_TRADES"]
