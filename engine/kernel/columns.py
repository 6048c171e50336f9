"""Column batches: a run of events as numpy arrays, the compiled kernel's input.

One row per event, in stream order. Every kind's numeric fields share the columns of a Parquet
tape (docs/parquet-tapes.md): ``kind`` is the event kind's code (``KIND_CODES``, the same codes the
tape stores), a partial cancel's cancelled lots are its ``size`` and a trade's aggressor its
``side``; a field a kind lacks is 0. A snapshot's levels are flat: row ``i``'s bids are
``bid_px[bid_off[i]:bid_off[i + 1]]`` (best first, as in the event), likewise its asks.

``from_events`` builds a batch from event objects (the simulator, JSON-lines tapes, tests); the
Parquet reader (``feeds.parquet_tape.ParquetTapeFeed.kernel_batches``) builds one per row group
without building any event.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np

from engine.events import (
    BookDelta,
    BookSnapshot,
    Clock,
    Event,
    InstrumentDef,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    OrderModify,
    Status,
    Trade,
    TruthLabel,
)

# The kind codes of the column layout (Parquet tapes store the same codes in their ``kind`` column).
KIND_CODES: dict[type[Event], int] = {
    InstrumentDef: 1,
    BookSnapshot: 2,
    BookDelta: 3,
    OrderAdd: 4,
    OrderCancel: 5,
    OrderDelete: 6,
    OrderModify: 7,
    OrderExecute: 8,
    Trade: 9,
    Status: 10,
    Clock: 11,
    TruthLabel: 12,
}
(K_DEF, K_SNAP, K_DELTA, K_ADD, K_CANCEL, K_DELETE, K_MODIFY, K_EXECUTE, K_TRADE, K_STATUS, K_CLOCK,
 K_TRUTH) = range(1, 13)

# Per-event columns, all int64 (a bool as 0 / 1).
FIELDS = ("kind", "instrument_id", "ts_event", "ts_recv", "seq", "flags", "side", "price", "size", "action",
          "order_id", "state", "match_id", "hidden")
# Event attribute behind a column, where the name differs.
_SOURCE = {(OrderCancel, "size"): "size_cancelled", (Trade, "side"): "aggressor"}


class ColumnBatch(msgspec.Struct, frozen=True):
    """A run of events as int64 columns (``FIELDS``) plus the snapshots' flat level arrays."""

    kind: np.ndarray
    instrument_id: np.ndarray
    ts_event: np.ndarray
    ts_recv: np.ndarray
    seq: np.ndarray
    flags: np.ndarray
    side: np.ndarray
    price: np.ndarray
    size: np.ndarray
    action: np.ndarray
    order_id: np.ndarray
    state: np.ndarray
    bid_off: np.ndarray  # len(rows) + 1 offsets into bid_px / bid_sz
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_off: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    match_id: np.ndarray  # from here on after the snapshot arrays: the compiled loops index by position
    hidden: np.ndarray  # a trade's ``hidden`` as 0 / 1

    def __len__(self) -> int:
        return len(self.kind)


def _levels(rows: list[tuple[tuple[int, int, int], ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(levels) for levels in rows], out=offsets[1:])
    flat = [level for levels in rows for level in levels]
    px = np.array([p for p, _, _ in flat], dtype=np.int64)
    sz = np.array([s for _, s, _ in flat], dtype=np.int64)
    return offsets, px, sz


def from_events(events: Sequence[Event]) -> ColumnBatch:
    """The columns of ``events`` (in order); fields a kind lacks are 0, snapshots' levels flattened."""
    n = len(events)
    columns = {name: np.zeros(n, dtype=np.int64) for name in FIELDS}
    attributes = {cls: [(name, _SOURCE.get((cls, name), name)) for name in FIELDS[1:]
                        if _SOURCE.get((cls, name), name) in cls.__struct_fields__] for cls in KIND_CODES}
    rows: dict[str, list[int]] = {name: [0] * n for name in FIELDS}
    bids: list[tuple[tuple[int, int, int], ...]] = []
    asks: list[tuple[tuple[int, int, int], ...]] = []
    for i, ev in enumerate(events):
        cls = type(ev)
        rows["kind"][i] = KIND_CODES[cls]
        for name, attribute in attributes[cls]:
            rows[name][i] = getattr(ev, attribute)
        if cls is BookSnapshot:
            bids.append(ev.bids)  # type: ignore[attr-defined]
            asks.append(ev.asks)  # type: ignore[attr-defined]
        else:
            bids.append(())
            asks.append(())
    for name in FIELDS:
        columns[name][:] = rows[name]
    bid_off, bid_px, bid_sz = _levels(bids)
    ask_off, ask_px, ask_sz = _levels(asks)
    return ColumnBatch(**columns, bid_off=bid_off, bid_px=bid_px, bid_sz=bid_sz, ask_off=ask_off, ask_px=ask_px,
                       ask_sz=ask_sz)
