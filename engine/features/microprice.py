"""F4 micro-price (Stoikov 2018): the table ``G*(I, s)`` estimated offline from a day of book states,
written to and read from a JSON file, and looked up per sample by ``BookShape``.

Estimation (SPEC F4; the author's notebook, sstoikov/microprice). Book states are sampled every
``dt`` of event time (the book as of the last ``LAST`` at or before each grid time); a state is the
imbalance bucket ``min(floor(I·n), n − 1)`` of ``I = qb/(qb + qa)`` and the spread ``s`` in ticks,
kept for ``1 ≤ s ≤ S_max`` (other states, one-sided and crossed books are skipped, and so is any
transition touching them). Each transition of consecutive states is mirrored (``(n − 1 − bucket, s)``
with the mid change negated), and mid changes larger than ``max_jump`` ticks are dropped. With
``N_x`` the transitions leaving state x: ``Q[x, y]`` = share ending in y with the mid unchanged,
``R1[x, k]`` = share with a mid change ``K_k`` (half-tick steps up to ``max_jump``), ``R2[x, y]`` =
share ending in y with the mid changed. Then ``G1 = (1 − Q)⁻¹ R1 K``, ``B = (1 − Q)⁻¹ R2`` and
``G* = Σ_{k=0..5} B^k G1`` (six terms, as the author's code). A state never seen has no row: its
lean is the weighted-mid fallback at lookup time (``lean`` returns None for it).

File: JSON ``{"format": "chimera-microprice", "version": 1, "buckets": n, "spreads": [...],
"lean": [[...], ...], "samples": ..., "transitions": ..., "dt_s": ..., "source": ...}`` with
``lean[spread index][bucket]`` in ticks (``null`` where the state was never seen).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import orjson

from engine.book import OrderBook
from engine.errors import ConfigError
from engine.events import LAST

FORMAT = "chimera-microprice"
VERSION = 1
NS = 1_000_000_000
TERMS = 6  # G* = sum of B^k G1 for k = 0..5


class MicropriceTable:
    """Stoikov's ``G*(I, s)`` by imbalance bucket and spread (ticks), estimated offline."""

    def __init__(self, buckets: int, spreads: tuple[int, ...], adjustments: list[list[float | None]]) -> None:
        self.buckets = buckets
        self.spreads = spreads
        self.adjustments = adjustments  # [spread index][imbalance bucket] -> lean in ticks (None: not seen)

    def lean(self, imbalance: float, spread: int) -> float | None:
        """The table's ``p_micro - m`` for ``I = qb/(qb+qa)`` and ``spread``; None off the table."""
        if spread not in self.spreads:
            return None
        bucket = min(int(imbalance * self.buckets), self.buckets - 1)
        return self.adjustments[self.spreads.index(spread)][bucket]

    def to_json(self, **facts) -> bytes:
        return orjson.dumps({"format": FORMAT, "version": VERSION, "buckets": self.buckets,
                             "spreads": list(self.spreads), "lean": self.adjustments, **facts},
                            option=orjson.OPT_INDENT_2)


def book_states(events: Iterable, dt_s: float) -> list[tuple[int, int, int, int] | None]:
    """``(bid, ask, bid size, ask size)`` of the book every ``dt_s`` of event time (``ts_recv``), as of
    the last ``LAST`` at or before each grid time; None where the book was one-sided or crossed."""
    dt = max(1, round(dt_s * NS))
    book: OrderBook | None = None
    states: list[tuple[int, int, int, int] | None] = []
    state: tuple[int, int, int, int] | None = None
    next_t: int | None = None
    for ev in events:
        if not hasattr(ev, "seq"):
            continue  # instrument definitions
        if book is None:
            book = OrderBook(ev.instrument_id)
        if ev.instrument_id != book.instrument_id:
            continue  # the first instrument only
        ts = ev.ts_recv
        if next_t is None:
            next_t = ts - ts % dt + dt
        while ts >= next_t:  # grid times passed before this event: the state as it was
            states.append(state)
            next_t += dt
        book.update(ev)
        if ev.flags & LAST:
            state = _top(book)
    return states


