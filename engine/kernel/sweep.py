"""The sweep detector (SPEC F22; ``engine.detectors.sweep``) in the compiled lane: the first detector
whose per-event work runs in the kernel, so that only its detections (triggers) come out.

Per fill the kernel groups aggressive fills into bursts exactly as ``SweepTracker`` does (same-sign
fills of one aggressive order by ``match_id``, else within ``window`` of the burst's first fill),
closes a burst at the first fill that cannot join it, at the first LAST event or bar close past its
window, keeps the per-TF2-bar burst-volume baseline for the auto threshold, and writes a detection
row for each completed burst that is a sweep on a usable book. ``sweep_detection`` turns a row back
into the ``SweepDetection`` the Python detector emits (``engine.detectors.sweep.sweep_detection``),
field for field.

State (arrays): ``sw`` the open burst and the baseline's sums, ``prices`` the open burst's distinct
prices (``sw[B_LEVELS]`` of them; the lane grows it when full), ``ring[3, bars]`` the closed TF2
bars' (bursts, volume, squares); ``par`` the integer parameters and ``k`` the threshold's k.
"""

from __future__ import annotations

import math

import numpy as np

from engine.config.detectors import SweepParams
from engine.detectors.sweep import MS, SweepDetection
from engine.features.bars import TF2
from engine.kernel.book import LAST_SEQ, jit
from engine.kernel.detections import D_SEQ, D_TS, FIRST, K_SWEEP, found

# sw fields: the open burst, then the baseline
(B_OPEN, B_SIDE, B_T_FIRST, B_T_LAST, B_ORDER_TS, B_FIRST_PRICE, B_LAST_PRICE, B_LO, B_HI, B_VOLUME, B_NOTIONAL,
 B_HIDDEN, B_ORDERS, B_MATCH, B_LEVELS, V_COUNT, V_TOTAL, V_SQUARES, V_BAR_COUNT, V_BAR_TOTAL, V_BAR_SQUARES,
 V_HEAD, V_LEN) = range(23)
SW_SIZE = 23
# par fields
P_ENABLED, P_WINDOW, P_BY_ORDER, P_MIN_LEVELS, P_VOLUME_LEVELS, P_REQUIRE_VOLUME, P_MIN_BURSTS = range(7)
# fields of a detection row (engine/kernel/detections.py) after the header; floats: strength, threshold
(D_SIDE, D_LO, D_HI, D_T_FIRST, D_FIRST_PRICE, D_LAST_PRICE, D_LEVELS, D_VOLUME, D_HIDDEN, D_NOTIONAL, D_T_LAST,
 D_ORDERS) = range(FIRST, FIRST + 12)


def parameters(params: SweepParams | None) -> tuple[np.ndarray, float, int]:
    """(``par``, the threshold's k, baseline bars) for ``params``; None: the detector is off."""
    p = params or SweepParams()
    par = np.array([1 if params is not None else 0, round(p.window_ms * MS), int(p.group_by_match), p.min_levels,
                    p.volume_levels, int(p.require_volume), p.min_bursts], dtype=np.int64)
    return par, float(p.threshold_k), p.baseline_bars


@jit
def _open(sw, prices, ts, price, size, side, match_id, hidden):
    sw[B_OPEN] = 1
    sw[B_SIDE] = side
    sw[B_T_FIRST] = ts
    sw[B_T_LAST] = ts
    sw[B_ORDER_TS] = ts
    sw[B_FIRST_PRICE] = price
    sw[B_LAST_PRICE] = price
    sw[B_LO] = price
    sw[B_HI] = price
    prices[0] = price
    sw[B_LEVELS] = 1
    sw[B_VOLUME] = size
    sw[B_NOTIONAL] = price * size
    sw[B_HIDDEN] = size if hidden else 0
    sw[B_ORDERS] = 1
    sw[B_MATCH] = match_id


@jit
def _join(sw, prices, ts, price, size, match_id, hidden):
    if match_id != sw[B_MATCH] or (match_id == 0 and ts != sw[B_ORDER_TS]):
        sw[B_ORDERS] += 1
    sw[B_MATCH] = match_id
    sw[B_ORDER_TS] = ts
    sw[B_T_LAST] = ts
    sw[B_LAST_PRICE] = price
    if price < sw[B_LO]:
        sw[B_LO] = price
    elif price > sw[B_HI]:
        sw[B_HI] = price
    n = sw[B_LEVELS]
    seen = False
    for j in range(n):
        if prices[j] == price:
            seen = True
            break
    if not seen:
        prices[n] = price  # the lane made room: fewer than len(prices) levels before this fill
        sw[B_LEVELS] = n + 1
    sw[B_VOLUME] += size
    sw[B_NOTIONAL] += price * size
    if hidden:
        sw[B_HIDDEN] += size


