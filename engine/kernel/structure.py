"""Swing structure (SPEC F25; ``engine.features.structure.SwingStructure``) in the compiled lane: the
per-trade extremes and, at samples, the TF2 bars' 3-bar fractals, the kept swings and the values.

State (arrays): ``ss`` the scalars (last trade, the open bar's extremes, the session's, the
boundary trigger, counts and ring heads), ``bars[3, 3]`` the last three closed bars (high, low, end)
oldest first, ``swings[2, 3, K]`` a ring per side (highs, lows) of (price, end of its bar, time
confirmed). ``swing_values`` writes the values in ``structure_names`` order and the kept swings,
most recent first, into a structure row (``structure_row`` layout) from which ``swing_structures``
rebuilds the ``Swing`` records strategies read.
"""

from __future__ import annotations

import numpy as np

from engine.config.features import StructureParams
from engine.features.bars import NS
from engine.features.structure import Swing
from engine.kernel.book import NBID, PX, jit

(G_HAS_LAST, G_LAST, G_HAS_BAR, G_HIGH, G_LOW, G_HAS_SESSION, G_SESSION_HIGH, G_SESSION_LOW, G_TRIGGER, G_BARS,
 G_STEP) = range(11)
G_SIZE = 11
G_COUNT, G_HEAD = 0, 1  # per side, in ``kept[side]``


def structure_names(kept: int) -> tuple[str, ...]:
    """The values in the order ``SwingStructure.values`` first writes them."""
    names = ["prior_day_high", "prior_day_low"]
    for side in ("swing_high", "swing_low"):
        for k in range(1, kept + 1):
            names += [f"{side}_{k}", f"{side}_{k}_age_s"]
        names += [f"{side}_dist", f"{side}_count"]
    return (*names, "session_high", "session_high_dist", "session_low", "session_low_dist")


def structure_state(params: StructureParams | None) -> list[np.ndarray]:
    """``ss``, ``bars``, ``swings``, ``kept`` for ``params``."""
    p = params or StructureParams()
    ss = np.zeros(G_SIZE, dtype=np.int64)
    ss[G_TRIGGER] = -1
    ss[G_STEP] = p.bar_s * NS
    return [ss, np.zeros((3, 3), dtype=np.int64), np.zeros((2, 3, p.swings_kept), dtype=np.int64),
            np.zeros((2, 2), dtype=np.int64)]


@jit
def _extend(ss, has, high, low, price):
    """Widen the range ``ss[low]..ss[high]`` (empty unless ``ss[has]``) to take ``price``."""
    if not ss[has]:
        ss[has] = 1
        ss[high] = price
        ss[low] = price
        return
    if price > ss[high]:
        ss[high] = price
    if price < ss[low]:
        ss[low] = price


@jit
def swing_on_trade(ss, price):
    ss[G_HAS_LAST] = 1
    ss[G_LAST] = price
    _extend(ss, G_HAS_BAR, G_HIGH, G_LOW, price)
    _extend(ss, G_HAS_SESSION, G_SESSION_HIGH, G_SESSION_LOW, price)


@jit
def _keep(swings, kept, side, price, ts_bar, ts):
    cap = swings.shape[2]
    if kept[side, G_COUNT] == cap:  # the oldest makes way
        kept[side, G_HEAD] = (kept[side, G_HEAD] + 1) % cap
        kept[side, G_COUNT] -= 1
    j = (kept[side, G_HEAD] + kept[side, G_COUNT]) % cap
    swings[side, 0, j] = price
    swings[side, 1, j] = ts_bar
    swings[side, 2, j] = ts
    kept[side, G_COUNT] += 1


@jit
def _close_bar(ss, bars, swings, kept, ts):
    if not ss[G_HAS_BAR]:
        if not ss[G_HAS_LAST]:
            return
        ss[G_HIGH] = ss[G_LAST]
        ss[G_LOW] = ss[G_LAST]
    if ss[G_BARS] == 3:
        bars[0, :] = bars[1, :]
        bars[1, :] = bars[2, :]
        ss[G_BARS] = 2
    n = ss[G_BARS]
    bars[n, 0] = ss[G_HIGH]
    bars[n, 1] = ss[G_LOW]
    bars[n, 2] = ts
    ss[G_BARS] = n + 1
    ss[G_HAS_BAR] = 0
    if n + 1 < 3:
        return
    h0, l0 = bars[0, 0], bars[0, 1]
    h1, l1, t1 = bars[1, 0], bars[1, 1], bars[1, 2]
    h2, l2 = bars[2, 0], bars[2, 1]
    if h1 > h0 and h1 >= h2:
        _keep(swings, kept, 0, h1, t1, ts)
    if l1 < l0 and l1 <= l2:
        _keep(swings, kept, 1, l1, t1, ts)


@jit
def swing_values(ss, bars, swings, kept, lv, meta, ts, out, col, row):
    """``SwingStructure.values(ts)`` into ``out[col:]`` and its swings into the structure ``row``."""
    if ts % ss[G_STEP] == 0 and ts > ss[G_TRIGGER]:
        ss[G_TRIGGER] = ts
        _close_bar(ss, bars, swings, kept, ts)
    nb, na = meta[NBID], meta[NBID + 1]
    has_mid = False
    mid = 0.0
    if nb and na:
        bid, ask = lv[0, PX, nb - 1], -lv[1, PX, na - 1]
        if bid < ask:
            has_mid = True
            mid = (bid + ask) / 2
    out[col] = 0.0
    out[col + 1] = 0.0
    k_max = swings.shape[2]
    c = col + 2
    r = 0
    for side in range(2):
        count = kept[side, G_COUNT]
        row[r] = count
        r += 1
        for j in range(k_max):
            if j < count:  # the j-th most recent
                i = (kept[side, G_HEAD] + count - 1 - j) % k_max
                out[c] = swings[side, 0, i]
                out[c + 1] = (ts - swings[side, 1, i]) / NS
                row[r] = swings[side, 0, i]
                row[r + 1] = swings[side, 1, i]
                row[r + 2] = swings[side, 2, i]
            else:
                out[c] = 0.0
                out[c + 1] = 0.0
            c += 2
            r += 3
        if count and has_mid:
            newest = (kept[side, G_HEAD] + count - 1) % k_max
            out[c] = swings[side, 0, newest] - mid
        else:
            out[c] = 0.0
        out[c + 1] = count
        c += 2
    has = ss[G_HAS_SESSION]
    out[c] = ss[G_SESSION_HIGH] if has else 0.0
    out[c + 1] = ss[G_SESSION_HIGH] - mid if has and has_mid else 0.0
    out[c + 2] = ss[G_SESSION_LOW] if has else 0.0
    out[c + 3] = ss[G_SESSION_LOW] - mid if has and has_mid else 0.0


def swing_structures(row: np.ndarray, kept: int) -> dict[str, object]:
    """``SwingStructure.structures``: the kept swings of a structure row, most recent first."""
    r = [int(v) for v in row]
    out: dict[str, object] = {}
    for s, (name, side) in enumerate((("swing_highs", 1), ("swing_lows", -1))):
        base = s * (1 + 3 * kept)
        out[name] = tuple(Swing(side, r[base + 1 + 3 * j], r[base + 2 + 3 * j], r[base + 3 + 3 * j])
                          for j in range(r[base]))
    return out