def _top(book: OrderBook) -> tuple[int, int, int, int] | None:
    bids, asks = book.top(1, 1), book.top(-1, 1)
    if not bids or not asks or asks[0][0] <= bids[0][0]:
        return None
    return bids[0][0], asks[0][0], bids[0][1], asks[0][1]


def estimate(states: list[tuple[int, int, int, int] | None], buckets: int = 10, max_spread: int = 3,
             max_jump: int = 1) -> tuple[MicropriceTable, int]:
    """The micro-price table of consecutive ``states`` and the number of transitions it used."""
    n, spreads = buckets, tuple(range(1, max_spread + 1))
    size = n * len(spreads)
    jumps = [k for k in range(-2 * max_jump, 2 * max_jump + 1) if k]  # mid changes in half ticks
    q, r2 = np.zeros((size, size)), np.zeros((size, size))
    r1 = np.zeros((size, len(jumps)))
    used = 0
    for before, after in zip(states, states[1:], strict=False):
        x, y = _state(before, n, max_spread), _state(after, n, max_spread)
        if x is None or y is None:
            continue
        move = (after[0] + after[1]) - (before[0] + before[1])  # type: ignore[index]
        if abs(move) > 2 * max_jump:
            continue
        used += 1
        mirror = ((n - 1 - x[0], x[1]), (n - 1 - y[0], y[1]), -move)
        for (bx, sx), (by, sy), m in ((x, y, move), mirror):
            i, j = (sx - 1) * n + bx, (sy - 1) * n + by
            if m == 0:
                q[i, j] += 1
            else:
                r2[i, j] += 1
                r1[i, jumps.index(m)] += 1
    totals = q.sum(axis=1) + r2.sum(axis=1)
    seen = totals > 0
    scale = np.where(seen, totals, 1.0)[:, None]
    q, r1, r2 = q / scale, r1 / scale, r2 / scale
    inverse = np.linalg.pinv(np.eye(size) - q)
    g1 = inverse @ (r1 @ (np.array(jumps) / 2.0))
    b = inverse @ r2
    g, term = np.zeros(size), g1
    for _ in range(TERMS):
        g += term
        term = b @ term
    lean = [[float(g[(s - 1) * n + k]) if seen[(s - 1) * n + k] else None for k in range(n)] for s in spreads]
    return MicropriceTable(n, spreads, lean), used


def _state(state: tuple[int, int, int, int] | None, n: int, max_spread: int) -> tuple[int, int] | None:
    if state is None:
        return None
    bid, ask, qb, qa = state
    spread = ask - bid
    if not 1 <= spread <= max_spread or qb + qa <= 0:
        return None
    return min(int(qb / (qb + qa) * n), n - 1), spread


def load_table(path: str | Path) -> MicropriceTable:
    """Read a table written by ``chimera calibrate-microprice``; ConfigError naming the file and field."""
    path = Path(path)
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the micro-price table ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not a micro-price table (invalid JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a micro-price table (field \"format\" is not {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ConfigError(f"{path}: micro-price table version {data.get('version')!r} (this build reads {VERSION})")
    buckets, spreads, lean = data.get("buckets"), data.get("spreads"), data.get("lean")
    if not isinstance(buckets, int) or isinstance(buckets, bool) or buckets < 1:
        raise ConfigError(f"{path}: field \"buckets\" must be a whole number >= 1")
    if not isinstance(spreads, list) or not spreads or not all(type(s) is int and s >= 1 for s in spreads):
        raise ConfigError(f"{path}: field \"spreads\" must be a non-empty list of whole numbers >= 1")
    if not isinstance(lean, list) or len(lean) != len(spreads) or not all(
            isinstance(row, list) and len(row) == buckets for row in lean):
        raise ConfigError(f"{path}: field \"lean\" must hold {len(spreads)} rows of {buckets} values")
    for i, row in enumerate(lean):
        for k, v in enumerate(row):
            if v is not None and (type(v) not in (int, float) or not np.isfinite(v)):
                raise ConfigError(f"{path}: field \"lean\"[{i}][{k}] is {v!r}, not a finite number or null")
    return MicropriceTable(buckets, tuple(spreads), [[None if v is None else float(v) for v in row] for row in lean])