@jit
def _close(sw, par, k, det_i, det_f, n_det):
    """Close the open burst; when it is a sweep, write its row at ``n_det`` (the caller stamps the
    sample, time, seq and checks the book). Returns True for a sweep."""
    sw[B_OPEN] = 0
    volume = sw[B_VOLUME]
    sw[V_BAR_COUNT] += 1
    sw[V_BAR_TOTAL] += volume
    sw[V_BAR_SQUARES] += volume * volume
    levels = sw[B_LEVELS]
    n = sw[V_COUNT]
    has_threshold = n >= par[P_MIN_BURSTS]
    threshold = 0.0
    if has_threshold:
        mean = sw[V_TOTAL] / n
        variance = max(sw[V_SQUARES] / n - mean * mean, 0.0)
        threshold = mean + k * math.sqrt(variance)
    levels_ok = levels >= par[P_MIN_LEVELS]
    volume_ok = has_threshold and levels >= par[P_VOLUME_LEVELS] and volume > threshold
    if par[P_REQUIRE_VOLUME]:
        if not (levels_ok and volume_ok):
            return False
    elif not (levels_ok or volume_ok):
        return False
    by_levels = levels / par[P_MIN_LEVELS]
    by_volume = volume / threshold if has_threshold and levels >= par[P_VOLUME_LEVELS] else 0.0
    strength = min(by_levels, by_volume) if par[P_REQUIRE_VOLUME] else max(by_levels, by_volume)
    row = det_i[n_det]
    row[D_SIDE] = sw[B_SIDE]
    row[D_LO] = sw[B_LO]
    row[D_HI] = sw[B_HI]
    row[D_T_FIRST] = sw[B_T_FIRST]
    row[D_FIRST_PRICE] = sw[B_FIRST_PRICE]
    row[D_LAST_PRICE] = sw[B_LAST_PRICE]
    row[D_LEVELS] = levels
    row[D_VOLUME] = volume
    row[D_HIDDEN] = sw[B_HIDDEN]
    row[D_NOTIONAL] = sw[B_NOTIONAL]
    row[D_T_LAST] = sw[B_T_LAST]
    row[D_ORDERS] = sw[B_ORDERS]
    det_f[n_det, 0] = strength
    det_f[n_det, 1] = threshold
    return True


@jit
def _found(meta, det_i, n_det, ts, seq):
    """Stamp the sweep just written at ``n_det``; it counts only on a usable book. Returns the new count."""
    return found(meta, det_i, n_det, K_SWEEP, ts, seq, True)


@jit
def sweep_on_trade(sw, prices, par, k, meta, det_i, det_f, n_det, ts, seq, price, size, side, match_id, hidden):
    """``SweepDetector.on_trade`` for a fill the book accepted. Returns the detections' new count."""
    if not par[P_ENABLED] or side == 0 or size <= 0:
        return n_det
    if sw[B_OPEN]:
        if side == sw[B_SIDE]:
            if match_id and par[P_BY_ORDER]:
                joins = match_id == sw[B_MATCH]
            else:
                joins = (match_id != 0 and match_id == sw[B_MATCH]) or ts - sw[B_T_FIRST] <= par[P_WINDOW]
            if joins:
                _join(sw, prices, ts, price, size, match_id, hidden)
                return n_det
        if _close(sw, par, k, det_i, det_f, n_det):
            n_det = _found(meta, det_i, n_det, ts, seq)
    _open(sw, prices, ts, price, size, side, match_id, hidden)
    return n_det


@jit
def sweep_expire(sw, par, k, meta, det_i, det_f, n_det, ts):
    """``SweepDetector.on_last`` / the expiry of ``on_bar``: close a burst whose window is over."""
    if par[P_ENABLED] and sw[B_OPEN] and ts - sw[B_T_FIRST] > par[P_WINDOW] and _close(sw, par, k, det_i, det_f,
                                                                                         n_det):
        return _found(meta, det_i, n_det, ts, meta[LAST_SEQ])
    return n_det


@jit
def sweep_on_bar(sw, ring, par, k, meta, det_i, det_f, n_det, ts, frames):
    """``SweepDetector.on_bar``: expire, then at a TF2 close roll the burst-volume baseline."""
    n_det = sweep_expire(sw, par, k, meta, det_i, det_f, n_det, ts)
    if par[P_ENABLED] and frames & TF2:
        bars = ring.shape[1]
        if sw[V_LEN] == bars:
            h = sw[V_HEAD]
            sw[V_COUNT] -= ring[0, h]
            sw[V_TOTAL] -= ring[1, h]
            sw[V_SQUARES] -= ring[2, h]
            sw[V_HEAD] = (h + 1) % bars
            sw[V_LEN] -= 1
        j = (sw[V_HEAD] + sw[V_LEN]) % bars
        ring[0, j] = sw[V_BAR_COUNT]
        ring[1, j] = sw[V_BAR_TOTAL]
        ring[2, j] = sw[V_BAR_SQUARES]
        sw[V_LEN] += 1
        sw[V_COUNT] += sw[V_BAR_COUNT]
        sw[V_TOTAL] += sw[V_BAR_TOTAL]
        sw[V_SQUARES] += sw[V_BAR_SQUARES]
        sw[V_BAR_COUNT] = 0
        sw[V_BAR_TOTAL] = 0
        sw[V_BAR_SQUARES] = 0
    return n_det


def sweep_detection(row: np.ndarray, floats: np.ndarray, instrument_id: int) -> SweepDetection:
    """The ``SweepDetection`` of a detection row (as ``engine.detectors.sweep.sweep_detection`` builds it)."""
    r = [int(v) for v in row]
    return SweepDetection(
        instrument_id=instrument_id, ts_recv=r[D_TS], seq=r[D_SEQ], side=r[D_SIDE], price_lo=r[D_LO],
        price_hi=r[D_HI], strength=float(floats[0]), t_start=r[D_T_FIRST], start_price=r[D_FIRST_PRICE],
        end_price=r[D_LAST_PRICE], levels=r[D_LEVELS], volume=r[D_VOLUME], hidden=r[D_HIDDEN],
        vwap=r[D_NOTIONAL] / r[D_VOLUME], duration_ms=(r[D_T_LAST] - r[D_T_FIRST]) / MS, orders=r[D_ORDERS],
        threshold=float(floats[1]))
