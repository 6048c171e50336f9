"""Per-event accumulators of the compiled lane (engine/kernel/lane.py), each state in arrays: trade
flow (SPEC F8, F9; ``engine.features.flow.TradeFlow``), order-flow imbalance (F5, F6;
``engine.features.ofi.OrderFlowImbalance``) and the time-weighted spread (F1;
``engine.features.shape.SpreadTime``).

The Python accumulators are the reference and their docstrings the definitions; here the same
arithmetic runs in the same order, so a sample's values are equal to the last bit (integer sums are
int64: exact while ``price^2 * volume`` of a session stays below 2^63, and equal to the Python
float values while the sums stay below 2^53, true of any real instrument's day in ticks and lots).
Each ``*_values`` function writes one sample's values into a float row, in the order of its names.
"""

from __future__ import annotations

import numpy as np

from engine.features.bars import NS
from engine.features.ofi import BUCKET_NS, WINDOWS_S
from engine.kernel.book import NBID, PX, TOT, jit, price_at

# ---- trade flow ------------------------------------------------------------------------------------
# tf[...] int64: volume, buy, sell, cvd, notional, notional2, fills, orders, last_price, last_match key,
# last_match sign, has_match
(T_VOL, T_BUY, T_SELL, T_CVD, T_NOTIONAL, T_NOTIONAL2, T_FILLS, T_ORDERS, T_LAST_PRICE, T_MATCH_KEY, T_MATCH_SIGN,
 T_SIZE) = range(12)
FLOW_NAMES = ("volume", "buy_volume", "sell_volume", "cvd", "notional", "fills", "orders", "last_price", "vwap",
              "vwap_sigma")
# trade window ring tw[w, field, k] (fields ts, signed, size), tw_meta[w] = (head, count, signed, total)


@jit
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


@jit
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


@jit
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


@jit
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


@jit
def _side_terms(cum, lv, s, nlev, prev, m, prev_n, sign):
    """The side terms of ``OrderFlowImbalance`` (engine/features/ofi.py) over side ``s`` of the kernel book
    (its ``nlev`` levels)."""
    n = nlev if nlev < m else m
    common = n if n < prev_n else prev_n
    rp = 2 * s  # prev rows: bids 0, 1; asks 2, 3
    depth_change = 0
    for level in range(n):
        i = nlev - 1 - level
        p = price_at(lv, s, i)
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
        i = nlev - 1 - level
        prev[rp, level] = price_at(lv, s, i)
        prev[rp + 1, level] = lv[s, TOT, i]
    for level in range(n, prev_n):
        prev[rp, level] = 0
        prev[rp + 1, level] = 0
    return depth_change, n


@jit
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
    a = -lv[1, PX, na - 1]
    qa = lv[1, TOT, na - 1]
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


@jit
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




# ---- time-weighted spread ---------------------------------------------------------------------------
# st[...] int64: value, has value, since, integral, head, count; seg[3, K] the closed segments' ring
# (start, end, spread), oldest at head
S_VALUE, S_HAS, S_SINCE, S_INTEGRAL, S_HEAD, S_COUNT = range(6)
SPREAD_NAMES = ("spread_twa",)


@jit
def spread_on_last(st, seg, lv, meta, ts):
    """``SpreadTime.on_last`` (the caller made room for one more segment)."""
    nb = meta[NBID]
    na = meta[NBID + 1]
    if nb == 0 or na == 0:
        return
    spread = -lv[1, PX, na - 1] - lv[0, PX, nb - 1]
    if st[S_HAS] and spread == st[S_VALUE]:
        return
    if st[S_HAS] and ts > st[S_SINCE]:
        k = (st[S_HEAD] + st[S_COUNT]) % seg.shape[1]
        seg[0, k] = st[S_SINCE]
        seg[1, k] = ts
        seg[2, k] = st[S_VALUE]
        st[S_COUNT] += 1
        st[S_INTEGRAL] += (ts - st[S_SINCE]) * st[S_VALUE]
    st[S_VALUE] = spread
    st[S_HAS] = 1
    st[S_SINCE] = ts


@jit
def spread_values(st, seg, window_ns, now, out, col):
    """``SpreadTime.values(now)`` into ``out[col]``."""
    if not st[S_HAS]:
        out[col] = 0.0
        return
    cap = seg.shape[1]
    cutoff = now - window_ns
    while st[S_COUNT] and seg[1, st[S_HEAD]] <= cutoff:
        k = st[S_HEAD]
        st[S_INTEGRAL] -= (seg[1, k] - seg[0, k]) * seg[2, k]
        st[S_HEAD] = (k + 1) % cap
        st[S_COUNT] -= 1
    value = st[S_VALUE]
    if st[S_COUNT] == 0 or now <= seg[0, st[S_HEAD]]:
        out[col] = float(value)
        return
    k = st[S_HEAD]
    start = seg[0, k]
    integral = st[S_INTEGRAL] + (now - st[S_SINCE]) * value
    if start < cutoff:  # the head segment is partly expired
        integral -= (cutoff - start) * seg[2, k]
        start = cutoff
    out[col] = integral / (now - start)


def unrolled(ring: np.ndarray, head: int, count: int, size: int) -> np.ndarray:
    """A ring's ``count`` items from ``head`` (last axis), oldest first, in a new ring of ``size``."""
    cap = ring.shape[-1]
    grown = np.zeros((*ring.shape[:-1], size), dtype=ring.dtype)
    grown[..., :count] = ring[..., (head + np.arange(count)) % cap]
    return grown
